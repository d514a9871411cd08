"""Supervised fine-tuning of the pretrained model on chat-formatted instructions, loss on assistant tokens only.

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/sft.py \
        --config recipes/configs/gpu-full/sft.yaml --model_name_or_path experiments/runs/full/pretrain_final
    python recipes/sft.py --config recipes/configs/cpu-demo/sft.yaml \
        --model_name_or_path experiments/runs/demo/pretrain_final --output_dir experiments/runs/demo/sft

TRL's `SFTTrainer` on `messages` rows: the tokenizer's ChatML template marks the assistant turns with
`{% generation %}`, so `assistant_only_loss=True` masks everything else, and `eos_token: <|im_end|>`
makes the model stop at the end of its turn. Writes `<output_dir>/checkpoint-*` and `<output_dir>_final`; with
`use_peft: true` only a LoRA adapter trains, and the final folder holds the merged model and `adapter/`;
with `push_to_hub: true` the final folder goes to `hub_model_id` (docs/TRAINING.md, "Sharing").
"""

from transformers import AutoModelForCausalLM, set_seed
from trl import SFTTrainer

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.tokenizer import load_tokenizer
from modeling_modern_llm.training import (
    ModelArguments,
    ScriptArguments,
    SFTStageConfig,
    exclude_sinks_and_norms_from_weight_decay,
    load_train_and_eval,
    model_load_kwargs,
    push_target,
    save_final,
    setup_stage,
    stage_callbacks,
    stage_main,
    stage_peft_config,
    train_with_resume,
    validate_stage,
)


def main(script_args: ScriptArguments, training_args: SFTStageConfig, model_args: ModelArguments):
    validate_stage("sft", script_args, training_args, model_args)
    push, training_args = push_target(training_args)  # the trainer never pushes; save_final pushes once
    start = setup_stage(training_args)
    set_seed(training_args.seed)

    # Data
    train_dataset, eval_dataset = load_train_and_eval(script_args, training_args)

    # Model and tokenizer, from the pretraining stage
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **model_load_kwargs(model_args))

    # Train (only a LoRA adapter with use_peft: true)
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=stage_callbacks(language_modelling=True),
        peft_config=stage_peft_config("sft", model_args, model),
    )
    exclude_sinks_and_norms_from_weight_decay(trainer)  # the sinks and norm weights in the no-decay group
    train_with_resume(trainer)
    metrics = trainer.evaluate() if eval_dataset is not None else {}

    # Save
    save_final(
        trainer, trainer.processing_class, "sft", script_args, model_args, start, eval_metrics=metrics, push=push
    )


if __name__ == "__main__":
    stage_main("sft", main)
