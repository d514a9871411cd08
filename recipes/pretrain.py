"""Pretrain a ModernLLM from scratch on packed plain text.

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/pretrain.py \
        --config recipes/configs/gpu-full/pretrain.yaml
    python recipes/pretrain.py --config recipes/configs/cpu-demo/pretrain.yaml --output_dir experiments/runs/demo/pretrain

How pretraining is done (trl#1657): TRL's `SFTTrainer` on a raw-text dataset ("text" column) with
`packing=True, packing_strategy="bfd_split"` is a plain causal-LM loss on every token: each document gets an
eos, documents are packed best-fit into rows of `max_length` tokens (longer ones are split), and the collator
flattens each batch with per-document `position_ids` (padding-free). Flash attention uses those positions as
varlen boundaries; on sdpa/eager transformers' mask utilities turn them into a block-diagonal causal mask, so
on no backend does a document attend to its neighbour. The tokenizer is trained on the training corpus
unless `tokenizer_name_or_path` names one. With `model_name_or_path` instead of `model_config` it continues
pretraining a saved model (its tokenizer too), in full or, with `use_peft: true`, as a LoRA adapter.
Writes `<output_dir>/checkpoint-*` and `<output_dir>_final` (after LoRA: merged, with `adapter/`).
"""

from transformers import AutoModelForCausalLM, set_seed
from trl import SFTTrainer

from modeling_modern_llm import ModernLLMForCausalLM
from modeling_modern_llm.tokenizer import load_tokenizer
from modeling_modern_llm.training import (
    ModelArguments,
    PretrainConfig,
    ScriptArguments,
    build_model_config,
    build_tokenizer,
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


def main(script_args: ScriptArguments, training_args: PretrainConfig, model_args: ModelArguments):
    validate_stage("pretrain", script_args, training_args, model_args)
    push, training_args = push_target(training_args)  # the trainer never pushes; save_final pushes once
    start = setup_stage(training_args)
    set_seed(training_args.seed)

    # Data
    train_dataset, eval_dataset = load_train_and_eval(script_args, training_args)

    if model_args.model_name_or_path:
        # Continued pretraining of a saved model (in full, or a LoRA adapter with use_peft: true)
        tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **model_load_kwargs(model_args))
    else:
        # Tokenizer: trained on the pretraining corpus and kept with the checkpoints, unless one is named
        with training_args.main_process_first(desc="tokenizer"):
            tokenizer = build_tokenizer(
                model_args, (row["text"] for row in train_dataset), f"{training_args.output_dir}/tokenizer"
            )
        # Model, from the YAML's ModernLLMConfig fields
        model = ModernLLMForCausalLM(build_model_config(model_args, tokenizer))

    # Train
    training_args.dataset_text_field = "text"
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=stage_callbacks(language_modelling=True),
        peft_config=stage_peft_config("pretrain", model_args, model),
    )
    exclude_sinks_and_norms_from_weight_decay(trainer)  # the sinks and norm weights in the no-decay group
    train_with_resume(trainer)
    metrics = trainer.evaluate() if eval_dataset is not None else {}

    # Save
    save_final(trainer, tokenizer, "pretrain", script_args, model_args, start, eval_metrics=metrics, push=push)


if __name__ == "__main__":
    stage_main("pretrain", main)
