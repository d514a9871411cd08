"""Group Relative Policy Optimization of the DPO model on GSM8K training problems, rewarded by its answers.

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/grpo.py \
        --config recipes/configs/gpu-full/grpo.yaml --model_name_or_path experiments/runs/full/dpo_final
    python recipes/grpo.py --config recipes/configs/cpu-demo/grpo.yaml \
        --model_name_or_path experiments/runs/demo/dpo_final --output_dir experiments/runs/demo/grpo

TRL's `GRPOTrainer`: for each GSM8K training question, asked as the evaluation asks it (with
`sample_with_chat_template`, the question as the user's message through the chat template, after `num_fewshot`
solved examples as earlier turns; else lm-eval's completion prompt), the policy samples `num_generations` solutions with
transformers' `generate`; each is scored by `reward_funcs` weighted by `reward_weights` (exact match of the final
answer, the `#### N` format, the trained verifier given `reward_model_name_or_path`:
`modeling_modern_llm.training.grpo`), and the policy moves toward the solutions that beat their group's mean. `beta`
weighs a KL term to the starting model (0: none, and no reference copy is loaded). Writes `<output_dir>/checkpoint-*`
and `<output_dir>_final` (after LoRA: merged, with `adapter/`); `trainer_state.json` logs the reward, its spread in
each group (`reward_std`) and the completion lengths per step.
"""

from transformers import AutoModelForCausalLM, set_seed
from trl import GRPOTrainer

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.errors import UsageError
from modeling_modern_llm.tokenizer import load_tokenizer
from modeling_modern_llm.training import (
    GRPOStageConfig,
    ModelArguments,
    ScriptArguments,
    exclude_sinks_and_norms_from_weight_decay,
    load_split,
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
from modeling_modern_llm.training.grpo import gsm8k_prompts, reward_functions, sample_with_calculator


def main(script_args: ScriptArguments, training_args: GRPOStageConfig, model_args: ModelArguments):
    validate_stage("grpo", script_args, training_args, model_args)
    push, training_args = push_target(training_args)  # the trainer never pushes; save_final pushes once
    start = setup_stage(training_args)
    training_args.include_num_input_tokens_seen = "no"  # GRPO counts prompt and completion tokens itself
    set_seed(training_args.seed)

    # Policy (the reference, with beta > 0, is TRL's frozen load of the same folder, or the adapter-disabled policy)
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **model_load_kwargs(model_args))

    # Data: GSM8K training problems (after the solved examples shown first), asked as the evaluation asks them, each
    # prompt leaving room for a whole completion
    shots_count, limit = training_args.num_fewshot, script_args.max_train_samples
    rows = load_split(script_args, script_args.dataset_train_split, limit and limit + shots_count, training_args.seed)
    shots = list(rows.select(range(shots_count)))
    problems = {"train": rows.select(range(shots_count, len(rows)))}
    if training_args.eval_strategy != "no":
        problems["eval"] = load_split(
            script_args, script_args.dataset_test_split, script_args.max_eval_samples, training_args.seed
        )
    prompt_budget = model.config.max_position_embeddings - training_args.max_completion_length
    datasets = {
        key: gsm8k_prompts(split_rows, tokenizer, prompt_budget, shots, training_args.sample_with_chat_template)
        for key, split_rows in problems.items()
    }
    if len(datasets["train"]) == 0:
        raise UsageError(
            f"grpo: no training prompt fits in {prompt_budget} tokens (max_position_embeddings "
            f"{model.config.max_position_embeddings} - max_completion_length "
            f"{training_args.max_completion_length}); lower max_completion_length or num_fewshot"
        )

    # Train
    rewards = reward_functions(
        training_args.reward_funcs,
        training_args.reward_model_name_or_path,
        training_args.device,
        training_args.verifier_batch_size,
    )
    peft_config = stage_peft_config("grpo", model_args, model)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("eval"),
        processing_class=tokenizer,
        callbacks=stage_callbacks(language_modelling=False),
        peft_config=peft_config,
    )
    exclude_sinks_and_norms_from_weight_decay(trainer)  # the sinks and norm weights in the no-decay group
    if training_args.use_calculator:
        sample_with_calculator(trainer, tokenizer)
    reference = (
        "none (beta 0: no KL term)"
        if training_args.beta == 0
        else "the policy with its LoRA adapter disabled (no copy)"
        if peft_config is not None
        else "a frozen copy of the starting model"
    )
    train_with_resume(trainer)
    metrics = trainer.evaluate() if "eval" in datasets else {}

    # Save
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    save_final(
        trainer,
        tokenizer,
        "grpo",
        script_args,
        model_args,
        start,
        eval_metrics=metrics,
        push=push,
        extra_summary={
            "beta": training_args.beta,
            "reference_model": reference,
            "reward_funcs": training_args.reward_funcs,
            "reward_weights": training_args.reward_weights or [1.0] * len(rewards),
            "num_generations": training_args.num_generations,
            "temperature": training_args.temperature,
            "use_calculator": training_args.use_calculator,
            "max_completion_length": training_args.max_completion_length,
            "train_prompts": len(datasets["train"]),
            "num_fewshot": shots_count,
            "sample_with_chat_template": training_args.sample_with_chat_template,
            "reward_logged": {
                "first": logged[0]["reward"],
                "last": logged[-1]["reward"],
                "mean": sum(e["reward"] for e in logged) / len(logged),
            }
            if logged
            else None,
        },
    )


if __name__ == "__main__":
    stage_main("grpo", main)
