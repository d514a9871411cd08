"""The SLURM scripts cannot run here (no SLURM, no GPU): check their syntax and the requeue mechanics they must have."""

import os
import subprocess

import pytest

from training_helpers import REPO

SCRIPTS = ["recipes/slurm/tacc_pipeline.slurm", "recipes/slurm/tacc_pipeline_multinode.slurm"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_slurm_script_parses_and_requeues(script):
    path = os.path.join(REPO, script)
    subprocess.run(["bash", "-n", path], check=True)
    text = open(path).read()
    for needed in ("#SBATCH --signal=B:USR1@", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                   "trap", "scontrol requeue", "recipes/pipeline.py"):
        assert needed in text, needed


def test_multinode_script_goes_through_accelerate():
    text = open(os.path.join(REPO, SCRIPTS[1])).read()
    for needed in ("accelerate_configs/multi_gpu.yaml", "--num_machines", "--machine_rank", "--main_process_ip"):
        assert needed in text, needed
