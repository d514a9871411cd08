"""The SLURM scripts, run without a cluster: bash with a fake `scontrol` on PATH and the job's SLURM variables set.

USR1 (what `#SBATCH --signal=B:USR1@600` sends before the time limit) must stop the pipeline, whose stage saves a
checkpoint at the end of its current step, then requeue the job; the requeued run resumes from that checkpoint and
finishes.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from training_helpers import REPO

SCRIPTS = ["recipes/slurm/tacc_pipeline.slurm", "recipes/slurm/tacc_pipeline_multinode.slurm"]
FAKE_SCONTROL = """#!/bin/bash
echo "$@" >> "$FAKE_SCONTROL_LOG"
if [ "$1" = show ] && [ "$2" = hostnames ]; then echo localhost; fi
"""


@pytest.mark.parametrize("script", SCRIPTS)
def test_slurm_script_parses_and_requeues(script):
    path = os.path.join(REPO, script)
    subprocess.run(["bash", "-n", path], check=True)
    text = open(path).read()
    for needed in (
        "#SBATCH --signal=B:USR1@",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "trap",
        "scontrol requeue",
        "recipes/pipeline.py",
    ):
        assert needed in text, needed
    # Site settings come from sbatch flags; the log lands where SLURM can open it before the script runs.
    assert "--partition" not in "".join(line for line in text.splitlines() if line.startswith("#SBATCH"))
    assert re.search(r"^#SBATCH --output=%x-%j\.out$", text, re.M)


def test_multinode_script_goes_through_accelerate():
    text = open(os.path.join(REPO, SCRIPTS[1])).read()
    for needed in ("accelerate_configs/multi_gpu.yaml", "--num_machines", "--machine_rank", "--main_process_ip"):
        assert needed in text, needed


def _job(tmp_path, restart_count, **extra_env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL)
    (bin_dir / "scontrol").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_SCONTROL_LOG": str(tmp_path / "scontrol.log"),
        "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": str(restart_count),
        "SLURM_SUBMIT_DIR": REPO,
        "SLURM_CPUS_PER_TASK": "2",
        "RUN_NAME": "slurm",
        "CONFIG": "tests/training/configs/slurm_pipeline.yaml",
        "PIPELINE_ARGS": f"--runs_dir {tmp_path / 'runs'}",
        "LOG_DIR": str(tmp_path / "logs"),
        "PYTHON": sys.executable,  # the interpreter running the tests, whatever `python` is first on PATH
        "SCRATCH": "",
        **extra_env,
    }
    env.pop("SCRATCH")  # unset on many clusters: the script must not abort under `set -u`
    return subprocess.Popen(
        ["bash", os.path.join(REPO, SCRIPTS[0])],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _steps(folder):
    return sorted(int(name.split("-")[1]) for name in os.listdir(folder) if name.startswith("checkpoint-"))


@pytest.mark.slow
def test_usr1_requeues_and_the_requeued_job_resumes(tmp_path):
    stage_dir = tmp_path / "runs" / "slurm" / "pretrain"
    job = _job(tmp_path, restart_count=0, REHEARSE="1")  # rehearses first, then starts the real run
    deadline = time.time() + 300
    while not (stage_dir / "checkpoint-10" / "trainer_state.json").exists():
        assert job.poll() is None, job.stdout.read()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    job.send_signal(signal.SIGUSR1)  # --signal=B: only the batch shell gets it
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output[-3000:]
    assert (tmp_path / "scontrol.log").read_text().split("\n")[0] == "requeue 4242"
    assert "time limit near" in output and not (stage_dir.parent / "pretrain_final").exists()
    assert (tmp_path / "runs" / "slurm-rehearsal" / "pretrain_final" / "training_summary.json").is_file()
    assert (tmp_path / "logs" / "slurm-rehearsal.log").is_file()
    stopped_at = _steps(stage_dir)[-1]  # saved at the step the signal arrived: no work lost, not even save_steps
    assert 10 <= stopped_at < 200
    with open(stage_dir / f"checkpoint-{stopped_at}" / "trainer_state.json") as handle:
        assert json.load(handle)["global_step"] == stopped_at

    requeued = _job(tmp_path, restart_count=1)
    output, _ = requeued.communicate(timeout=600)
    assert requeued.returncode == 0, output[-3000:]
    assert f"Resuming from {stage_dir}/checkpoint-{stopped_at}" in output
    with open(stage_dir.parent / "pretrain_final" / "training_summary.json") as handle:
        summary = json.load(handle)
    assert summary["steps"] == 200 and summary["resumed_from"].endswith(f"checkpoint-{stopped_at}")
    with open(stage_dir.parent / "pipeline_summary.json") as handle:
        assert json.load(handle)["steps"]["pretrain"]["status"] == "ok"


@pytest.mark.slow  # it starts the pipeline (a rehearsal that fails its checks)
def test_a_failed_rehearsal_keeps_the_real_run_from_starting(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "run_name: slurm\nstages: [pretrain]\nstage_configs: {pretrain: tests/training/configs/pretrain.yaml}\n"
        "stage_args: {pretrain: --max_steps 0}\n"
    )
    job = _job(tmp_path, restart_count=0, REHEARSE="1", CONFIG=str(broken))
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 1 and "rehearsal failed: the real run was not started" in output
    assert "`max_steps` must be positive" in output and not (tmp_path / "runs" / "slurm").exists()
