"""Put evaluation results into a saved checkpoint's model card (README.md), in the form the Hub reads.

The recipes write the card at save time; after evaluation :func:`update_model_card_results` adds or
refreshes a ``## Evaluation results`` section and the ``model-index`` front matter (through
``huggingface_hub.ModelCard``), leaving the rest of the card as it was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from huggingface_hub import EvalResult, ModelCard

from .markdown import markdown_table
from .results import ResultsFileError

SECTION_TITLE = "## Evaluation results"
_SECTION = re.compile(r"^## Evaluation results\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def _results_section(records: Sequence[dict], source: str) -> str:
    rows = []
    for record in records:
        split = record.get("split")
        if record["status"] != "ok":
            rows.append((record["task"], record["dataset"], split, "-", record["status"]))
        for metric, value in sorted(record["metrics"].items()) if record["status"] == "ok" else ():
            rows.append((record["task"], record["dataset"], split, metric, value))
    table = markdown_table(("task", "dataset", "split", "metric", "value"), rows)
    return f"{SECTION_TITLE}\n\nFrom `{source}`; the protocol of each row is in that file.\n\n{table}\n\n"


def update_model_card_results(
    checkpoint_dir: str | Path, records: Sequence[dict], source: str = "task_metrics.json"
) -> Path:
    """Write ``records`` (task_metrics.json records of this checkpoint) into ``checkpoint_dir/README.md``.

    The Markdown section is replaced if present (appended otherwise), and the ``model-index`` front
    matter lists every ``status == "ok"`` metric. Returns the card's path.
    """
    path = Path(checkpoint_dir) / "README.md"
    if not path.is_file():
        raise ResultsFileError(f"{path} not found: the recipe writes the model card when it saves the checkpoint")
    card = ModelCard.load(path)
    card.data.model_name = card.data.model_name or Path(checkpoint_dir).name
    card.data.eval_results = [
        EvalResult(
            task_type="text-generation",
            dataset_type=record["dataset"],
            dataset_name=record["dataset"],
            dataset_split=record.get("split"),
            metric_type=metric,
            metric_name=f"{record['task']} {metric}",
            metric_value=float(value),
        )
        for record in records
        if record["status"] == "ok"
        for metric, value in sorted(record["metrics"].items())
    ] or None
    section = _results_section(records, source)
    text = card.text
    card.text = _SECTION.sub(lambda _: section, text) if _SECTION.search(text) else f"{text.rstrip()}\n\n{section}"
    card.save(path)
    return path
