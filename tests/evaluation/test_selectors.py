"""Best-of-N selectors on hand-made samples (ties, unparsable answers, verifier scores) and their statistics."""

import itertools
import math

import numpy as np
import pytest
from lm_eval.api.metrics import mean_stderr
from sklearn.metrics import roc_auc_score

from modeling_modern_llm.evaluation.selectors import (
    TOP_K,
    Problem,
    available_selectors,
    choose,
    correct,
    exact_match_curve,
    paired_bootstrap,
    sample_sizes,
    standard_error,
    verifier_ranking,
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
    assert available_selectors(items) == ["greedy", "random_of_n", "majority_vote", "oracle_pass_at_n"]
    items[0].scores = items[1].scores = [0.0, 1.0]
    assert available_selectors(items) == [
        "greedy",
        "random_of_n",
        "majority_vote",
        "verifier_best_of_n",
        "verifier_weighted_vote",
        "verifier_top_k_vote",
        "oracle_pass_at_n",
    ]
    assert available_selectors([Problem("q", GOLD, None, ["#### 7"])]) == [
        "random_of_n",
        "majority_vote",
        "oracle_pass_at_n",
    ]


def test_random_of_n_is_the_fraction_of_correct_samples_and_picks_no_single_solution():
    items = [problem(["#### 7", "#### 8", "no idea", "#### 7"]), problem(["#### 9", "#### 8"]), problem([])]
    assert correct(items, "random_of_n") == [0.5, 0.0, 0.0]  # the unparsable one counts as wrong
    assert correct(items, "random_of_n", n=1) == [1.0, 0.0, 0.0]
    assert exact_match_curve(items[:2], [1, 2, 4])["random_of_n"] == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="no single solution"):
        choose(items[0], "random_of_n")
    # fractions pair with 0/1 results: the difference of means, resampled per problem
    versus = paired_bootstrap(correct(items, "random_of_n"), correct(items, "oracle_pass_at_n"), seed=3)
    assert versus["difference"] == pytest.approx((1.0 - 0.5 + 0.0 + 0.0) / 3)
    assert versus["low"] <= versus["difference"] <= versus["high"]


def test_verifier_top_k_vote_votes_among_the_k_best_scored():
    assert TOP_K == 3
    # the top 3 by score are #### 8 (2.0), #### 7 (1.5), #### 7 (1.0): 7 wins two votes to one
    voted = problem(
        ["#### 8", "#### 7", "#### 9", "#### 7", "#### 9", "#### 9"], scores=[2.0, 1.5, -1.0, 1.0, 0.0, -2.0]
    )
    assert choose(voted, "verifier_top_k_vote") == "#### 7"
    assert choose(voted, "verifier_best_of_n") == "#### 8" and choose(voted, "majority_vote") == "#### 9"
    # three different answers in the top 3: the answer of the highest-scored one
    spread = problem(["#### 9", "#### 8", "#### 7", "#### 7"], scores=[0.1, 0.9, 0.5, 0.0])
    assert choose(spread, "verifier_top_k_vote") == "#### 8"
    # fewer samples than k: all of them vote; unparsable ones in the top k do not
    assert choose(problem(["no idea", "#### 7"], scores=[5.0, 1.0]), "verifier_top_k_vote") == "#### 7"
    assert correct([voted, spread], "verifier_top_k_vote") == [1.0, 0.0]


def brute_force_ranking(items, parsed_only=False):
    """The definitions, computed directly: every within-problem pair, and every pair over all candidates."""
    pairs, everything = [], []
    for p in items:
        kept = [(s, c.endswith(" 7")) for c, s in zip(p.candidates, p.scores) if not parsed_only or c != "no idea"]
        everything += kept
        pairs += [
            1.0 if g > b else 0.5 if g == b else 0.0
            for (g, gc), (b, bc) in itertools.product(kept, kept)
            if gc and not bc
        ]
    labels = [int(c) for _, c in everything]
    return sum(pairs) / len(pairs), len(pairs), roc_auc_score(labels, [s for s, _ in everything]), len(everything)


def test_verifier_pair_accuracy_and_auroc_equal_their_definitions():
    items = [
        problem(["#### 7", "#### 8", "no idea", "#### 7"], scores=[0.3, 0.9, -0.2, 0.3]),
        problem(["#### 8", "#### 7", "#### 9"], scores=[0.5, 0.5, 0.1]),
        problem(["#### 7", "#### 7"], scores=[2.0, -3.0]),  # no wrong candidate: no pair
        problem(["no idea", "#### 8"], scores=[4.0, 1.0]),
    ]  # no correct candidate: no pair
    for parsed_only in (False, True):
        ranking = verifier_ranking(items, parsed_only=parsed_only)
        pair_accuracy, n_pairs, auroc, n = brute_force_ranking(items, parsed_only)
        assert ranking["pair_accuracy"] == pytest.approx(pair_accuracy) and ranking["n_pairs"] == n_pairs
        assert ranking["auroc"] == pytest.approx(auroc) and ranking["n"] == n and ranking["n_problems"] == 2
    # by hand: problem 1 pairs (0.3 vs 0.9, -0.2; 0.3 vs 0.9, -0.2) = 2 of 4, problem 2 (0.5 vs 0.5, 0.1) = 1.5 of 2;
    # answers that parse only: problem 1 loses "no idea" (0.3 vs 0.9 twice) = 0 of 2
    assert verifier_ranking(items)["pair_accuracy"] == pytest.approx(3.5 / 6)
    assert verifier_ranking(items, parsed_only=True)["pair_accuracy"] == pytest.approx(1.5 / 4)
    assert verifier_ranking([problem(["#### 7"], scores=[1.0])])["pair_accuracy"] is None
    rng = np.random.default_rng(0)  # many ties and sizes: the rank formula equals scikit-learn's AUROC
    big = [
        problem([f"#### {a}" for a in rng.integers(6, 9, 8)], scores=rng.integers(0, 4, 8).tolist()) for _ in range(50)
    ]
    assert verifier_ranking(big)["auroc"] == pytest.approx(brute_force_ranking(big)[2])


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
