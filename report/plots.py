"""Figures from the results files and the trainers' logs: loss per stage, stage gains, GSM8K EM vs N, bits per byte.

    python report/plots.py --results_dir experiments/results --run_dir experiments/runs/<run> --output_dir report/figures

Writes ``training_loss.png``, ``stage_gains.png``, ``gsm8k_em_vs_n.png`` and ``perplexity_bpb.png``.
A figure whose inputs are missing is skipped with the reason printed (the report repeats it).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from modeling_modern_llm.reporting import (  # noqa: E402
    ResultsFileError,
    exact_match_curve,
    load_loss_history,
    load_results_file,
    sample_sizes,
)
from modeling_modern_llm.reporting.results import STAGES  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_training_loss(run_dir: str | Path | None, path: Path) -> str:
    """One panel per stage with a trainer log; returns the caption."""
    if run_dir is None:
        raise ResultsFileError("no --run_dir given, so there are no trainer logs to plot")
    histories = {stage: h for stage in STAGES if (h := load_loss_history(run_dir, stage))}
    if not histories:
        raise ResultsFileError(
            f"no trainer_state.json with a loss log under {run_dir}/<stage>/: run `python recipes/pipeline.py` first"
        )
    fig, axes = plt.subplots(1, len(histories), figsize=(3.6 * len(histories), 3), squeeze=False)
    for ax, (stage, history) in zip(axes[0], histories.items()):
        ax.plot([s for s, _ in history], [loss for _, loss in history], marker=".")
        ax.set_title(stage, fontsize=10)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("training loss")
    _save(fig, path)
    return f"Training loss per logged step, from each stage's trainer_state.json ({', '.join(histories)})."


def plot_stage_gains(rows: list[dict], path: Path) -> str:
    """One panel per (task, metric): its value after each stage, the change from the previous stage written on the bar."""
    series = defaultdict(list)
    for row in rows:
        series[(row["task"], row["metric"])].append(row)
    if any(len(entries) > 1 for entries in series.values()):  # a metric measured after one stage only shows no gain
        series = {key: entries for key, entries in series.items() if len(entries) > 1}
    columns = min(4, len(series))
    rows = -(-len(series) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat[len(series) :]:
        ax.set_visible(False)
    for ax, ((task, metric), entries) in zip(axes.flat, series.items()):
        bars = ax.bar([e["stage"] for e in entries], [e["value"] for e in entries], color="tab:blue")
        deltas = [
            "" if e["delta_vs_previous_stage"] is None else f"{e['delta_vs_previous_stage']:+.4f}" for e in entries
        ]
        ax.bar_label(bars, deltas, fontsize=8)
        ax.set_title(f"{task}: {metric}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return "Metrics measured after two or more stages, one bar per stage (stage_gains.csv); labels: change from the previous stage."


def plot_gsm8k_em_vs_n(analysis: dict, path: Path) -> str:
    """EM of greedy, majority vote, verifier and oracle against N; a single N when per-problem candidates are absent."""
    n_samples = int(analysis["n_samples"])
    fig, ax = plt.subplots(figsize=(5, 3.4))
    if analysis.get("problems") and all(p.get("candidates") for p in analysis["problems"]):
        sizes = sample_sizes(n_samples)
        for method, values in exact_match_curve(analysis["problems"], sizes).items():
            ax.plot(sizes, [100 * v for v in values], marker="o", label=method)
        ax.set_xscale("log", base=2)
        caption = (
            f"GSM8K exact match at N = {', '.join(map(str, sizes))}, recomputed from the first N of the "
            f"{n_samples} sampled candidates per problem in gsm8k_analysis.json."
        )
    else:
        ax.scatter([n_samples], [analysis["em_greedy"]], label="greedy")
        if analysis["em_verifier"] is not None:
            ax.scatter([n_samples], [analysis["em_verifier"]], label="verifier_best_of_n")
        caption = (
            f"GSM8K exact match at the single N = {n_samples} only: gsm8k_analysis.json has no per-problem "
            "sampled candidates, so no curve over N can be drawn."
        )
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("exact match (%)")
    ax.legend(fontsize=8)
    _save(fig, path)
    return caption


def plot_perplexity_bpb(task_metrics: dict, path: Path) -> str:
    """Bits per byte of every model on every perplexity dataset; unavailable rows are named in the caption."""
    records = [r for r in task_metrics["records"] if r["task"] == "perplexity"]
    usable = [r for r in records if r["status"] == "ok" and "bits_per_byte" in r["metrics"]]
    if not usable:
        raise ResultsFileError("task_metrics.json has no perplexity record with bits_per_byte")
    datasets = sorted({r["dataset"] for r in usable})
    models = list(dict.fromkeys(r["model"] for r in usable))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(1.2 + 1.6 * len(datasets) * max(1, len(models) / 2), 3.4))
    for index, model in enumerate(models):
        values = {r["dataset"]: r["metrics"]["bits_per_byte"] for r in usable if r["model"] == model}
        xs = [d + index * width for d, name in enumerate(datasets) if name in values]
        ax.bar(xs, [values[name] for name in datasets if name in values], width, label=model)
    ax.set_xticks([d + width * (len(models) - 1) / 2 for d in range(len(datasets))], datasets, fontsize=8)
    ax.set_ylabel("bits per byte (lower is better)")
    ax.legend(fontsize=8)
    _save(fig, path)
    missing = [f"{r['model']} on {r['dataset']} ({r['status']})" for r in records if r["status"] != "ok"]
    return "Bits per byte, lower is better." + (f" Not drawn: {'; '.join(missing)}." if missing else "")


FIGURE_NAMES = ("training_loss.png", "stage_gains.png", "gsm8k_em_vs_n.png", "perplexity_bpb.png")


def make_plots(results_dir: str | Path, run_dir: str | Path | None, output_dir: str | Path) -> dict[str, dict]:
    """Every figure this module draws: ``{file name: {"path": str | None, "caption": str}}`` (path None if skipped)."""
    output_dir = Path(output_dir)
    jobs = {
        "training_loss.png": lambda path: plot_training_loss(run_dir, path),
        "stage_gains.png": lambda path: plot_stage_gains(load_results_file(results_dir, "stage_gains.csv"), path),
        "gsm8k_em_vs_n.png": lambda path: plot_gsm8k_em_vs_n(
            load_results_file(results_dir, "gsm8k_analysis.json"), path
        ),
        "perplexity_bpb.png": lambda path: plot_perplexity_bpb(
            load_results_file(results_dir, "task_metrics.json"), path
        ),
    }
    figures = {}
    for name, job in jobs.items():
        try:
            figures[name] = {"path": str(output_dir / name), "caption": job(output_dir / name)}
        except ResultsFileError as error:
            figures[name] = {"path": None, "caption": f"not drawn: {error}"}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", default="experiments/results")
    parser.add_argument("--run_dir", default=None, help="experiments/runs/<run> (for the loss curves)")
    parser.add_argument("--output_dir", default="report/figures")
    args = parser.parse_args(argv)
    figures = make_plots(args.results_dir, args.run_dir, args.output_dir)
    for name, figure in figures.items():
        print(f"{name}: {figure['path'] or figure['caption']}")
    return 0 if any(f["path"] for f in figures.values()) else 1


def command_line(results_dir: str | Path, run_dir: str | Path | None, output_dir: str | Path) -> str:
    """The command that redraws these figures alone."""
    run = ["--run_dir", str(run_dir)] if run_dir else []
    return shlex.join(
        ["python", "report/plots.py", "--results_dir", str(results_dir), *run, "--output_dir", str(output_dir)]
    )


if __name__ == "__main__":
    sys.exit(main())
