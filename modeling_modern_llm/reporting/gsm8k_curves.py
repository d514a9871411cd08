"""GSM8K exact match against the number of samples N, recomputed from per-problem candidates.

Reads ``gsm8k_analysis.json["problems"]`` as ``modeling_modern_llm.evaluation.gsm8k`` writes them:
``{"reference", "greedy_answer", "candidates": [{"answer": str | null, "correct": bool, "verifier_score": float | null}]}``
with the candidates in sampling order. The value at N' uses the first N' candidates only, so every
point is a prefix of the run the evaluation made (no new sampling). The rules are the evaluation's
(at N' = N the numbers equal its metrics): majority vote picks the most frequent extracted answer (ties:
the one seen first; unparsable answers do not vote), the verifier picks the highest score (ties: the
first), the oracle is right if any candidate is. Without verifier scores there is no verifier curve.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

METHODS = ("greedy", "majority_vote", "verifier_best_of_n", "oracle_pass_at_n")


def _problem_scores(problem: dict, n: int, with_verifier: bool) -> dict[str, bool]:
    candidates = problem["candidates"][:n]
    votes = Counter(c["answer"] for c in candidates if c["answer"] is not None)
    majority = votes.most_common(1)[0][0] if votes else None  # most_common keeps first-seen order on ties
    scores = {
        "greedy": problem["greedy_answer"] == problem["reference"],
        "majority_vote": majority == problem["reference"],
        "oracle_pass_at_n": any(c["correct"] for c in candidates),
    }
    if with_verifier:  # max() returns the first of equal scores, as the evaluation's choice
        scores["verifier_best_of_n"] = candidates[
            max(range(len(candidates)), key=lambda i: candidates[i]["verifier_score"])
        ]["correct"]
    return scores


def sample_sizes(n_samples: int) -> list[int]:
    """Powers of two up to ``n_samples``, and ``n_samples`` itself."""
    sizes = [2**k for k in range(n_samples.bit_length()) if 2**k <= n_samples]
    return sizes if sizes and sizes[-1] == n_samples else [*sizes, n_samples]


def exact_match_curve(problems: Sequence[dict], sizes: Sequence[int]) -> dict[str, list[float]]:
    """``{method: [exact match at each N in sizes]}`` as fractions of the problems (no verifier entry without scores)."""
    if not problems or any(not p.get("candidates") for p in problems):
        raise ValueError("gsm8k_analysis.json 'problems' lack sampled 'candidates': evaluate with n_samples > 0")
    with_verifier = all(c["verifier_score"] is not None for p in problems for c in p["candidates"])
    methods = [m for m in METHODS if with_verifier or m != "verifier_best_of_n"]
    curve = {method: [] for method in methods}
    for n in sizes:
        scores = [_problem_scores(problem, n, with_verifier) for problem in problems]
        for method in methods:
            curve[method].append(sum(s[method] for s in scores) / len(scores))
    return curve
