"""Read the files the evaluation and the recipes write (docs/DESIGN.md contracts), with clear errors.

Every loader raises :class:`ResultsFileError` naming the file and the command that makes it, so the
report never fails with a bare ``KeyError`` or ``JSONDecodeError`` traceback.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional

# Which command writes each results file; quoted in errors and in the report when a file is missing.
_EVALUATE = "python eval/evaluate_tasks.py --model <run>/pretrain_final <run>/sft_final <run>/dpo_final --output_dir {results_dir}"
PRODUCING_COMMANDS = {
    "task_metrics.json": _EVALUATE,
    "baseline_comparison.json": _EVALUATE,
    "stage_gains.csv": _EVALUATE,
    "gsm8k_analysis.json": _EVALUATE + " --verifier <run>/verifier_final",
    "attention_stats.json": "python report/visualize_attention.py --model_path <checkpoint> --stats_path {results_dir}/attention_stats.json",
}
STAGES = ("pretrain", "sft", "dpo", "verifier")
STAGE_GAINS_COLUMNS = ("stage", "task", "protocol", "metric", "value", "delta_vs_previous_stage")


class ResultsFileError(Exception):
    """A results or run file is missing or malformed; the message says which and how to make it."""


def producing_command(filename: str, results_dir: str | Path) -> str:
    """The command that writes ``filename`` into ``results_dir``."""
    return PRODUCING_COMMANDS[filename].format(results_dir=results_dir)


def _missing(path: Path, command: Optional[str]) -> ResultsFileError:
    hint = f": run `{command}` first" if command else ""
    return ResultsFileError(f"{path} not found{hint}")


def read_json(path: str | Path, command: Optional[str] = None, required_keys: tuple[str, ...] = ()) -> dict:
    """A JSON object from ``path``; a clear error if it is missing, not JSON, or lacks ``required_keys``."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, command)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ResultsFileError(f"{path} is not valid JSON ({error}); re-run the command that writes it") from None
    if not isinstance(data, dict):
        raise ResultsFileError(f"{path} must hold a JSON object, found {type(data).__name__}")
    absent = [key for key in required_keys if key not in data]
    if absent:
        raise ResultsFileError(f"{path} lacks the field(s) {absent} the results contract requires (docs/DESIGN.md)")
    return data


def load_results_file(results_dir: str | Path, filename: str) -> Any:
    """One evaluation results file by name: JSON files as dicts, ``stage_gains.csv`` as a list of row dicts."""
    path = Path(results_dir) / filename
    command = producing_command(filename, results_dir)
    if filename == "stage_gains.csv":
        return _read_stage_gains(path, command)
    required = {
        "task_metrics.json": ("command", "environment", "records"),
        "baseline_comparison.json": ("command", "rows"),
        "gsm8k_analysis.json": (
            "command",
            "n_samples",
            "em_greedy",
            "em_verifier",
            "gain_points",
            "taxonomy",
            "false_positives",
            "false_negatives",
        ),
        "attention_stats.json": ("command", "model_path", "layers", "examples"),
    }[filename]
    data = read_json(path, command, required)
    if filename == "task_metrics.json":
        for index, record in enumerate(data["records"]):
            absent = [key for key in ("model", "task", "dataset", "status", "metrics") if key not in record]
            if absent:
                raise ResultsFileError(f"{path}: record {index} lacks {absent} (see docs/DESIGN.md)")
    return data


def _read_stage_gains(path: Path, command: str) -> list[dict]:
    if not path.is_file():
        raise _missing(path, command)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != STAGE_GAINS_COLUMNS:
            raise ResultsFileError(f"{path} has columns {reader.fieldnames}, expected {list(STAGE_GAINS_COLUMNS)}")
        rows = list(reader)
    for row in rows:  # the value columns are numbers, or empty for the first stage's delta
        for column in ("value", "delta_vs_previous_stage"):
            row[column] = float(row[column]) if row[column] not in ("", None) else None
    return rows


def load_training_summaries(run_dir: str | Path) -> dict[str, dict]:
    """``{stage: training_summary}`` for every ``<stage>_final/training_summary.json`` in the run, in stage order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsFileError(f"run directory {run_dir} not found: run `python recipes/pipeline.py` first")
    summaries = {}
    for stage in STAGES:
        path = run_dir / f"{stage}_final" / "training_summary.json"
        if path.is_file():
            summaries[stage] = read_json(path, required_keys=("stage", "command", "wall_time_s", "steps"))
    return summaries


def final_checkpoints(run_dir: str | Path) -> dict[str, Path]:
    """``{stage: <stage>_final folder}`` for the stages of the run that saved a model, in stage order."""
    run_dir = Path(run_dir)
    return {s: run_dir / f"{s}_final" for s in STAGES if (run_dir / f"{s}_final" / "config.json").is_file()}


def load_loss_history(run_dir: str | Path, stage: str) -> list[tuple[int, float]]:
    """``[(step, loss)]`` from the trainer log of one stage (``<stage>/trainer_state.json``, else its newest checkpoint's)."""
    from transformers.trainer_utils import get_last_checkpoint

    stage_dir = Path(run_dir) / stage
    path = stage_dir / "trainer_state.json"
    if not path.is_file() and stage_dir.is_dir() and (checkpoint := get_last_checkpoint(str(stage_dir))):
        path = Path(checkpoint) / "trainer_state.json"
    if not path.is_file():
        return []
    state = read_json(path, required_keys=("log_history",))
    return [(int(e["step"]), float(e["loss"])) for e in state["log_history"] if "loss" in e and "step" in e]


def count_parameters(checkpoint_dir: str | Path) -> int:
    """Number of parameters stored in a checkpoint's safetensors files (read from their headers, no weights loaded)."""
    from safetensors import safe_open

    files = sorted(Path(checkpoint_dir).glob("*.safetensors"))
    if not files:
        raise ResultsFileError(f"{checkpoint_dir} holds no *.safetensors weights; was it saved with save_pretrained?")
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                shape = handle.get_slice(name).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total
