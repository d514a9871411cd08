"""The shipped GPU configs run: `pipeline.py --rehearse` of gpu-smoke and gpu-full, end to end on this CPU.

Each stage runs with its own trainer, data path (stand-ins in each Hub dataset's schema: the Hub is offline here),
packing, precision (bf16 autocast), torch_compile and checkpointing, is interrupted once by a real SIGTERM and
resumed, and saves its final model; then the evaluation and the report run, all into <run>-rehearsal/.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml
from training_helpers import REPO

pytestmark = pytest.mark.slow
STAGES = ("pretrain", "sft", "dpo", "verifier", "grpo")


@pytest.mark.parametrize("scale, run", [("gpu-smoke", "smoke"), ("gpu-full", "full")])
def test_rehearsal_of_a_gpu_scale(scale, run, tmp_path):
    command = [
        sys.executable,
        os.path.join(REPO, "recipes", "pipeline.py"),
        "--config",
        f"recipes/configs/{scale}/pipeline.yaml",
        "--rehearse",
        "--runs_dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    rehearsal_dir = tmp_path / f"{run}-rehearsal"
    assert sorted(os.listdir(tmp_path)) == [f"{run}-rehearsal"]  # never mixed with the real run's folder
    with open(rehearsal_dir / "pipeline_summary.json") as handle:
        pipeline_summary = json.load(handle)
    assert pipeline_summary["rehearsal"] is True
    assert all(pipeline_summary["steps"][name]["status"] == "ok" for name in (*STAGES, "evaluation", "report"))
    assert "[rehearsal] the Hub cannot be reached" in log and "bf16 runs as autocast on the CPU" in log
    for stage in STAGES:
        with open(os.path.join(REPO, "recipes", "configs", scale, f"{stage}.yaml")) as handle:
            config = yaml.safe_load(handle)
        with open(rehearsal_dir / f"{stage}_final" / "training_summary.json") as handle:
            summary = json.load(handle)
        assert pipeline_summary["steps"][stage]["attempts"] == 2, stage  # stopped by SIGTERM, then resumed
        assert summary["resumed_from"] == str(rehearsal_dir / stage / "checkpoint-2"), stage
        assert summary["steps"] == 4 and summary["rehearsal"] is True
        assert summary["mixed_precision"] == "bf16" and summary["param_dtype"] == "float32"  # autocast, fp32 master
        assert summary["attn_implementation"] == config["attn_implementation"]
        assert summary["torch_compile"] is config["torch_compile"]
        assert summary["padding_free"] is False
    assert (rehearsal_dir / "final_report.md").is_file()
    assert (rehearsal_dir / "results").is_dir()
