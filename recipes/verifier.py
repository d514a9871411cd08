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
2. `objective: pairwise`: pairs (correct, incorrect) of the same problem (the reference counts as correct only with
   `include_reference`) train `ModernLLMForSequenceClassification(num_labels=1)`, initialised from the policy, with
   TRL's `RewardTrainer` (Bradley-Terry loss; the score is read at the last non-pad token, so `pad_token_id` is set).
   `objective: token_level` (Cobbe et al. 2021): every sample, labelled by its final answer, trains the score at every
   token of the solution, with the language-modelling loss kept on the correct ones (`TokenLevelVerifierTrainer`, a
   thin `RewardTrainer` subclass). Either way the text is what evaluation scores, `format_verifier_input(question,
   solution)`, and the verifier's score is the head's logit at the last token.
3. The held-out samples (`dataset_test_split`) are scored by the trained verifier: its within-problem pair accuracy
   and AUROC go into `training_summary.json` (`held_out_ranking`), next to the same on training samples.
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
from modeling_modern_llm.evaluation.selectors import Problem, verifier_ranking
from modeling_modern_llm.evaluation.verifier import Verifier
from modeling_modern_llm.task_formats import format_verifier_input, verifier_prompt
from modeling_modern_llm.training.verifier_data import (
    cached_samples,
    preference_pairs,
    sample_solutions,
    samples_path,
    tokenize_pairs,
    with_references,
)
from modeling_modern_llm.training.verifier_trainer import TokenLevelVerifierTrainer, token_level_examples

logger = logging.getLogger(__name__)
RANKED_SAMPLES = 4096  # samples of each split scored after training (the training ones show memorisation)


