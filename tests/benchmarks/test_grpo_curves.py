"""The GRPO learning-curves benchmark's bookkeeping: which folders are checkpoints, the reward per window, the table."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("grpo_curves", ROOT / "benchmarks" / "grpo_curves.py")
grpo_curves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grpo_curves)


def test_checkpoints_are_found_by_step_and_nothing_else(tmp_path):
    for name in ("checkpoint-140", "checkpoint-35", "checkpoint-70", "README.md", "runs"):
        (tmp_path / name).mkdir()
    assert [step for step, _ in grpo_curves.checkpoints(str(tmp_path))] == [35, 70, 140]


def test_the_reward_of_a_row_is_the_mean_since_the_previous_row():
    history = [{"step": 5, "reward": 0.1}, {"step": 10, "reward": 0.3}, {"step": 15, "reward": 0.8}, {"step": 15}]
    assert grpo_curves.mean_reward(history, 0, 10) == 0.2
    assert grpo_curves.mean_reward(history, 10, 15) == 0.8
    assert grpo_curves.mean_reward(history, 15, 20) is None


def test_the_table_has_a_row_per_step_with_errors_and_n():
    cell = {"value": 0.25, "stderr": 0.02, "n": 500}
    row = {"greedy": cell, "pass@1": cell, "majority": cell, "pass@N": {"value": 0.5, "stderr": 0.03, "n": 500}}
    report = {"start_model": "run/dpo_final", "n_samples": 8, "calculator": True, "command": "python x.py"}
    report["rows"] = [{"step": 0, "reward": None, **row}, {"step": 35, "reward": 0.3, **row}]
    lines = grpo_curves.markdown(report).splitlines()
    assert "n = 500 held-out problems" in lines[0]
    assert lines[-2] == "| 0 | — | 25.0 ± 2.0 | 25.0 ± 2.0 | 25.0 ± 2.0 | 50.0 ± 3.0 |"
    assert lines[-1].startswith("| 35 | 0.300 |")
