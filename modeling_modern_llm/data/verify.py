"""Check that every registered dataset loads and carries the fields its normaliser needs; report what to do if not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .registry import (
    NO_NETWORK_FIX,
    REGISTRY,
    DatasetUnavailableError,
    get_spec,
    hub_offline,
    hub_reachable,
    load_dataset_by_name,
)


@dataclass
class CheckResult:
    """One dataset's outcome: status ``ok`` or the reason it failed, rows read, and the fix."""

    name: str
    status: str
    rows: int = 0
    error: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_dataset(name: str, *, local_dir=None, quick_rows: int | None = None) -> CheckResult:
    """Load every split of ``name`` (the first ``quick_rows`` rows of each when given, streamed), which checks
    its fields, normalise it and count the rows that come out. Never raises for an unavailable dataset."""
    spec = get_spec(name)
    streaming = quick_rows is not None
    rows = 0
    try:
        for split in spec.splits:
            normalized = load_dataset_by_name(name, split, local_dir=local_dir, streaming=streaming, limit=quick_rows)
            kept = sum(1 for _ in normalized) if streaming else len(normalized)  # streamed: already cut to quick_rows
            if kept == 0:
                raise DatasetUnavailableError(
                    name,
                    f"split '{split}': no usable rows after normalising",
                    f"check that its rows follow the {spec.hub_id or name} format",
                )
            rows += kept
    except DatasetUnavailableError as error:
        status = "unreachable" if error.reason.startswith("unreachable") else "failed"
        return CheckResult(name, status, rows, error.reason, error.fix + (f" (note: {spec.note})" if spec.note else ""))
    except Exception as error:  # a corrupt file or an unexpected library error: report it, keep checking the rest
        return CheckResult(
            name, "failed", rows, f"{type(error).__name__}: {error}", "check the file, or re-download the dataset"
        )
    return CheckResult(name, "ok", rows)


def verify_datasets(
    names: Iterable[str] | None = None, *, local_dir=None, quick: bool = False, quick_rows: int = 16
) -> list[CheckResult]:
    """Check the named datasets (default: every registered one, embedded included).

    Without network (and without HF_HUB_OFFLINE, which would read the cache), the Hub is probed once and
    every Hub dataset is reported unreachable at once instead of waiting through each download's retries.
    """
    names = list(REGISTRY) if names is None else list(names)
    probe_hub = local_dir is None and not hub_offline() and any(not get_spec(n).embedded for n in names)
    network_down = probe_hub and not hub_reachable()
    results = []
    for name in names:
        if network_down and not get_spec(name).embedded:
            results.append(
                CheckResult(
                    name, "unreachable", 0, "unreachable: no network (huggingface.co cannot be reached)", NO_NETWORK_FIX
                )
            )
        else:
            results.append(check_dataset(name, local_dir=local_dir, quick_rows=quick_rows if quick else None))
    return results


def format_table(results: list[CheckResult]) -> str:
    """A plain-text table: name, status, rows checked, error, what to do."""
    header = ("dataset", "status", "rows", "error", "what to do")
    table = [header] + [(r.name, r.status, str(r.rows), r.error or "-", r.fix or "-") for r in results]
    widths = [max(len(row[column]) for row in table) for column in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in table]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
