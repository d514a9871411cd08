"""Every reported number of one evaluation as a flat metric, and the same metrics summarised across training seeds.

A single run's error bars cover its test items only: how far a number moves when the whole pipeline is trained
again with another seed (initialisation, data order, sampling) they do not show. `run_metrics` flattens one run
into `{"<stage>/<task>/<metric>": entry}`, reading it only through `results`:

- every headline cell (`results.headline`): bits per byte, SST-2 accuracy, GSM8K exact match of every selector,
  e.g. `dpo/embedded_gsm8k_chat/greedy` (kind "value", with its standard error and n);
- every stage gain (`results.stage_gains`): `sft/embedded_sst2_chat/accuracy_gain`, the change from the previous
  stage (kind "gain", the standard error of the difference as if independent, and its normal 95% interval);
- every paired difference of the GSM8K analysis (`results.gsm8k_analysis()["comparisons"]`), e.g.
  `dpo/embedded_gsm8k_sampled_chat/verifier_best_of_n_vs_greedy` (kind "difference", its paired standard error
  and bootstrap interval), and every selector it scores (`["selectors"]`).

Whatever those functions return is taken, so a new selector, comparison or stage appears without a change here.
`summarize` turns one such dict per seed into `seed_summary.json`'s `{"seeds", "confidence", "metrics": {key:
{"values", "mean", "sd", "interval", "mean_stderr", "positive", "negative", ...}}}`: the sample standard deviation
across seeds, a t interval with n - 1 degrees of freedom (few seeds: the t quantile, not the normal one) and, for
gains and differences, how many seeds fall on each side of zero.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from modeling_modern_llm.files import atomic_write_json
from modeling_modern_llm.stages import POLICY_STAGES

from . import results

CONFIDENCE = 0.95
SUMMARY_FILE = "seed_summary.json"
# The metric part of a key: the selector's own name for GSM8K columns, these for the others.
_METRIC_NAMES = {"bits per byte": "bits_per_byte", "SST-2": "accuracy"}
_DESCRIPTION = ("kind", "measure", "stage", "task", "percent", "previous_stage", "treatment", "baseline")


def metric_name(column: str) -> str:
    """`greedy`, `verifier_best_of_n`, `bits_per_byte`, `accuracy`: what a headline column measures, as a key."""
    selectors = {title: selector for selector, title in results.SELECTOR_COLUMNS.items()}
    return selectors.get(column) or _METRIC_NAMES.get(column) or column.lower().replace(" ", "_").replace("-", "_")


def _normal_interval(value: float, stderr: float | None) -> list[float] | None:
    if stderr is None:
        return None
    z = statistics.NormalDist().inv_cdf((1 + CONFIDENCE) / 2)
    return [value - z * stderr, value + z * stderr]


def run_metrics(run: results.EvaluationRun) -> dict[str, dict]:
    """`{"<stage>/<task>/<metric>": {"kind", "measure", "stage", "task", "percent", "value", "stderr", "n", ...}}` of
    one evaluation, in the order headline, stage gains, GSM8K comparisons."""
    metrics: dict[str, dict] = {}
    rows = results.headline(run)
    for row in rows:
        if row["status"] != "ok":
            continue
        owner = row["stage"] if row["stage"] in POLICY_STAGES else row["model"]
        for column, cell in row["cells"].items():
            if cell is not None:
                metrics[f"{owner}/{cell['task']}/{metric_name(column)}"] = {
                    "kind": "value",
                    "measure": column,
                    "stage": owner,
                    "task": cell["task"],
                    "percent": column != "bits per byte",
                    "value": cell["value"],
                    "stderr": cell["stderr"],
                    "n": cell["n"],
                }
    previous: dict[str, str] = {}
    for gain in results.stage_gains(run, rows):
        if gain["delta_vs_previous_stage"] is not None:
            metrics[f"{gain['stage']}/{gain['task']}/{metric_name(gain['measure'])}_gain"] = {
                "kind": "gain",
                "measure": gain["measure"],
                "stage": gain["stage"],
                "task": gain["task"],
                "percent": gain["measure"] != "bits per byte",
                "previous_stage": previous.get(gain["measure"]),
                "value": gain["delta_vs_previous_stage"],
                "stderr": gain["delta_stderr"],
                "n": gain["n"],
                "interval": _normal_interval(gain["delta_vs_previous_stage"], gain["delta_stderr"]),
            }
        previous[gain["measure"]] = gain["stage"]
    analysis = results.gsm8k_analysis(run)
    if analysis is not None:
        stage = analysis["stage"] if analysis["stage"] in POLICY_STAGES else analysis["model"]
        for selector, cell in analysis["selectors"].items():
            metrics.setdefault(
                f"{stage}/{cell['task']}/{selector}",
                {
                    "kind": "value",
                    "measure": results.SELECTOR_COLUMNS.get(selector, selector),
                    "stage": stage,
                    "task": cell["task"],
                    "percent": True,
                    "value": cell["value"],
                    "stderr": cell["stderr"],
                    "n": cell["n"],
                },
            )
        for comparison in analysis["comparisons"]:
            treatment, baseline = comparison["treatment"], comparison["baseline"]
            metrics[f"{stage}/{analysis['task']}/{treatment}_vs_{baseline}"] = {
                "kind": "difference",
                "measure": f"{treatment} vs {baseline}",
                "stage": stage,
                "task": analysis["task"],
                "percent": True,
                "treatment": treatment,
                "baseline": baseline,
                "value": comparison["difference"],
                "stderr": comparison.get("stderr"),
                "n": comparison["n"],
                "interval": [comparison["low"], comparison["high"]],
            }
    return metrics


def t_quantile(confidence: float, degrees_of_freedom: int) -> float:
    """The two-sided Student t quantile: mean ± this x sd / sqrt(n) covers `confidence` with n - 1 degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf((1 + confidence) / 2, degrees_of_freedom))


