"""GSM8K exact match: greedy, and over N sampled solutions per problem majority vote, verifier
best-of-N and oracle pass@N.

Prompts and extraction follow lm-evaluation-harness's ``gsm8k`` task (see ``gsm8k_format``). The N
candidates of a problem come from one ``generate`` call with ``num_return_sequences=N``. Sampled
candidates are judged by the answer they commit to (``#### N`` if written, else the last number).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from .gsm8k_format import extract_answer, extract_reference, format_chat_prompt, format_prompt, format_verifier_input
from .lm import (
    CausalLM,
    ModelUnavailable,
    default_batch_size,
    default_device,
    describe_load_error,
    hub_files_only_local,
    load_tokenizer,
    register_project_models,
)
from .metrics import GSM8KExactMatch


class Verifier:
    """A sequence-classification model that scores (question, solution) texts; higher means "correct"."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        if getattr(self.model.config, "pad_token_id", None) is None:  # the head pools the last non-pad token
            self.model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def from_pretrained(cls, path: str, *, device: Optional[str] = None, trust_remote_code: bool = True) -> "Verifier":
        from transformers import AutoModelForSequenceClassification

        register_project_models()
        device = device or default_device()
        try:
            tokenizer = load_tokenizer(path, trust_remote_code)
            model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                                       local_files_only=hub_files_only_local(path))
        except Exception as error:
            raise ModelUnavailable("verifier: " + describe_load_error(path, error)) from error
        return cls(model.to(device), tokenizer, default_batch_size(device))

    @torch.inference_mode()
    def score(self, questions: Sequence[str], solutions: Sequence[str]) -> list[float]:
        """One score per (question, solution): the logit for one label, the correct-minus-wrong logit for two."""
        texts = [format_verifier_input(q, s) for q, s in zip(questions, solutions)]
        scores: list[float] = []
        self.tokenizer.padding_side = "right"
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        device = next(self.model.parameters()).device
        limit = getattr(self.model.config, "max_position_embeddings", None)
        for start in tqdm(range(0, len(texts), self.batch_size), desc="verifier", leave=False):
            batch = [texts[i] for i in order[start : start + self.batch_size]]
            encoded = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=limit is not None, max_length=limit).to(device)
            logits = self.model(**encoded).logits.float()
            scores += (logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]).tolist()
        by_text = dict(zip(order, scores))
        return [by_text[i] for i in range(len(texts))]


def draw_fewshot(train_rows: Sequence[dict], k: int, seed: int) -> list[dict]:
    """k solved training problems, the same for every test problem given the seed."""
    if k > len(train_rows):
        raise ValueError(f"{k}-shot GSM8K needs {k} training problems, the few-shot split has {len(train_rows)}")
    return random.Random(seed).sample(list(train_rows), k)


def majority_answer(answers: Sequence[Optional[str]]) -> Optional[str]:
    """The most frequent parsable answer (self-consistency); ties go to the earliest sample."""
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None


def evaluate_gsm8k(
    lm: CausalLM,
    rows: Sequence[dict],
    *,
    fewshot: Sequence[dict] = (),
    n_samples: int = 0,
    temperature: float = 0.7,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    verifier: Optional[Verifier] = None,
    seed: int = 0,
    chat_template: bool = False,
) -> tuple[dict, list[dict]]:
    """(metrics, per-problem records). Metrics: ``exact_match_strict``/``exact_match_flexible`` of the greedy
    solution; with ``n_samples`` > 0 also ``majority_vote``, ``oracle_pass_at_n`` and, given a verifier,
    ``verifier_best_of_n``. Each problem record holds the question, the gold answer, the greedy solution
    and the candidates with their answers, correctness and verifier scores."""
    if chat_template and not getattr(lm.tokenizer, "chat_template", None):
        raise ValueError("chat_template=True but the tokenizer has no chat template; drop the option for this model")
    if chat_template:
        prompts = [format_chat_prompt(lm.tokenizer, row["question"], fewshot) for row in rows]
    else:
        prompts = [format_prompt(row["question"], fewshot) for row in rows]
    gold = [extract_reference(row["answer"]) for row in rows]
    greedy = [outs[0] for outs in lm.generate_until(prompts, max_new_tokens=max_new_tokens, desc="gsm8k greedy")]
    metrics = GSM8KExactMatch().compute(predictions=greedy, references=[row["answer"] for row in rows])
    problems = [{"question": row["question"], "reference": answer, "greedy": text, "greedy_answer": extract_answer(text)}
                for row, answer, text in zip(rows, gold, greedy)]
    if n_samples <= 0:
        return metrics, problems

    torch.manual_seed(seed)
    candidates = lm.generate_until(prompts, max_new_tokens=max_new_tokens, num_return_sequences=n_samples,
                                   do_sample=True, temperature=temperature, top_p=top_p, desc=f"gsm8k {n_samples} samples")
    flat = [(problem["question"], text) for problem, texts in zip(problems, candidates) for text in texts]
    flat_scores = verifier.score(*zip(*flat)) if verifier else [None] * len(flat)  # one batched pass over all candidates
    majority_hits, oracle_hits, verifier_hits = 0, 0, 0
    for index, (problem, texts) in enumerate(zip(problems, candidates)):
        scores = flat_scores[index * n_samples : (index + 1) * n_samples]
        answers = [extract_answer(text) for text in texts]
        correct = [answer == problem["reference"] for answer in answers]
        problem["candidates"] = [{"text": t, "answer": a, "correct": c, "verifier_score": s}
                                 for t, a, c, s in zip(texts, answers, correct, scores)]
        problem["majority_answer"] = majority_answer(answers)
        majority_hits += problem["majority_answer"] == problem["reference"]
        oracle_hits += any(correct)
        if verifier:
            problem["verifier_choice"] = max(range(len(texts)), key=lambda i: scores[i])
            verifier_hits += correct[problem["verifier_choice"]]
    n = len(problems)
    metrics.update(majority_vote=majority_hits / n, oracle_pass_at_n=oracle_hits / n)
    if verifier:
        metrics["verifier_best_of_n"] = verifier_hits / n
    return metrics, problems
