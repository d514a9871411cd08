"""Best-of-N on GSM8K: which solution each selector answers with, from lm-eval's logged samples, and the statistics
of the resulting exact match. Computed here once; the results views, the GSM8K analysis and the report's
exact-match-against-N figure all call it.

A `Problem` holds the question, the reference ``answer`` field, the greedy solution and the N sampled solutions in
sampling order, with their verifier scores when a verifier scored them. A solution's answer is lm-eval's
flexible-extract (its last number), normalised as lm-eval's exact match; an unparsable solution has none and never
votes. Selectors (ties go to the solution sampled first):

- ``greedy``: the greedy solution;
- ``majority_vote``: a solution with the most frequent answer among the N (self-consistency, Wang et al. 2022);
- ``verifier_best_of_n``: the solution the verifier scores highest (Cobbe et al. 2021);
- ``verifier_weighted_vote``: a solution with the answer whose solutions' sigmoid(score) sum highest (DiVeRSe,
  Li et al. 2023): the verifier's confidence as a vote weight;
- ``oracle_pass_at_n``: a correct solution if any of the N is (the ceiling of every selector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modeling_modern_llm.task_formats import extract_flexible, gsm8k_reference

SELECTORS = ("greedy", "majority_vote", "verifier_best_of_n", "verifier_weighted_vote", "oracle_pass_at_n")
VERIFIER_SELECTORS = ("verifier_best_of_n", "verifier_weighted_vote")


@dataclass
class Problem:
    question: str
    answer: str  # the reference, a GSM8K answer field ("... #### 72")
    greedy: str | None
    candidates: list[str]
    scores: list[float] | None = None  # the verifier's, one per candidate

    @property
    def reference(self) -> str:
        return gsm8k_reference(self.answer)


def _vote(answers: list[str | None], weights: list[float]) -> int | None:
    """The index of the first solution with the answer of the largest total weight (None if nothing parses)."""
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + weight
    if not totals:
        return None
    winner = max(totals, key=totals.__getitem__)  # the first of equal totals: the answer sampled first
    return answers.index(winner)


def choose(problem: Problem, selector: str, n: int | None = None) -> str:
    """The solution `selector` answers `problem` with, using its first `n` samples (all by default); "" if none."""
    if selector == "greedy":
        return problem.greedy or ""
    candidates = problem.candidates[:n]
    answers = [extract_flexible(text) for text in candidates]
    if selector == "majority_vote":
        index = _vote(answers, [1.0] * len(answers))
    elif selector == "oracle_pass_at_n":
        index = answers.index(problem.reference) if problem.reference in answers else (0 if answers else None)
    elif selector in VERIFIER_SELECTORS:
        if problem.scores is None:
            raise ValueError(f"{selector} needs verifier scores: evaluate with --verifier")
        scores = problem.scores[: len(candidates)]
        if selector == "verifier_best_of_n":
            index = max(range(len(scores)), key=scores.__getitem__) if scores else None
        else:
            index = _vote(answers, [1 / (1 + math.exp(-score)) for score in scores])
    else:
        raise ValueError(f"unknown selector {selector!r}; selectors: {', '.join(SELECTORS)}")
    return "" if index is None else candidates[index]


def available_selectors(problems: list[Problem]) -> list[str]:
    """The selectors the problems allow: greedy needs greedy solutions, the rest samples, the verifier ones scores."""
    usable = {"greedy": all(p.greedy is not None for p in problems),
              "sampled": all(p.candidates for p in problems),
              "scored": all(p.scores is not None for p in problems)}
    needs = {"greedy": "greedy", "majority_vote": "sampled", "oracle_pass_at_n": "sampled",
             "verifier_best_of_n": "scored", "verifier_weighted_vote": "scored"}
    return [s for s in SELECTORS if problems and usable[needs[s]] and (needs[s] != "scored" or usable["sampled"])]


def correct(problems: list[Problem], selector: str, n: int | None = None) -> list[bool]:
    """Per problem, whether the selector's solution has the reference answer."""
    return [extract_flexible(choose(p, selector, n)) == p.reference for p in problems]


def sample_sizes(n_samples: int) -> list[int]:
    """Powers of two up to `n_samples`, and `n_samples` itself: the N of the exact-match-against-N curve."""
    sizes = [2**k for k in range(n_samples.bit_length()) if 2**k <= n_samples]
    return sizes if sizes and sizes[-1] == n_samples else [*sizes, n_samples]


def exact_match_curve(problems: list[Problem], sizes: list[int]) -> dict[str, list[float]]:
    """`{selector: [exact match using the first N samples, for each N in sizes]}`; greedy is flat by definition."""
    return {s: [sum(correct(problems, s, n)) / len(problems) for n in sizes] for s in available_selectors(problems)}


def standard_error(values: list[float]) -> float:
    """The standard error of a mean, as lm-eval reports it (sample standard deviation / sqrt(n))."""
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    return math.sqrt(sum([(v - mean) ** 2 for v in values]) / (n - 1)) / math.sqrt(n)


def paired_bootstrap(baseline: list[bool], treatment: list[bool], iterations: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """The mean difference treatment - baseline over the same problems, its paired standard error and its percentile
    bootstrap interval, resampling problems (so both selectors see the same resample): ``{"difference", "stderr",
    "low", "high", ...}``."""
    if len(baseline) != len(treatment) or not baseline:
        raise ValueError("a paired bootstrap needs two equally long, non-empty lists of per-problem results")
    differences = np.array(treatment, dtype=float) - np.array(baseline, dtype=float)
    resamples = np.random.default_rng(seed).integers(0, len(differences), size=(iterations, len(differences)))
    low, high = np.quantile(differences[resamples].mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    stderr = standard_error(differences.tolist())
    return {"difference": float(differences.mean()), "stderr": None if math.isnan(stderr) else stderr,
            "low": float(low), "high": float(high), "confidence": confidence,
            "iterations": iterations, "seed": seed, "n": len(differences)}
