"""Training data of the GSM8K verifier (Cobbe et al. 2021): the policy's own solutions, labelled, paired.

The prompt, the text the verifier scores and the correctness rule come from ``task_formats``,
so the verifier is trained on exactly what evaluation will ask it to score.
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import torch
from tqdm.auto import tqdm

from modeling_modern_llm.calculator import calculator_logits_processor
from modeling_modern_llm.files import atomic_write_text
from modeling_modern_llm.task_formats import (
    format_chat_prompt,
    format_prompt,
    format_verifier_input,
    is_correct,
    truncate_at_stop,
)


@torch.no_grad()
def sample_solutions(model, tokenizer, problems: list[dict], shots: list[dict], args) -> list[dict]:
    """``args.samples_per_problem`` sampled solutions per problem, each labelled by its final answer."""
    tokenizer.padding_side = "left"
    model.eval()
    calculator = calculator_logits_processor(tokenizer) if args.use_calculator else None
    records = []
    batches = range(0, len(problems), args.generation_batch_size)
    for start in tqdm(batches, desc="sampling solutions", disable=args.disable_tqdm):
        batch = problems[start : start + args.generation_batch_size]
        if args.sample_with_chat_template:
            prompts = [format_chat_prompt(tokenizer, problem["question"], shots) for problem in batch]
        else:
            prompts = [format_prompt(problem["question"], shots) for problem in batch]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        outputs = model.generate(
            **inputs,
            do_sample=True,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            num_return_sequences=args.samples_per_problem,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=calculator,
        )
        texts = tokenizer.batch_decode(outputs[:, inputs["input_ids"].shape[1] :], skip_special_tokens=False)
        for index, text in enumerate(texts):
            problem = batch[index // args.samples_per_problem]
            solution = truncate_at_stop(text).replace(tokenizer.pad_token, "").strip()
            records.append(
                {
                    "question": problem["question"],
                    "answer": problem["answer"],
                    "solution": solution,
                    "correct": is_correct(solution, problem["answer"]),
                }
            )
    return records


def preference_pairs(
    records: list[dict], max_pairs_per_problem: int, seed: int, include_reference: bool = False
) -> list[dict]:
    """(correct, incorrect) pairs of the same problem in RewardTrainer's ``chosen``/``rejected`` text form.

    Only problems with both a correct and an incorrect sample give pairs, unless ``include_reference``
    counts the reference solution as one more correct candidate (then an unsolved problem gives pairs too).
    """
    by_question: dict[str, dict] = {}
    for record in records:
        references = [record["answer"].strip()] if include_reference else []
        entry = by_question.setdefault(record["question"], {"correct": references, "incorrect": []})
        entry["correct" if record["correct"] else "incorrect"].append(record["solution"])
    rng = random.Random(seed)
    pairs = []
    for question, entry in by_question.items():
        combos = [(good, bad) for good in dict.fromkeys(entry["correct"]) for bad in dict.fromkeys(entry["incorrect"])]
        rng.shuffle(combos)
        pairs += [
            {"chosen": format_verifier_input(question, good), "rejected": format_verifier_input(question, bad)}
            for good, bad in combos[:max_pairs_per_problem]
        ]
    return pairs


def with_references(records: list[dict]) -> list[dict]:
    """The token-level objective's `include_reference`: each problem's reference solution added as one more correct
    sample."""
    seen, references = set(), []
    for record in records:
        if record["question"] not in seen:
            seen.add(record["question"])
            references.append({**record, "solution": record["answer"].strip(), "correct": True})
    return records + references


def tokenize_pairs(pairs: list[dict], tokenizer) -> dict[str, list[list[int]]]:
    """``chosen_ids``/``rejected_ids`` tokenised as evaluation scores a solution (plain ``tokenizer(text)``).

    Handing RewardTrainer token ids stops it from appending an eos to the text, which evaluation does not do:
    the score is read at the last real token, so both must end on the same one.
    """
    return {f"{side}_ids": tokenizer([pair[side] for pair in pairs])["input_ids"] for side in ("chosen", "rejected")}


def _policy_identity(policy: str) -> list:
    """A local policy's weight files with their sizes and modification times (a retrained policy differs); a Hub id as is."""
    if not os.path.isdir(policy):
        return [policy]
    weights = sorted(name for name in os.listdir(policy) if name.endswith((".safetensors", ".bin")))
    stats = [os.stat(os.path.join(policy, name)) for name in weights]
    return [policy] + [[name, stat.st_size, stat.st_mtime_ns] for name, stat in zip(weights, stats)]


def samples_path(output_dir: str, split: str, policy: str, problems: list[dict], shots: list[dict], args) -> str:
    """``<output_dir>/samples-<split>-<fingerprint>.jsonl``: the fingerprint covers the policy (its weights, if local),
    the problems and every sampling setting, so a resumed run finds its samples and a run with another policy or
    changed settings never reuses stale ones."""
    settings = {
        "policy": _policy_identity(policy),
        "questions": [p["question"] for p in problems],
        "shots": [s["question"] for s in shots],
        **{
            name: getattr(args, name)
            for name in (
                "samples_per_problem",
                "temperature",
                "top_p",
                "max_new_tokens",
                "sample_with_chat_template",
                "use_calculator",
                "seed",
            )
        },
    }
    fingerprint = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return os.path.join(output_dir, f"samples-{split}-{fingerprint}.jsonl")


def _read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _write_jsonl(path: str, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in records))


def cached_samples(
    path: str,
    problems: list[dict],
    sample,
    process_index: int = 0,
    num_processes: int = 1,
    wait_for_everyone=lambda: None,
) -> list[dict]:
    """The sampled records of ``problems`` at ``path``, sampled first when absent: a resumed run trains on the same pairs.

    Under several processes each samples its contiguous share of the problems into its own shard file (a rank that
    sampled everything would keep the others waiting at a barrier past its timeout); the main process then joins the
    shards in order. Finished shards are reused when a run is interrupted while sampling.
    """
    if not os.path.isfile(path):
        share = -(-len(problems) // num_processes)
        shard = f"{path}.shard{process_index}-of-{num_processes}"
        if not os.path.isfile(shard):
            _write_jsonl(shard, sample(problems[process_index * share : (process_index + 1) * share]))
        wait_for_everyone()
        if process_index == 0:
            shards = [f"{path}.shard{index}-of-{num_processes}" for index in range(num_processes)]
            _write_jsonl(path, [record for name in shards for record in _read_jsonl(name)])
            for name in shards:
                os.remove(name)
        wait_for_everyone()
    return _read_jsonl(path)
