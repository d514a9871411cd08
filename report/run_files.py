"""What the report reads from a training run's folder (docs/DESIGN.md, runs contract), and the model cards it refreshes.

`experiments/runs/<run>/<stage>_final/` holds the saved model, `training_summary.json` and the model card README.md;
`<stage>/trainer_state.json` (or its newest checkpoint's) the trainer's log (losses; GRPO's rewards);
`pipeline_summary.json` the pipeline's steps. A run of several seeds keeps one such run per seed in `<run>/seed-<s>/`,
beside its `seed_summary.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from modeling_modern_llm.errors import InputFileError
from modeling_modern_llm.stages import STAGE_NAMES, stage_final

CARD_SECTION = "## Evaluation results"
_SECTION = re.compile(r"^## Evaluation results\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def seeds_folder(run_dir: Path | None) -> Path | None:
    """The folder of a run of several seeds that holds `run_dir` (`<run>/seed-<s>/`, `pipeline.py --seeds`), if it is
    one of its seeds."""
    return run_dir.parent if run_dir and re.fullmatch(r"seed-\d+", run_dir.name) else None


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputFileError(f"{path} is unreadable ({error}); rerun the step that writes it") from None


def training_summaries(run_dir: Path) -> dict[str, dict]:
    """`{stage: training_summary}` for every `<stage>_final/training_summary.json` of the run, in stage order."""
    if not run_dir.is_dir():
        raise InputFileError(f"run directory {run_dir} not found: run `python recipes/pipeline.py` first")
    paths = {stage: Path(stage_final(run_dir, stage)) / "training_summary.json" for stage in STAGE_NAMES}
    return {stage: read_json(path) for stage, path in paths.items() if path.is_file()}


def final_checkpoints(run_dir: Path) -> dict[str, Path]:
    """`{stage: <stage>_final}` for the stages of the run that saved a model, in stage order."""
    return {
        s: Path(stage_final(run_dir, s))
        for s in STAGE_NAMES
        if (Path(stage_final(run_dir, s)) / "config.json").is_file()
    }


def log_history(run_dir: Path, stage: str) -> list[dict]:
    """The trainer's logged entries from `<stage>/trainer_state.json`, else from its newest checkpoint's."""
    stage_dir = run_dir / stage
    candidates = [stage_dir / "trainer_state.json"] + sorted(
        stage_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: -int(p.parent.name.rpartition("-")[2])
    )
    path = next((p for p in candidates if p.is_file()), None)
    return read_json(path).get("log_history", []) if path else []


def loss_history(run_dir: Path, stage: str) -> list[tuple[int, float]]:
    """`[(step, loss)]` of a stage's trainer log."""
    return [(int(e["step"]), float(e["loss"])) for e in log_history(run_dir, stage) if "loss" in e and "step" in e]


def count_parameters(checkpoint: Path) -> int:
    """Parameters stored in a checkpoint's safetensors files, read from their headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():
                count = 1
                for dim in handle.get_slice(name).get_shape():
                    count *= dim
                total += count
    return total


def update_model_card(checkpoint: Path, section: str) -> None:
    """Put `section` (a Markdown "## Evaluation results" section) into the checkpoint's README.md, replacing the old one."""
    from modeling_modern_llm.files import atomic_write_text

    card = checkpoint / "README.md"
    text = card.read_text(encoding="utf-8")
    text = _SECTION.sub(lambda _: section, text) if _SECTION.search(text) else f"{text.rstrip()}\n\n{section}"
    atomic_write_text(str(card), text)
