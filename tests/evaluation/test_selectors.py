"""Best-of-N selectors on hand-made samples (ties, unparsable answers, verifier scores) and their statistics."""

import math

import pytest
from lm_eval.api.metrics import mean_stderr

from modeling_modern_llm.evaluation.selectors import (
    Problem,
    available_selectors,
    choose,
    correct,
    exact_match_curve,
    paired_bootstrap,
    sample_sizes,
    standard_error,
)

GOLD = "steps\n#### 7"


def problem(candidates, scores=None, greedy="3+4 = 7\n#### 7"):
    return Problem("What is 3+4?", GOLD, greedy, candidates, scores)


def test_majority_vote_ties_go_to_the_answer_sampled_first_and_unparsable_answers_do_not_vote():
    tie = problem(["#### 8", "#### 7", "#### 7", "#### 8"])
    assert choose(tie, "majority_vote") == "#### 8"  # 8 and 7 twice each: 8 came first
    unparsable = problem(["no idea", "none", "still none", "#### 7"])
    assert choose(unparsable, "majority_vote") == "#### 7"  # three unparsable solutions are not a majority
    assert choose(problem(["no idea", "?"]), "majority_vote") == ""  # nothing parses: no answer
    assert correct([problem(["no idea", "?"])], "majority_vote") == [False]


def test_verifier_best_of_n_and_weighted_vote():
    scored = problem(["#### 8", "#### 8", "#### 7"], scores=[0.5, 0.5, 3.0])
    assert choose(scored, "verifier_best_of_n") == "#### 7" and choose(scored, "majority_vote") == "#### 8"
    assert 1 / (1 + math.exp(-3.0)) < 2 / (1 + math.exp(-0.5))  # weights: 7 gets 0.95, 8 gets 2 x 0.62
    assert choose(scored, "verifier_weighted_vote") == "#### 8"
    confident = problem(["#### 8", "#### 8", "#### 7"], scores=[-4.0, -4.0, 3.0])
    assert choose(confident, "verifier_weighted_vote") == "#### 7"  # two near-zero weights lose to one near one
    tie = problem(["#### 8", "#### 7"], scores=[1.0, 1.0])
    assert choose(tie, "verifier_best_of_n") == "#### 8"  # equal scores: the first sampled
    with pytest.raises(ValueError, match="--verifier"):
        choose(problem(["#### 7"]), "verifier_best_of_n")


def test_oracle_greedy_and_the_selectors_a_run_allows():
    items = [problem(["#### 8", "#### 7"]), problem(["#### 8", "#### 9"], greedy="#### 9")]
    assert correct(items, "oracle_pass_at_n") == [True, False]
    assert correct(items, "greedy") == [True, False]
    assert available_selectors(items) == ["greedy", "majority_vote", "oracle_pass_at_n"]
    items[0].scores = items[1].scores = [0.0, 1.0]
    assert available_selectors(items) == ["greedy", "majority_vote", "verifier_best_of_n", "verifier_weighted_vote",
                                          "oracle_pass_at_n"]
    assert available_selectors([Problem("q", GOLD, None, ["#### 7"])]) == ["majority_vote", "oracle_pass_at_n"]


def test_exact_match_against_n_uses_the_first_n_samples():
    items = [problem(["#### 8", "#### 7", "#### 7", "#### 7"]), problem(["#### 7", "#### 8", "#### 8", "#### 7"])]
    assert sample_sizes(8) == [1, 2, 4, 8] and sample_sizes(6) == [1, 2, 4, 6] and sample_sizes(1) == [1]
    curve = exact_match_curve(items, [1, 2, 4])
    assert curve["oracle_pass_at_n"] == [0.5, 1.0, 1.0]
    assert curve["majority_vote"] == [0.5, 0.5, 1.0]  # N=2: ties, the first sampled wins; N=4: 7 (3 votes), 7 (tie)
    assert curve["greedy"] == [1.0, 1.0, 1.0]


def test_standard_error_is_lm_evals_and_the_paired_bootstrap_brackets_the_difference():
    values = [1.0, 0.0, 1.0, 1.0, 0.0]
    assert standard_error(values) == mean_stderr(values)
    assert paired_bootstrap([True] * 20, [True] * 20)["low"] == 0.0
    always = paired_bootstrap([False] * 20, [True] * 20)
    assert always["difference"] == always["low"] == always["high"] == 1.0
    mixed = paired_bootstrap([True, False] * 50, [True, True] * 50, seed=1)
    assert mixed["low"] < mixed["difference"] == 0.5 < mixed["high"] and mixed["n"] == 100
    assert mixed == paired_bootstrap([True, False] * 50, [True, True] * 50, seed=1)  # reproducible by its seed
    with pytest.raises(ValueError):
        paired_bootstrap([True], [True, False])
