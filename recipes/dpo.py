"""Direct Preference Optimization of the SFT model against a frozen copy of itself.

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/dpo.py \
        --config recipes/configs/gpu-full/dpo.yaml --model_name_or_path experiments/runs/full/sft_final
    python recipes/dpo.py --config recipes/configs/cpu-demo/dpo.yaml \
        --model_name_or_path experiments/runs/demo/sft_final --output_dir experiments/runs/demo/dpo

TRL's `DPOTrainer` on conversational `prompt`/`chosen`/`rejected` rows. The reference model is a second,
frozen load of the same checkpoint (or, with `precompute_ref_log_probs: true`, its log-probs computed once
before training, which saves its memory; or, with `use_peft: true`, the policy with its LoRA adapter disabled, so
there is no second copy at all); `beta` sets how far the policy may move from it.
Writes `<output_dir>/checkpoint-*` and `<output_dir>_final` (after LoRA: merged, with `adapter/`).
"""

from transformers import AutoModelForCausalLM, set_seed
from trl import DPOTrainer

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.tokenizer import load_tokenizer
from modeling_modern_llm.training import (
    DPOStageConfig,
    ModelArguments,
    ScriptArguments,
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


def main(script_args: ScriptArguments, training_args: DPOStageConfig, model_args: ModelArguments):
    validate_stage("dpo", script_args, training_args, model_args)
    push, training_args = push_target(training_args)  # the trainer never pushes; save_final pushes once
    start = setup_stage(training_args)
    set_seed(training_args.seed)

    # Data
    train_dataset, eval_dataset = load_train_and_eval(script_args, training_args)

    # Policy and frozen reference, both from the SFT stage. With LoRA there is no second copy: TRL computes the
    # reference log-probs with the adapter disabled, which is exactly the SFT model.
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
    load_kwargs = model_load_kwargs(model_args)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **load_kwargs)
    peft_config = stage_peft_config("dpo", model_args, model)
    ref_model = None
    if peft_config is None and not training_args.precompute_ref_log_probs:
        ref_model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **load_kwargs)

    # Train
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=stage_callbacks(language_modelling=False),
        peft_config=peft_config,
    )
    exclude_sinks_and_norms_from_weight_decay(trainer)  # the sinks and norm weights in the no-decay group
    reference = (
        "the policy with its LoRA adapter disabled (no copy)"
        if peft_config is not None
        else "precomputed log-probs"
        if trainer.ref_model is None
        else "a frozen copy of the starting model"
    )
    reference_parameters = sum(p.numel() for p in trainer.ref_model.parameters()) if trainer.ref_model else 0
    train_with_resume(trainer)
    metrics = trainer.evaluate() if eval_dataset is not None else {}

    # Save
    save_final(
        trainer,
        tokenizer,
        "dpo",
        script_args,
        model_args,
        start,
        eval_metrics=metrics,
        push=push,
        extra_summary={
            "beta": training_args.beta,
            "reference_model": reference,
            "reference_model_parameters": reference_parameters,
        },
    )


if __name__ == "__main__":
    stage_main("dpo", main)