def main(script_args: ScriptArguments, training_args: VerifierConfig, model_args: ModelArguments):
    validate_stage("verifier", script_args, training_args, model_args)
    push, training_args = push_target(training_args)  # the trainer never pushes; save_final pushes once
    start = setup_stage(training_args)
    set_seed(training_args.seed)
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
    load_kwargs = model_load_kwargs(model_args)

    # Sample and label the policy's solutions (each process its share; cached, so a resumed run reuses them)
    train_rows = list(load_split(script_args, script_args.dataset_train_split, None, training_args.seed))
    shots = train_rows[: training_args.num_fewshot]
    problems = {"train": (script_args.dataset_train_split, train_rows[len(shots) :][: script_args.max_train_samples])}
    if training_args.eval_strategy != "no":
        problems["eval"] = (
            script_args.dataset_test_split,
            list(
                load_split(
                    script_args, script_args.dataset_test_split, script_args.max_eval_samples, training_args.seed
                )
            ),
        )
    # The policy samples as it is evaluated: in its own precision, never QLoRA's 4-bit copy
    policy_kwargs = model_load_kwargs(model_args, quantized=False)
    policy = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **policy_kwargs)
    policy = policy.to(training_args.device)
    state = PartialState()  # each process samples its share of the problems; the shards are joined in order
    records = {}
    for key, (split, rows) in problems.items():
        path = samples_path(training_args.output_dir, split, model_args.model_name_or_path, rows, shots, training_args)
        records[key] = cached_samples(
            path,
            rows,
            partial(sample_solutions, policy, tokenizer, shots=shots, args=training_args),
            state.process_index,
            state.num_processes,
            state.wait_for_everyone,
        )
    del policy
    gc.collect()
    policy_accuracy = {key: sum(r["correct"] for r in recs) / max(len(recs), 1) for key, recs in records.items()}
    if training_args.objective == "token_level":
        labelled = {
            key: with_references(recs) if training_args.include_reference else recs for key, recs in records.items()
        }
        datasets = {
            key: Dataset.from_dict(token_level_examples(recs, tokenizer, format_verifier_input, verifier_prompt))
            for key, recs in labelled.items()
        }
        if len({r["correct"] for r in labelled["train"]}) < 2:
            raise ValueError(
                f"verifier: the policy's {len(records['train'])} training samples are all "
                f"{'right' if records['train'][0]['correct'] else 'wrong'}: nothing to tell apart. "
                "Sample more problems, or at another temperature."
            )
    else:
        text_pairs = {
            key: preference_pairs(
                recs, training_args.max_pairs_per_problem, training_args.seed, training_args.include_reference
            )
            for key, recs in records.items()
        }
        if not text_pairs["train"]:
            raise ValueError(
                f"verifier: no (correct, incorrect) pair among {len(records['train'])} samples: the policy's sample "
                f"accuracy is {policy_accuracy['train']:.1%}. Sample more (`samples_per_problem`, `max_train_samples`), "
                "or set `include_reference: true` to pair the reference solution with the policy's wrong ones."
            )
        datasets = {
            key: Dataset.from_dict(tokenize_pairs(pair_list, tokenizer))
            for key, pair_list in text_pairs.items()
            if pair_list
        }
    if "eval" in records and "eval" not in datasets:
        logger.warning(
            "verifier: the evaluation problems gave no (correct, incorrect) pair; training without evaluation"
        )
        training_args.eval_strategy = "no"

    # Verifier, initialised from the policy; the score head is new
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, num_labels=1, pad_token_id=tokenizer.pad_token_id, **load_kwargs
    )

    # Train (with use_peft: a LoRA adapter on the trunk and the whole score head)
    common = dict(
        model=model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets.get("eval"),
        processing_class=tokenizer,
        callbacks=stage_callbacks(language_modelling=False),
        peft_config=stage_peft_config("verifier", model_args, model),
    )
    if training_args.objective == "token_level":
        trainer = TokenLevelVerifierTrainer(**common, lm_loss_coef=training_args.lm_loss_coef)
    else:
        trainer = RewardTrainer(**common)
    exclude_sinks_and_norms_from_weight_decay(trainer)  # the sinks and norm weights in the no-decay group
    train_with_resume(trainer)
    metrics = trainer.evaluate() if "eval" in datasets else {}
    # How the verifier ranks samples of problems it never saw next to those it trained on: a verifier this small
    # tends to memorise its problems (near-perfect on them, near chance held out), which one number alone hides.
    verifier = Verifier(trainer.accelerator.unwrap_model(trainer.model).eval(), tokenizer)
    ranking = {key: ranking_of(verifier, recs[:RANKED_SAMPLES]) for key, recs in records.items()}

    # Save
    save_final(
        trainer,
        tokenizer,
        "verifier",
        script_args,
        model_args,
        start,
        eval_metrics=metrics,
        push=push,
        extra_summary={
            "objective": training_args.objective,
            "policy_sample_accuracy": policy_accuracy,
            "samples": {key: len(recs) for key, recs in records.items()},
            "problems": {key: len({r["question"] for r in recs}) for key, recs in records.items()},
            "examples": {key: len(ds) for key, ds in datasets.items()},
            "held_out_ranking": ranking.get("eval"),
            "train_ranking": ranking["train"],
            "samples_per_problem": training_args.samples_per_problem,
            "use_calculator": training_args.use_calculator,
            "scoring_text": "tokenizer(format_verifier_input(question, solution))",
        },
    )


def ranking_of(verifier, records: list[dict]) -> dict:
    """The verifier's ranking of sampled records (`selectors.verifier_ranking`, grouped by problem), also restricted
    to the candidates whose answer parses (an unparsable one is wrong for a reason a verifier need not learn)."""
    scores = verifier.score([format_verifier_input(r["question"], r["solution"]) for r in records])
    by_question: dict[str, Problem] = {}
    for record, score in zip(records, scores):
        problem = by_question.setdefault(
            record["question"], Problem(record["question"], record["answer"], None, [], [])
        )
        problem.candidates.append(record["solution"])
        problem.scores.append(score)
    problems = list(by_question.values())
    return {**verifier_ranking(problems), "answer_parses": verifier_ranking(problems, parsed_only=True)}


if __name__ == "__main__":
    stage_main("verifier", main)
