"""Result records and the four result files of docs/DESIGN.md's evaluation results contract.

``task_metrics.json`` (every record), ``baseline_comparison.json`` (all models side by side),
``stage_gains.csv`` (pretrain -> SFT -> DPO deltas) and ``gsm8k_analysis.json`` (+ ``.md``). Every
record carries the model, task, dataset, protocol, seed, limit and the exact command that produced it.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence

SCHEMA_VERSION = 1
STAGE_ORDER = ("pretrain", "sft", "dpo")
EMBEDDED_NOTE = "embedded evaluation split: a smoke test of the pipeline, NOT comparable with the published benchmark numbers"
PACKAGES = ("modern-llm", "torch", "transformers", "trl", "accelerate", "datasets", "evaluate", "tokenizers", "lm_eval")


@dataclass
class Record:
    """One (model, task, dataset, protocol) result; ``status`` is "ok" or "unavailable: <reason>"."""

    model: str
    model_path: str
    stage: str
    task: str
    dataset: str
    split: str
    protocol: dict
    seed: int
    limit: Optional[int]
    status: str
    metrics: dict = field(default_factory=dict)
    command: str = ""
    note: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """The task as the comparison tables name it: ``perplexity/<dataset>``, ``sst2/0-shot``, ``gsm8k/5-shot``."""
        if self.task == "perplexity":
            return f"perplexity/{self.dataset}"
        shots = f"{self.protocol.get('num_fewshot', 0)}-shot" + ("-chat" if self.protocol.get("chat_template") else "")
        return f"{self.task}/{shots}"

    @property
    def gain_key(self) -> str:
        """What stage gains compare across stages. Each stage is measured in its own prompt format (the base
        model plain and few-shot, chat models through their template), so the key drops the format:
        ``sst2/<k>-shot`` with or without the template, and ``gsm8k``, whose one protocol per model may
        differ in shots too (``chat_gsm8k_fewshot``)."""
        if self.task == "gsm8k":
            return "gsm8k"
        return self.label.removesuffix("-chat")


def command_line() -> str:
    """The command that is running, as a shell would re-run it."""
    return shlex.join(["python", *sys.argv])


def environment_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _write_json(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def write_task_metrics(records: Sequence[Record], path: Path, command: str) -> Path:
    return _write_json(path, {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment_versions(),
        "records": [asdict(record) for record in records],
    })


def comparison_rows(records: Sequence[Record]) -> list[dict]:
    """Every model's metrics side by side; an unavailable record gives one row with its status and no value."""
    rows = []
    for record in records:
        base = {"model": record.model, "stage": record.stage, "task": record.label, "dataset": record.dataset}
        if record.ok:
            rows += [{**base, "metric": name, "value": value} for name, value in record.metrics.items()]
        else:
            rows.append({**base, "metric": None, "value": None, "status": record.status})
    return rows


def stage_gain_rows(records: Sequence[Record]) -> list[dict]:
    """``stage,task,protocol,metric,value,delta_vs_previous_stage`` for the training stages in order; the delta
    is against the nearest earlier stage that has the same task (``Record.gain_key``) and metric (empty for the
    first); ``protocol`` is the stage's own prompt format (``Record.label``)."""
    rows, previous = [], {}
    for stage in STAGE_ORDER:
        seen = set()
        for record in records:
            if record.stage != stage or not record.ok:
                continue
            for metric, value in record.metrics.items():
                key = (record.gain_key, metric)
                if key in seen:  # two models of one stage: the first given stands for the stage
                    continue
                seen.add(key)
                delta = value - previous[key] if key in previous else None
                rows.append({"stage": stage, "task": record.gain_key, "protocol": record.label, "metric": metric,
                             "value": value, "delta_vs_previous_stage": delta})
                previous[key] = value
    return rows


def write_stage_gains(records: Sequence[Record], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["stage", "task", "protocol", "metric", "value", "delta_vs_previous_stage"])
        writer.writeheader()
        for row in stage_gain_rows(records):
            writer.writerow({**row, "delta_vs_previous_stage": "" if row["delta_vs_previous_stage"] is None else row["delta_vs_previous_stage"]})
    return path


def write_results(records: Sequence[Record], output_dir: str | Path, command: str, analysis: Optional[dict] = None,
                  analysis_markdown: Optional[str] = None) -> list[Path]:
    """The four contract files (the analysis only when there is one); returns the paths written."""
    output_dir = Path(output_dir)
    paths = [
        write_task_metrics(records, output_dir / "task_metrics.json", command),
        _write_json(output_dir / "baseline_comparison.json", {"command": command, "rows": comparison_rows(records)}),
        write_stage_gains(records, output_dir / "stage_gains.csv"),
    ]
    if analysis is not None:
        paths += write_gsm8k_analysis(analysis, analysis_markdown, output_dir, command)
    return paths


def write_gsm8k_analysis(analysis: dict, markdown: Optional[str], output_dir: str | Path, command: str) -> list[Path]:
    """``gsm8k_analysis.json`` and, given the markdown section, ``gsm8k_analysis.md``."""
    output_dir = Path(output_dir)
    paths = [_write_json(output_dir / "gsm8k_analysis.json", {"command": command, **analysis})]
    if markdown:
        paths.append(output_dir / "gsm8k_analysis.md")
        paths[-1].write_text(markdown, encoding="utf-8")
    return paths
