"""Kill a stage with SIGKILL at a random step, run the same command again: the final loss equals an uninterrupted run.

Same seed, CPU, fp32. The resumed run reloads weights, optimizer, scheduler, RNG states and skips the batches
already seen, so the remaining steps repeat the uninterrupted run's arithmetic exactly; the tolerance (1e-6
relative) only absorbs float formatting. A truncated newest checkpoint is moved aside and the previous one
used, with the same result.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from training_helpers import CONFIGS, REPO, log_history, run_recipe

pytestmark = pytest.mark.slow
STEPS = ("--max_steps", "60", "--save_steps", "5", "--eval_strategy", "no", "--logging_steps", "1")


def _final_loss(output_dir):
    return [entry["loss"] for entry in log_history(output_dir) if "loss" in entry][-1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("uninterrupted") / "pretrain"
    run_recipe("pretrain", output_dir, *STEPS)
    return _final_loss(output_dir)


def _kill_after_checkpoint(output_dir, step):
    """Start the stage, SIGKILL it once checkpoint-<step> exists (the run is then somewhere past it)."""
    command = [
        sys.executable,
        os.path.join(REPO, "recipes", "pretrain.py"),
        "--config",
        os.path.join(CONFIGS, "pretrain.yaml"),
        "--output_dir",
        str(output_dir),
        *STEPS,
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (output_dir / f"checkpoint-{step}" / "trainer_state.json").exists():
        assert process.poll() is None, "the stage ended before it could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(random.uniform(0, 1.0))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (output_dir.parent / "pretrain_final").exists(), "killed too late: the stage had finished"


def test_sigkill_then_rerun_gives_the_same_final_loss(tmp_path, uninterrupted):
    output_dir = tmp_path / "pretrain"
    _kill_after_checkpoint(output_dir, random.choice([10, 15]))
    result = run_recipe("pretrain", output_dir, *STEPS)
    assert "Resuming from" in result.stdout + result.stderr
    assert _final_loss(output_dir) == pytest.approx(uninterrupted, rel=1e-6)


def test_truncated_last_checkpoint_falls_back_to_the_previous_one(tmp_path, uninterrupted):
    output_dir = tmp_path / "pretrain"
    _kill_after_checkpoint(output_dir, 15)
    # The kill may land mid-save, leaving a newer folder without weights (a case of its own): truncate the newest complete one
    newest = max(
        (p for p in output_dir.iterdir() if p.name.startswith("checkpoint-") and (p / "model.safetensors").is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = run_recipe("pretrain", output_dir, *STEPS)
    log = result.stdout + result.stderr
    assert f"{newest.name} is unusable" in log and "truncated" in log
    assert (output_dir / f"corrupt-{newest.name}").is_dir()
    assert _final_loss(output_dir) == pytest.approx(uninterrupted, rel=1e-6)


ROLLBACK = ("--save_steps", "5", "--save_total_limit", "10", "--eval_strategy", "no", "--logging_steps", "1")


def _summary(output_dir):
    with open(output_dir.parent / f"{output_dir.name}_final" / "training_summary.json") as handle:
        return json.load(handle)


def test_a_named_older_checkpoint_wins_and_equals_resuming_there_by_hand(tmp_path):
    output_dir = tmp_path / "named" / "pretrain"
    run_recipe("pretrain", output_dir, "--max_steps", "20", *ROLLBACK)  # checkpoints 5, 10, 15, 20
    by_hand = tmp_path / "by_hand" / "pretrain"
    for name in ("checkpoint-10", "tokenizer"):  # only checkpoint-10 (and the trained tokenizer) in a fresh folder
        shutil.copytree(output_dir / name, by_hand / name)
    # Roll back to checkpoint-10 and train on to 24 steps (a longer schedule, so resuming from the newest
    # checkpoint instead would end elsewhere)
    named = run_recipe(
        "pretrain",
        output_dir,
        "--max_steps",
        "24",
        *ROLLBACK,
        "--overwrite_final",
        "true",
        "--resume_from_checkpoint",
        str(output_dir / "checkpoint-10"),
    )
    run_recipe("pretrain", by_hand, "--max_steps", "24", *ROLLBACK)
    assert _summary(output_dir)["resumed_from"] == str(output_dir / "checkpoint-10")
    assert _summary(by_hand)["resumed_from"] == str(by_hand / "checkpoint-10")
    assert _summary(output_dir)["final_loss"] == pytest.approx(_summary(by_hand)["final_loss"], rel=1e-6)
    # The abandoned checkpoints 15 and 20 were moved aside, not deleted, nor saved over
    [aside] = output_dir.glob("set-aside-*")
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint-15", "checkpoint-20"]
    assert "Set aside checkpoint-15, checkpoint-20" in named.stdout + named.stderr


def test_resume_false_starts_from_step_0_and_deletes_nothing(tmp_path):
    output_dir = tmp_path / "pretrain"
    run_recipe("pretrain", output_dir, "--max_steps", "10", *ROLLBACK)
    first = _summary(output_dir)["final_loss"]
    result = run_recipe(
        "pretrain",
        output_dir,
        "--max_steps",
        "10",
        *ROLLBACK,
        "--overwrite_final",
        "true",
        "--resume_from_checkpoint",
        "false",
    )
    assert "training from step 0" in result.stdout + result.stderr and _summary(output_dir)["resumed_from"] is None
    assert _summary(output_dir)["final_loss"] == pytest.approx(first, rel=1e-6)  # the same run again, from scratch
    [aside] = output_dir.glob("set-aside-*")
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint-10", "checkpoint-5"]
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]  # new ones
