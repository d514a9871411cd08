"""SFT and DPO under real DDP: 2 processes over gloo on the CPU, and the run records world size 2.

`accelerate launch --cpu --num_processes 2` silently runs one process; accelerate_configs/cpu_ddp.yaml with
ACCELERATE_USE_CPU=true really distributes (see that file).
"""

import json
import os
import sys

import pytest

from training_helpers import REPO, run_recipe

pytestmark = pytest.mark.slow
# accelerate's launcher through this interpreter: an `accelerate` first on PATH may belong to another environment
LAUNCH = (
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--config_file",
    os.path.join(REPO, "accelerate_configs", "cpu_ddp.yaml"),
)
ENV = {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}  # two ranks share the two cores


@pytest.mark.parametrize("stage, start_from", [("sft", "pretrain"), ("dpo", "sft")])
def test_stage_runs_on_two_gloo_ranks(tmp_path, tiny_run, stage, start_from):
    result = run_recipe(stage, tmp_path / stage, "--model_name_or_path", tiny_run[start_from], launcher=LAUNCH, env=ENV)
    with open(tmp_path / f"{stage}_final" / "training_summary.json") as handle:
        summary = json.load(handle)
    assert summary["world_size"] == 2
    assert "world_size=2" in result.stdout + result.stderr  # logged by both ranks at setup
    assert summary["steps"] == 4 and summary["train_tokens"] > 0