def across_seeds(values: list[float | None], confidence: float = CONFIDENCE) -> dict:
    """`{"mean", "sd", "interval"}` of the seeds that have the value: sd with n - 1 in the denominator, the t interval
    of the mean; sd and interval are None for fewer than two seeds."""
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "sd": None, "interval": None}
    mean = statistics.fmean(present)
    if len(present) < 2:
        return {"mean": mean, "sd": None, "interval": None}
    sd = statistics.stdev(present)
    half = t_quantile(confidence, len(present) - 1) * sd / math.sqrt(len(present))
    return {"mean": mean, "sd": sd, "interval": [mean - half, mean + half]}


def summarize(seeds: list[int], per_seed: list[dict[str, dict]], confidence: float = CONFIDENCE) -> dict:
    """The seed summary of `per_seed` (one `run_metrics` dict per seed, in the order of `seeds`). A metric missing
    from a seed (a model unavailable there) has None in its place and is summarised over the others."""
    if len(seeds) != len(per_seed):
        raise ValueError(f"{len(seeds)} seeds but {len(per_seed)} runs")
    keys = list(dict.fromkeys(key for metrics in per_seed for key in metrics))
    summary = {}
    for key in keys:
        entries = [metrics.get(key) for metrics in per_seed]
        first = next(entry for entry in entries if entry is not None)
        values = [None if entry is None else entry["value"] for entry in entries]
        stderrs = [None if entry is None else entry["stderr"] for entry in entries]
        known = [s for s in stderrs if s is not None]
        summary[key] = {
            **{field: first[field] for field in _DESCRIPTION if field in first},
            "values": values,
            "n_seeds": sum(v is not None for v in values),
            **across_seeds(values, confidence),
            "stderrs": stderrs,
            "mean_stderr": statistics.fmean(known) if known else None,
            "n": [None if entry is None else entry["n"] for entry in entries],
        }
        if first["kind"] != "value":
            summary[key].update(
                positive=sum(v > 0 for v in values if v is not None),
                negative=sum(v < 0 for v in values if v is not None),
            )
    return {"seeds": list(seeds), "confidence": confidence, "metrics": summary}


def write_seed_summary(path: str | Path, seeds: list[int], results_dirs: list[str | Path], command: str) -> dict:
    """Summarise the evaluations in `results_dirs` (one per seed) into `path`, recording `command` (what ran the
    seeds); returns the summary."""
    summary = {"command": command, **summarize(seeds, [run_metrics(results.load_run(d)) for d in results_dirs])}
    summary["results_dirs"] = [str(directory) for directory in results_dirs]
    atomic_write_json(str(path), summary)
    return summary


__all__ = [
    "CONFIDENCE",
    "SUMMARY_FILE",
    "across_seeds",
    "metric_name",
    "run_metrics",
    "summarize",
    "t_quantile",
    "write_seed_summary",
]
