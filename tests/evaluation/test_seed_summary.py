"""Every number across seeds: the mean, the sample standard deviation, the t interval of the mean with n - 1 degrees
of freedom, the sign agreement of changes, and the keys of one run's metrics."""

from __future__ import annotations

import math

import pytest

from modeling_modern_llm.evaluation import results
from modeling_modern_llm.evaluation.seed_summary import across_seeds, metric_name, summarize, t_quantile


def test_t_quantiles_are_students_not_the_normal_ones():
    # Student's t, two-sided 95%, from any statistics table: 12.706 (1 df), 4.303 (2), 2.776 (4); normal 1.960
    assert t_quantile(0.95, 1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile(0.95, 2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(0.95, 4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile(0.95, 10_000) == pytest.approx(1.960, abs=1e-3)


def test_mean_sd_and_interval_across_three_seeds():
    summary = across_seeds([0.1, 0.2, 0.3])
    assert summary["mean"] == pytest.approx(0.2) and summary["sd"] == pytest.approx(0.1)  # n - 1 in the denominator
    half = 4.302652729911275 * 0.1 / math.sqrt(3)
    assert summary["interval"] == pytest.approx([0.2 - half, 0.2 + half])
    assert across_seeds([0.5, None, 0.7])["mean"] == pytest.approx(0.6)  # a seed without the number is left out
    assert across_seeds([0.4]) == {"mean": 0.4, "sd": None, "interval": None}  # one seed: no spread to show
    assert across_seeds([None, None])["mean"] is None


def _metric(kind: str, value: float, stderr: float | None = 0.02, **more) -> dict:
    return {
        "kind": kind,
        "measure": "GSM8K greedy",
        "stage": "sft",
        "task": "embedded_gsm8k_chat",
        "percent": True,
        "value": value,
        "stderr": stderr,
        "n": 300,
        **more,
    }


def test_summarize_aligns_values_with_seeds_and_counts_signs():
    seeds = [0, 1, 2]
    per_seed = [
        {
            "sft/t/greedy": _metric("value", 0.9),
            "sft/t/greedy_gain": _metric("gain", 0.8, previous_stage="pretrain"),
            "dpo/t/verifier_best_of_n_vs_greedy": _metric(
                "difference", -0.1, treatment="verifier_best_of_n", baseline="greedy", interval=[-0.15, -0.05]
            ),
        },
        {
            "sft/t/greedy": _metric("value", 0.8, stderr=0.04),
            "sft/t/greedy_gain": _metric("gain", 0.7, previous_stage="pretrain"),
            "dpo/t/verifier_best_of_n_vs_greedy": _metric(
                "difference", 0.02, treatment="verifier_best_of_n", baseline="greedy"
            ),
        },
        {"sft/t/greedy": _metric("value", 0.85), "sft/t/greedy_gain": _metric("gain", 0.75, previous_stage="pretrain")},
    ]
    summary = summarize(seeds, per_seed)
    assert summary["seeds"] == seeds and summary["confidence"] == 0.95
    value = summary["metrics"]["sft/t/greedy"]
    assert value["values"] == [0.9, 0.8, 0.85] and value["mean"] == pytest.approx(0.85)
    assert value["sd"] == pytest.approx(0.05) and value["stderrs"] == [0.02, 0.04, 0.02]
    assert value["mean_stderr"] == pytest.approx(0.08 / 3) and value["n_seeds"] == 3 and "positive" not in value
    gain = summary["metrics"]["sft/t/greedy_gain"]
    assert (gain["positive"], gain["negative"], gain["previous_stage"]) == (3, 0, "pretrain")
    difference = summary["metrics"]["dpo/t/verifier_best_of_n_vs_greedy"]
    assert difference["values"] == [-0.1, 0.02, None] and difference["n_seeds"] == 2
    assert (difference["positive"], difference["negative"]) == (1, 1) and difference["baseline"] == "greedy"
    assert difference["mean"] == pytest.approx(-0.04) and difference["interval"][0] < -0.04 < difference["interval"][1]
    with pytest.raises(ValueError, match="3 seeds but 2 runs"):
        summarize(seeds, per_seed[:2])


def test_metric_names_follow_the_selectors_and_the_columns():
    assert [metric_name(column) for column in results.COLUMNS] == [
        "bits_per_byte",
        "accuracy",
        *results.SELECTOR_COLUMNS,
    ]
    assert metric_name("a new column") == "a_new_column"
