"""Helpers of the training tests: run a recipe with its tiny test config, read a stage's log history."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "tests", "training", "configs")


def run_recipe(stage: str, output_dir, *extra: str, launcher=(sys.executable,), env=None, check=True):
    """Run recipes/<stage>.py with the tiny test config; returns the CompletedProcess (output captured)."""
    command = [
        *launcher,
        os.path.join(REPO, "recipes", f"{stage}.py"),
        "--config",
        os.path.join(CONFIGS, f"{stage}.yaml"),
        "--output_dir",
        str(output_dir),
        *extra,
    ]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def log_history(output_dir) -> list[dict]:
    """The log history of the last checkpoint a stage wrote."""
    checkpoints = sorted(
        (p for p in os.listdir(output_dir) if p.startswith("checkpoint-")), key=lambda name: int(name.split("-")[1])
    )
    with open(os.path.join(output_dir, checkpoints[-1], "trainer_state.json")) as handle:
        return json.load(handle)["log_history"]
