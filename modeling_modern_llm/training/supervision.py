"""Launching and supervising the pipeline's steps (`recipes/pipeline.py`): each step one process, stopped cleanly.

- `stage_launcher`: the argv that starts a recipe (`launcher_command`: `python` or `accelerate launch`, bound to
  the interpreter running the pipeline) and what each stage process is told about it (recorded in its
  `training_summary.json`); a rehearsal runs every stage as one process.
- `run_step`: one step as a subprocess in its own process group, tied to the pipeline by the kernel
  (`processes.die_with_parent`: a pipeline killed outright still stops its step). When the pipeline is stopped (SIGTERM
  or SIGUSR1 from SLURM, through `exit_on_stop_signals`; Ctrl-C), the whole group gets SIGTERM, so a training
  stage saves a checkpoint, and has `stop_timeout_s` to exit before SIGKILL.
- Every attempt of a step is recorded in `<run>/pipeline_summary.json` (`start_summary`, `write_summary`): its
  command, status and wall time, summed over the attempts of an interrupted step.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time

from ..files import atomic_write_json
from ..processes import DIE_WITH_PARENT_ENV, die_with_parent
from .recipe_steps import ACCELERATE_CONFIG_ENV, LAUNCHER_ENV, REHEARSAL_ENV, STOPPED_EXIT_CODE

logger = logging.getLogger("pipeline")


def launcher_command(launcher: str | None) -> list[str]:
    """The launcher as an argv, bound to this interpreter: 'python' and 'accelerate launch' would otherwise come from
    PATH, and an unactivated virtual environment would fail with `No module named transformers`."""
    words = shlex.split(launcher or "python")
    if os.path.basename(words[0]).startswith("python"):
        return [sys.executable, *words[1:]]
    if words[:2] == ["accelerate", "launch"]:
        return [sys.executable, "-m", "accelerate.commands.launch", *words[2:]]
    return words


def stage_launcher(launcher: str | None, accelerate_path: str | None, rehearse: bool = False) -> tuple[list, dict]:
    """The argv that starts each recipe (`launcher_command`) and the environment each stage process gets, which says
    how it was launched. A rehearsal runs every stage with this interpreter as one process."""
    command = launcher_command(launcher)
    env = {LAUNCHER_ENV: shlex.join(command), **({ACCELERATE_CONFIG_ENV: accelerate_path} if accelerate_path else {})}
    if not rehearse:
        return command, env
    if command[1:3] == ["-m", "accelerate.commands.launch"]:
        logger.info(
            "[rehearsal] launcher %s -> this interpreter, one process (%s was validated)", launcher, accelerate_path
        )
    return [sys.executable], {LAUNCHER_ENV: sys.executable, REHEARSAL_ENV: "1"}


def _stop_on_signal(signum, frame):
    sys.exit(f"pipeline: stopped by signal {signum}; rerun the same command to resume.")


def exit_on_stop_signals() -> None:
    """SIGTERM and SIGUSR1 (SLURM before the time limit) end the pipeline with a one-line message, through
    `SystemExit`, so the running `run_step` stops its step (a stage saves a checkpoint) and records it first."""
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, _stop_on_signal)


def start_summary(path: str, run_name: str, rehearsal: bool) -> dict:
    """The run's `pipeline_summary.json` record: this invocation's command, with the steps (and their times) of an
    earlier, interrupted invocation kept."""
    summary = {
        "run_name": run_name,
        "command": shlex.join([sys.executable, *sys.argv]),
        "python": sys.executable,
        "rehearsal": rehearsal,
        "steps": {},
    }
    if os.path.isfile(path):
        with open(path) as handle:
            summary["steps"] = json.load(handle).get("steps", {})
    return summary


def write_summary(summary: dict, path: str) -> None:
    summary["total_wall_time_s"] = round(sum(s.get("wall_time_s", 0) for s in summary["steps"].values()), 1)
    atomic_write_json(path, summary)


def run_step(
    name: str,
    command: list[str],
    summary: dict,
    summary_path: str,
    env: dict | None = None,
    stop_timeout_s: float = 300.0,
    expect: int = 0,
) -> int:
    """Run one step as a subprocess in its own process group; record its command, status and wall time (summed over
    attempts). On SIGTERM/Ctrl-C the whole group gets SIGTERM (accelerate's launcher would not pass it on) and has
    `stop_timeout_s` to save a checkpoint. Stops the pipeline unless the exit code is `expect`."""
    logger.info("[%s] %s", name, shlex.join(command))
    start, returncode = time.time(), None
    # Its own process group (so a stop reaches the launcher's workers too), and tied to this process: if the pipeline
    # is killed outright (SIGKILL), the kernel sends the step SIGTERM instead of leaving it running as an orphan
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {}), DIE_WITH_PARENT_ENV: "1"},
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        returncode = process.wait()
    finally:  # also when the pipeline itself is stopped (SIGTERM from SLURM, Ctrl-C): stop the stage, record it
        if process.poll() is None or _group_alive(process.pid):
            _stop_group(process, stop_timeout_s)
        earlier = summary["steps"].get(name, {})
        earlier = earlier if earlier.get("status") != "ok" else {}  # an unfinished earlier attempt adds its time
        status = {None: "interrupted", 0: "ok", STOPPED_EXIT_CODE: "stopped (checkpoint saved)"}.get(
            returncode, f"failed (exit code {returncode})"
        )
        summary["steps"][name] = {
            "command": shlex.join(command),
            "status": status,
            "wall_time_s": round(earlier.get("wall_time_s", 0) + time.time() - start, 1),
            "attempts": earlier.get("attempts", 0) + 1,
        }
        write_summary(summary, summary_path)
    if returncode != expect:
        sys.exit(f"pipeline: step {name!r} {summary['steps'][name]['status']}; rerun the same command to resume it.")
    return returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stop_group(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM to the step's whole process group, then wait for all of it (a launcher may exit before its child
    finished saving); SIGKILL what is left after the timeout."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout_s
    while _group_alive(process.pid) and time.time() < deadline:
        process.poll()
        time.sleep(0.2)
    if _group_alive(process.pid):
        logger.warning(
            "step did not stop within %.0f s: killing it (it resumes from its last valid checkpoint)", timeout_s
        )
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


__all__ = [
    "exit_on_stop_signals",
    "launcher_command",
    "run_step",
    "stage_launcher",
    "start_summary",
    "write_summary",
]
