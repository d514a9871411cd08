"""The verifier sweep's bookkeeping: variants, the runs it reads, the measured rows and their means over seeds."""

import importlib.util
from pathlib import Path

import pytest

from modeling_modern_llm.errors import UsageError
from modeling_modern_llm.evaluation.selectors import Problem

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("verifier_sweep", ROOT / "benchmarks" / "verifier_sweep.py")
verifier_sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(verifier_sweep)


def test_a_variant_is_a_name_and_its_recipe_flags():
    assert verifier_sweep.parse_variant("400x8=--max_train_samples 400 --samples_per_problem 8") == (
        "400x8",
        ["--max_train_samples", "400", "--samples_per_problem", "8"],
    )
    assert verifier_sweep.parse_variant("run") == ("run", [])
    for bad in ("=--seed 1", "a/b=--seed 1", "run=--seed 1"):
        with pytest.raises(UsageError):
            verifier_sweep.parse_variant(bad)


def test_the_runs_are_the_seed_folders_and_each_must_be_evaluated(tmp_path):
    for seed in (0, 1):
        (tmp_path / f"seed-{seed}" / "results").mkdir(parents=True)
    runs = verifier_sweep.seed_runs(str(tmp_path), [0, 1])
    assert runs == [(0, str(tmp_path / "seed-0")), (1, str(tmp_path / "seed-1"))]
    with pytest.raises(UsageError, match="seed-2/results not found"):
        verifier_sweep.seed_runs(str(tmp_path), [0, 2])
    with pytest.raises(UsageError, match="results not found"):
        verifier_sweep.seed_runs(str(tmp_path), None)


def solution(answer: int) -> str:
    return f"So the answer is {answer}.\n#### {answer}"


def problems(good_scores_higher: bool) -> list[Problem]:
    """Two problems, each with two right and two wrong candidates; the verifier ranks right above wrong, or not."""
    items = []
    for reference in (3, 7):
        candidates = [solution(reference), solution(reference + 1), solution(reference), solution(reference + 2)]
        scores = [2.0, 1.0, 1.5, 0.5] if good_scores_higher else [0.5, 2.0, 1.0, 1.5]
        items.append(Problem(f"q{reference}", f"... #### {reference}", solution(reference + 1), candidates, scores))
    return items


def test_a_verifier_that_ranks_right_above_wrong_beats_a_random_pick():
    good = verifier_sweep.measure(problems(good_scores_higher=True))
    assert (good["pair_accuracy"], good["n_pairs"], good["auroc"]) == (1.0, 8, 1.0)
    assert good["verifier_best_of_n-random_of_n"]["difference"] == pytest.approx(0.5)
    assert good["verifier_best_of_n-greedy"]["difference"] == pytest.approx(1.0)
    bad = verifier_sweep.measure(problems(good_scores_higher=False))
    assert bad["pair_accuracy"] == 0.0
    assert bad["verifier_best_of_n-random_of_n"]["difference"] == pytest.approx(-0.5)


def test_the_means_over_seeds_count_the_seeds_whose_interval_is_above_0():
    rows = []
    for seed, higher in ((0, True), (1, True), (2, False)):
        rows.append(
            {
                "variant": "v",
                "flags": "--seed 1",
                "seed": seed,
                "train_seconds": 100.0 + seed,
                "train_samples": 3200,
                "train_problems": 200,
                "verifier": "x",
                "task": "t",
                **verifier_sweep.measure(problems(higher)),
            }
        )
    summary = verifier_sweep.mean_over_seeds(rows)
    assert summary["n_seeds"] == 3
    assert summary["pair_accuracy"]["mean"] == pytest.approx(2 / 3)
    assert summary["verifier_best_of_n-random_of_n"]["seeds_above_0"] == 2
    assert summary["train_seconds"]["mean"] == pytest.approx(101.0)
    table = verifier_sweep.markdown({"command": "python x.py", "rows": rows, "means": [summary]})
    assert "2 problems x 4 samples of `t`" in table
    assert "| v | 3 | 0.667 ± 0.577 | 0.667 ± 0.577 | +16.7 ± 57.7 (2) |" in table
    assert "| v | 0 | 1.000 (8) | 1.000 (8) | 1.000 | +50.0 [+50.0, +50.0] |" in table
    assert table.splitlines()[2] == "`v`: the stage's YAML with `--seed 1`."
    assert table.splitlines()[6].endswith("| 3200 (200) | 100 |")
    assert "| 3200 (200) | 100 |" in table


def test_the_error_checks_rank_a_copied_operand_below_the_questions_own():
    question = "Ava has 4 bags with 6 apples in each bag. How many apples does Ava have?"
    right, copied = "Ava has 4*6 = <<4*6=24>>24 apples. #### 24", "Ava has 4*7 = <<4*7=28>>28 apples. #### 28"
    items = [Problem(question, "#### 24", right, [copied, right], None)]
    assert verifier_sweep.rank_by_checks(items)[0].scores == [-1, 0]
    assert verifier_sweep.parse_variant("error_checks") == ("error_checks", [])
    with pytest.raises(UsageError):
        verifier_sweep.parse_variant("error_checks=--seed 1")
