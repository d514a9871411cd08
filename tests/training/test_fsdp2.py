"""FSDP2 over gloo with 2 processes on the CPU: Trainer's sharded checkpoint layout is judged valid and resumes exactly,
and the final save gathers a full model that loads anywhere (tests/training/workers/fsdp2_checkpoint.py)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from training_helpers import REPO
from transformers import AutoModelForCausalLM

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.training import (
    checkpoint_layout,
    checkpoint_problem,
    last_valid_checkpoint,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fsdp2_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("fsdp2")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        os.path.join(REPO, "tests", "training", "workers", "fsdp2_checkpoint.py"),
        str(output_dir),
    ]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return output_dir


def test_sharded_checkpoint_is_judged_valid_and_resumes_exactly(fsdp2_run):
    checkpoint = fsdp2_run / "checkpoint-3"
    assert checkpoint_layout(str(checkpoint)) == "fsdp-sharded" and checkpoint_problem(str(checkpoint)) is None
    assert last_valid_checkpoint(str(fsdp2_run)) == str(checkpoint)
    with open(fsdp2_run / "resume.json") as handle:
        resume = json.load(handle)
    assert resume["world_size"] == 2
    assert resume["resumed"] == pytest.approx(resume["uninterrupted"], rel=1e-6)


def test_final_save_gathers_a_loadable_full_model(fsdp2_run):
    model = AutoModelForCausalLM.from_pretrained(fsdp2_run / "final")
    expected = torch.load(fsdp2_run / "final_logits.pt")
    with torch.no_grad():
        logits = model(input_ids=torch.arange(16).reshape(1, 16)).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
