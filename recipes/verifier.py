"""Train the GSM8K verifier: a reward model scoring the policy's solutions (Cobbe et al. 2021).

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/verifier.py \
        --config recipes/configs/gpu-full/verifier.yaml --model_name_or_path experiments/runs/full/dpo_final
    python recipes/verifier.py --config recipes/configs/cpu-demo/verifier.yaml \
        --model_name_or_path experiments/runs/demo/dpo_final --output_dir experiments/runs/demo/verifier

1. The policy (`model_name_or_path`) samples `samples_per_problem` solutions per training problem from the
   lm-eval GSM8K prompt (`num_fewshot` solved problems first); each is labelled by whether its final
   answer equals the reference; under several processes each samples its share of the problems. Samples are cached
   in `<output_dir>/samples-<split>-<fingerprint>.jsonl` (policy and its weights, problems, sampling settings), so a
   resumed run trains on the same pairs and a changed config samples afresh.
2. Pairs (correct, incorrect) of the same problem (the reference counts as correct only with
   `include_reference`), train
   `ModernLLMForSequenceClassification(num_labels=1)` initialised from the policy with TRL's `RewardTrainer`
   (Bradley-Terry loss; the score is read at the last non-pad token, so `pad_token_id` is set). The pairs are
   tokenised as evaluation scores a solution, `tokenizer(format_verifier_input(question, solution))`.
With `use_peft: true` a LoRA adapter trains the trunk and the new `score` head trains in full (`modules_to_save`).
Writes `<output_dir>/checkpoint-*` and `<output_dir>_final` (after LoRA: merged, with `adapter/`).
"""

import gc
import logging
from functools import partial

from accelerate import PartialState
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, set_seed
from trl import RewardTrainer

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.tokenizer import load_tokenizer
from modeling_modern_llm.training import (
    ModelArguments,
    ScriptArguments,
    VerifierConfig,
    load_split,
    model_load_kwargs,
    save_final,
    setup_stage,
    stage_callbacks,
    stage_main,
    stage_peft_config,
    take_push_target,
    train_with_resume,
    validate_stage,
)
from modeling_modern_llm.training.verifier_data import (
    cached_samples,
    preference_pairs,
    sample_solutions,
    samples_path,
    tokenize_pairs,
)

logger = logging.getLogger(__name__)
TRAIN_PAIRS_SCORED = 256  # training pairs re-scored after training, to show memorisation


def main(script_args: ScriptArguments, training_args: VerifierConfig, model_args: ModelArguments):
    validate_stage("verifier", script_args, training_args, model_args)
    push = take_push_target(training_args)
    start = setup_stage(training_args)
    set_seed(training_args.seed)
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
    load_kwargs = model_load_kwargs(model_args)

    # Sample and label the policy's solutions (each process its share; cached, so a resumed run reuses them)
    train_rows = list(load_split(script_args, script_args.dataset_train_split, None, training_args.seed))
    shots = train_rows[:training_args.num_fewshot]
    problems = {"train": (script_args.dataset_train_split,
                          train_rows[len(shots):][:script_args.max_train_samples])}
    if training_args.eval_strategy != "no":
        problems["eval"] = (script_args.dataset_test_split, list(load_split(
            script_args, script_args.dataset_test_split, script_args.max_eval_samples, training_args.seed)))
    # The policy samples as it is evaluated: in its own precision, never QLoRA's 4-bit copy
    policy_kwargs = model_load_kwargs(model_args, quantized=False)
    policy = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **policy_kwargs)
    policy = policy.to(training_args.device)
    state = PartialState()  # each process samples its share of the problems; the shards are joined in order
    records = {}
    for key, (split, rows) in problems.items():
        path = samples_path(training_args.output_dir, split, model_args.model_name_or_path, rows, shots, training_args)
        records[key] = cached_samples(path, rows, partial(sample_solutions, policy, tokenizer, shots=shots,
                                                          args=training_args),
                                      state.process_index, state.num_processes, state.wait_for_everyone)
    del policy
    gc.collect()
    text_pairs = {key: preference_pairs(recs, training_args.max_pairs_per_problem, training_args.seed,
                                        training_args.include_reference) for key, recs in records.items()}
    policy_accuracy = {key: sum(r["correct"] for r in recs) / max(len(recs), 1) for key, recs in records.items()}
    if not text_pairs["train"]:
        raise ValueError(
            f"verifier: no (correct, incorrect) pair among {len(records['train'])} samples: the policy's sample accuracy is "
            f"{policy_accuracy['train']:.1%}. Sample more (`samples_per_problem`, `max_train_samples`), or set "
            f"`include_reference: true` to pair the reference solution with the policy's wrong ones.")
    if "eval" in text_pairs and not text_pairs["eval"]:
        logger.warning("verifier: the evaluation problems gave no (correct, incorrect) pair; training without evaluation")
        del text_pairs["eval"]
        training_args.eval_strategy = "no"
    pairs = {key: Dataset.from_dict(tokenize_pairs(pair_list, tokenizer)) for key, pair_list in text_pairs.items()}

    # Verifier, initialised from the policy; the score head is new
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, num_labels=1, pad_token_id=tokenizer.pad_token_id, **load_kwargs)

    # Train (with use_peft: a LoRA adapter on the trunk and the whole score head)
    trainer = RewardTrainer(model=model, args=training_args, train_dataset=pairs["train"],
                            eval_dataset=pairs.get("eval"), processing_class=tokenizer,
                            callbacks=stage_callbacks(language_modelling=False),
                            peft_config=stage_peft_config("verifier", model_args, model))
    train_with_resume(trainer)
    metrics = trainer.evaluate() if "eval" in pairs else {}
    # Pair accuracy on training pairs next to the held-out one: a verifier this small tends to memorise its
    # problems (train accuracy near 1, held-out near chance), which the held-out number alone does not show.
    seen = pairs["train"].shuffle(seed=training_args.seed).select(range(min(len(pairs["train"]), TRAIN_PAIRS_SCORED)))
    seen_metrics = trainer.evaluate(eval_dataset=seen, metric_key_prefix="train_pairs")
    # TRL 1.x's RewardTrainer.log names its accuracy "eval_accuracy" whatever the prefix
    pair_accuracy = {"train": seen_metrics.get("train_pairs_accuracy", seen_metrics.get("eval_accuracy")),
                     "eval": metrics.get("eval_accuracy")}

    # Save
    save_final(trainer, tokenizer, "verifier", script_args, model_args, start, eval_metrics=metrics, push=push,
               extra_summary={
                   "policy_sample_accuracy": policy_accuracy, "pairs": {key: len(ds) for key, ds in pairs.items()},
                   "pair_accuracy": pair_accuracy, "train_pairs_scored": len(seen),
                   "samples_per_problem": training_args.samples_per_problem,
                   "scoring_text": "tokenizer(format_verifier_input(question, solution))"})


if __name__ == "__main__":
    stage_main("verifier", main)
