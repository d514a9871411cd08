"""Best-of-N on GSM8K: which solution each selector answers with, from lm-eval's logged samples, and the statistics
of the resulting exact match. Computed here once; the results views, the GSM8K analysis and the report's
exact-match-against-N figure all call it.

A `Problem` holds the question, the reference ``answer`` field, the greedy solution and the N sampled solutions in
sampling order, with their verifier scores when a verifier scored them. A solution's answer is lm-eval's
flexible-extract (its last number), normalised as lm-eval's exact match; an unparsable solution has none and never
votes. Selectors (ties go to the solution sampled first):

- ``greedy``: the greedy solution;
- ``random_of_n``: one of the N at random, scored by its expectation: per problem, the fraction of the N that is
  correct. It is what a verifier at chance scores, the baseline every verifier selector must beat. It picks no single
  solution, so `choose` refuses it and `correct` gives the fraction;
- ``majority_vote``: a solution with the most frequent answer among the N (self-consistency, Wang et al. 2022);
- ``verifier_best_of_n``: the solution the verifier scores highest (Cobbe et al. 2021);
- ``verifier_weighted_vote``: a solution with the answer whose solutions' sigmoid(score) sum highest (DiVeRSe,
  Li et al. 2023): the verifier's confidence as a vote weight;
- ``verifier_top_k_vote``: a majority vote among the `TOP_K` solutions the verifier scores highest (ties: the answer
  of the higher-scored solution). Cobbe et al. found that voting among the verifier's top few beats its single top
  pick once N is large, the best k growing with N; `TOP_K` = 3 suits the N = 8 to 16 of this project;
- ``oracle_pass_at_n``: a correct solution if any of the N is (the ceiling of every selector).

Per-problem results (`correct`) are floats in [0, 1]: 0 or 1 for the selectors that pick a solution, a fraction for
``random_of_n``; means, standard errors and the paired bootstrap treat both alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modeling_modern_llm.task_formats import extract_flexible, gsm8k_reference

SELECTORS = (
    "greedy",
    "random_of_n",
    "majority_vote",
    "verifier_best_of_n",
    "verifier_weighted_vote",
    "verifier_top_k_vote",
    "oracle_pass_at_n",
)
VERIFIER_SELECTORS = ("verifier_best_of_n", "verifier_weighted_vote", "verifier_top_k_vote")
TOP_K = 3  # verifier_top_k_vote: the verifier's top 3 vote


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
    if selector == "random_of_n":
        raise ValueError("random_of_n picks no single solution: its per-problem result is correct()'s fraction")
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
        ranked = verifier_order(problem, len(candidates))
        if selector == "verifier_best_of_n":
            index = ranked[0] if ranked else None
        elif selector == "verifier_top_k_vote":
            top = ranked[:TOP_K]
            best = _vote([answers[i] for i in top], [1.0] * len(top))
            index = None if best is None else top[best]
        else:
            index = _vote(answers, [1 / (1 + math.exp(-score)) for score in scores])
    else:
        raise ValueError(f"unknown selector {selector!r}; selectors: {', '.join(SELECTORS)}")
    return "" if index is None else candidates[index]


def verifier_order(problem: Problem, n: int | None = None) -> list[int]:
    """The indices of the first `n` samples, highest verifier score first (equal scores keep sampling order)."""
    scores = problem.scores[: len(problem.candidates[:n])]
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def available_selectors(problems: list[Problem]) -> list[str]:
    """The selectors the problems allow: greedy needs greedy solutions, the rest samples, the verifier ones scores."""
    usable = {
        "greedy": all(p.greedy is not None for p in problems),
        "sampled": all(p.candidates for p in problems),
        "scored": all(p.scores is not None for p in problems),
    }
    needs = {
        "greedy": "greedy",
        "random_of_n": "sampled",
        "majority_vote": "sampled",
        "oracle_pass_at_n": "sampled",
        **dict.fromkeys(VERIFIER_SELECTORS, "scored"),
    }
    return [s for s in SELECTORS if problems and usable[needs[s]] and (needs[s] != "scored" or usable["sampled"])]


def candidate_correct(problem: Problem, n: int | None = None) -> list[bool]:
    """Whether each of the first `n` sampled solutions has the reference answer (an unparsable one has not)."""
    return [extract_flexible(text) == problem.reference for text in problem.candidates[:n]]


def correct(problems: list[Problem], selector: str, n: int | None = None) -> list[float]:
    """Per problem, 1.0 if the selector's solution has the reference answer, else 0.0; for ``random_of_n``, the
    fraction of the first `n` samples that has it (0.0 without samples)."""
    if selector == "random_of_n":
        return [sum(flags) / len(flags) if (flags := candidate_correct(p, n)) else 0.0 for p in problems]
    return [float(extract_flexible(choose(p, selector, n)) == p.reference) for p in problems]


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


def paired_bootstrap(
    baseline: list[float], treatment: list[float], iterations: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """The mean difference treatment - baseline over the same problems, its paired standard error and its percentile
    bootstrap interval, resampling problems (so both selectors see the same resample): ``{"difference", "stderr",
    "low", "high", ...}``. Per-problem results are numbers in [0, 1] (booleans, or ``random_of_n``'s fractions)."""
    if len(baseline) != len(treatment) or not baseline:
        raise ValueError("a paired bootstrap needs two equally long, non-empty lists of per-problem results")
    differences = np.array(treatment, dtype=float) - np.array(baseline, dtype=float)
    resamples = np.random.default_rng(seed).integers(0, len(differences), size=(iterations, len(differences)))
    low, high = np.quantile(differences[resamples].mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    stderr = standard_error(differences.tolist())
    return {
        "difference": float(differences.mean()),
        "stderr": None if math.isnan(stderr) else stderr,
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "iterations": iterations,
        "seed": seed,
        "n": len(differences),
    }


def verifier_ranking(problems: list[Problem], parsed_only: bool = False) -> dict:
    """How well the verifier's scores separate correct from wrong candidates, with their n:

    - ``pair_accuracy``: over every (correct, wrong) pair of candidates of the same problem, the fraction in which the
      correct one scores higher (a tie counts half); ``n_pairs`` pairs from ``n_problems`` problems that have both;
    - ``auroc``: over all candidates of all problems, the probability that a correct one scores above a wrong one
      (Mann-Whitney, ties half); ``n`` candidates, ``n_correct`` of them correct.

    With `parsed_only`, only candidates whose answer parses take part. A value is None when it has no pair."""
    pairs, wins, problems_with_pairs, right, wrong = 0, 0.0, 0, [], []
    for problem in problems:
        if problem.scores is None:
            raise ValueError("verifier_ranking needs verifier scores: evaluate with --verifier")
        flags = candidate_correct(problem)
        kept = [i for i, text in enumerate(problem.candidates) if not parsed_only or extract_flexible(text) is not None]
        good = np.array([problem.scores[i] for i in kept if flags[i]], dtype=float)
        bad = np.array([problem.scores[i] for i in kept if not flags[i]], dtype=float)
        right += good.tolist()
        wrong += bad.tolist()
        if len(good) and len(bad):
            problems_with_pairs += 1
            pairs += len(good) * len(bad)
            wins += _wins(good, bad)
    right_scores, wrong_scores = np.array(right, dtype=float), np.array(wrong, dtype=float)
    total = len(right) * len(wrong)
    return {
        "pair_accuracy": wins / pairs if pairs else None,
        "n_pairs": pairs,
        "n_problems": problems_with_pairs,
        "auroc": _wins(right_scores, wrong_scores) / total if total else None,
        "n": len(right) + len(wrong),
        "n_correct": len(right),
    }


def _wins(good: np.ndarray, bad: np.ndarray) -> float:
    """The number of (good, bad) pairs in which good scores higher, ties counting half: the Mann-Whitney U of good,
    from average ranks (memory linear in the candidates)."""
    if not len(good) or not len(bad):
        return 0.0
    _, inverse, counts = np.unique(np.concatenate([good, bad]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based, ties share their average rank
    return float(ranks[: len(good)].sum() - len(good) * (len(good) + 1) / 2)
