"""The pipeline end to end with tiny stages: finals in the runs layout, then a rerun skips every finished stage."""

import json
import os
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM

import modeling_modern_llm  # noqa: F401
from training_helpers import CONFIGS, REPO

pytestmark = pytest.mark.slow


def _pipeline(tmp_path, *extra):
    command = [
        sys.executable,
        os.path.join(REPO, "recipes", "pipeline.py"),
        "--config",
        os.path.join(CONFIGS, "pipeline.yaml"),
        "--runs_dir",
        str(tmp_path / "runs"),
        "--results_dir",
        str(tmp_path / "results"),
        "--eval_script",
        "eval/not_written_yet.py",
        "--report_output",
        str(tmp_path / "report.md"),
        *extra,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)


def test_pipeline_runs_every_stage_then_skips_them(tmp_path):
    first = _pipeline(tmp_path)
    assert first.returncode == 0, first.stderr[-4000:]
    run_dir = tmp_path / "runs" / "tiny"
    for stage in ("pretrain", "sft", "dpo", "verifier", "grpo"):
        assert (run_dir / f"{stage}_final" / "training_summary.json").is_file()
    AutoModelForCausalLM.from_pretrained(run_dir / "grpo_final")
    assert "[evaluation] SKIPPED: eval/not_written_yet.py is missing" in first.stderr
    assert "[report] SKIPPED: the evaluation did not run" in first.stderr
    with open(run_dir / "pipeline_summary.json") as handle:
        summary = json.load(handle)
    assert [summary["steps"][s]["status"] for s in ("pretrain", "sft", "dpo", "verifier", "grpo")] == ["ok"] * 5
    assert summary["steps"]["evaluation"]["status"].startswith("skipped")
    assert summary["steps"]["report"]["status"].startswith("skipped")
    verifier_command = summary["steps"]["verifier"]["command"]
    assert f"--model_name_or_path {run_dir / 'dpo_final'}" in verifier_command
    grpo_command = summary["steps"]["grpo"]["command"]
    assert f"--model_name_or_path {run_dir / 'dpo_final'}" in grpo_command
    assert f"--reward_model_name_or_path {run_dir / 'verifier_final'}" in grpo_command

    second = _pipeline(tmp_path, "--skip_eval", "true")
    assert second.returncode == 0
    assert second.stderr.count("finished already") == 5 and "recipes/pretrain.py" not in second.stderr


def test_pipeline_config_errors_name_the_field(tmp_path):
    result = _pipeline(tmp_path, "--stages", "pretrain", "sfft")
    assert result.returncode != 0 and "sfft" in result.stderr
