"""A full disk mid-run: one line that says so and names the folder, and a rerun after freeing space resumes.

The disk is a real one: a small tmpfs mounted for the test (it needs root; skipped where mounting is not allowed).
"""

import os
import subprocess

import pytest

from training_helpers import run_recipe

pytestmark = pytest.mark.slow
STEPS = ("--max_steps", "40", "--save_steps", "2", "--save_total_limit", "100", "--eval_strategy", "no")


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_disk_full_is_one_line_and_a_rerun_resumes(small_disk):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (3 * 2**20))  # leaves room for the tokenizer and a few checkpoints, not forty
    output_dir = small_disk / "pretrain"
    failed = run_recipe("pretrain", output_dir, *STEPS, check=False)
    assert failed.returncode == 1, failed.stderr[-3000:]
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("pretrain.py: error: disk full while writing") and str(output_dir) in last_line
    assert "Traceback" not in failed.stderr and "resumes from" in last_line

    os.remove(filler)
    for checkpoint in sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:-3]:
        subprocess.run(["rm", "-r", str(checkpoint)], check=True)  # free more: keep only the newest ones
    resumed = run_recipe("pretrain", output_dir, *STEPS, "--save_total_limit", "2")
    assert "Resuming from" in resumed.stdout + resumed.stderr
    assert (small_disk / "pretrain_final" / "model.safetensors").is_file()
