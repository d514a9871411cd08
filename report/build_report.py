"""Build report/final_report.md (and its figures) from the results files and the run directory.

    python report/build_report.py --results_dir experiments/results --run_dir experiments/runs/<run> \
        --output report/final_report.md

Reads the evaluation's files (task_metrics.json, baseline_comparison.json, stage_gains.csv,
gsm8k_analysis.json) and the run's training_summary.json / trainer logs / configs; draws the figures
(plots.py, and visualize_attention.py on the last causal checkpoint, whose numbers go to
<results_dir>/attention_stats.json) unless --skip_figures; refreshes the "Evaluation results" section
of each evaluated checkpoint's model card. Every number is formatted from those files; the report is
never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling scripts, when run as a file

from plots import command_line as plots_command  # noqa: E402
from plots import FIGURE_NAMES, make_plots  # noqa: E402
from visualize_attention import command_line as attention_command  # noqa: E402
from visualize_attention import visualize_attention  # noqa: E402

from modeling_modern_llm.reporting import (  # noqa: E402
    ResultsFileError,
    count_parameters,
    final_checkpoints,
    fmt,
    fmt_percent,
    fmt_signed,
    load_results_file,
    load_training_summaries,
    markdown_table,
    read_json,
    update_model_card_results,
)
from modeling_modern_llm.reporting.observations import attention_observations, stage_observations  # noqa: E402

PERPLEXITY_METRICS = ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")
ARCHITECTURE_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "rope_theta",
    "tie_word_embeddings",
    "attention_sinks",
    "qk_norm",
    "num_experts",
    "num_experts_per_tok",
)


def made_by(*commands: str) -> str:
    unique = [c for c in dict.fromkeys(commands) if c]
    return "Made by: " + "; ".join(f"`{c}`" for c in unique) if unique else "Made by: (no command recorded in the file)"


def _optional(results_dir: Path, filename: str):
    """A results file, or the sentence saying it is missing and which command writes it."""
    try:
        return load_results_file(results_dir, filename), None
    except ResultsFileError as error:
        return None, f"Not produced: {error}."


def _code(text) -> str:
    return f"`{str(text).replace('`', chr(39))}`"


def _quote(text, width: int = 240) -> str:
    text = " ".join(str(text).split())
    return _code(text if len(text) <= width else text[: width - 1] + "…")


@dataclass
class Figures:
    """Where the figures are (linked relative to the report), their captions and the command that draws them."""

    directory: Path
    report: Path
    captions: dict[str, str]
    command: str

    def image(self, name: str) -> str:
        path = self.directory / name
        if not path.is_file():
            return f"- Figure `{name}` is not in `{self.directory}`."
        return f"![{name}]({os.path.relpath(path, self.report.parent)})"

    def block(self, name: str) -> list[str]:
        return [self.image(name), "", f"*{self.captions[name]}*", "", made_by(self.command), ""]


def architecture_section(causal_checkpoints: dict[str, Path], summaries: dict) -> list[str]:
    """The last causal LM of the run: its config and parameter count."""
    lines = ["## Architecture", ""]
    if not causal_checkpoints:
        return lines + [
            "- unavailable: no `<stage>_final/config.json` in the run directory (train with `python recipes/pipeline.py`).",
            "",
        ]
    stage, folder = list(causal_checkpoints.items())[-1]
    config = read_json(folder / "config.json")
    lines += [
        f"- Checkpoint: `{folder}` (stage `{stage}`, `model_type` `{config.get('model_type')}`, "
        f"`{', '.join(config.get('architectures') or [])}`)",
        f"- Parameters: {fmt(count_parameters(folder))} (counted from the safetensors headers; tied weights once)",
    ]
    lines += [f"- {key}: {fmt(config[key])}" for key in ARCHITECTURE_FIELDS if key in config]
    return lines + [
        "",
        made_by(summaries.get(stage, {}).get("command", "")) + f" (the saved `{folder / 'config.json'}`)",
        "",
    ]


def training_section(run_dir: Path | None, summaries: dict, figures: Figures) -> list[str]:
    lines = ["## Training", ""]
    if not summaries:
        lines += [f"- unavailable: no `<stage>_final/training_summary.json` under `{run_dir}`.", ""]
    for stage, summary in summaries.items():
        datasets = ", ".join(
            _code(d) if isinstance(d, str) else _code(json.dumps(d)) for d in summary.get("datasets", [])
        )
        lines += [
            f"- **{stage}**: datasets {datasets or 'n/a'} (per-dataset sizes are not recorded in training_summary.json); "
            f"{fmt(summary.get('train_tokens'))} training tokens in {fmt(summary['steps'])} steps; per-device batch "
            f"{fmt(summary.get('per_device_batch_size'))}, world size {fmt(summary.get('world_size'))}, learning rate "
            f"{fmt(summary.get('learning_rate'))}; final loss {fmt(summary.get('final_loss'))}; measured wall time "
            f"{fmt(summary['wall_time_s'])} s at {fmt(summary.get('tokens_per_s'))} tokens/s on {_code(summary.get('hardware'))}; "
            f"config {_code(summary.get('config_path'))}.",
            f"  {made_by(summary['command'])}",
        ]
        if summary.get("pair_accuracy"):  # the verifier: memorisation shows as train >> held-out
            pairs, accuracy = summary.get("pairs", {}), summary["pair_accuracy"]
            lines.append(
                f"  Pair accuracy (correct solution scored above an incorrect one of the same problem): "
                f"{fmt(accuracy.get('train'))} on {fmt(summary.get('train_pairs_scored'))} of its training pairs, "
                f"{fmt(accuracy.get('eval'))} on {fmt(pairs.get('eval'))} held-out pairs."
            )
    pipeline = run_dir / "pipeline_summary.json" if run_dir else None
    if pipeline and pipeline.is_file():
        data = read_json(pipeline)
        lines.append(
            f"- Whole pipeline: {fmt(data.get('total_wall_time_s'))} s of measured wall time over its steps. {made_by(data.get('command', ''))}"
        )
    lines.append("")
    return lines + figures.block("training_loss.png")


def _perplexity_cells(record: dict, names: tuple[str, ...]) -> list:
    if record["status"] != "ok":
        return [record["status"]] + ["—"] * (len(names) - 1)
    return [record["metrics"].get(name) for name in names]


def results_section(results_dir: Path, task_metrics: dict, figures: Figures) -> list[str]:
    records = task_metrics["records"]
    lines = ["## Results", "", "### Perplexity", ""]
    ppl = [r for r in records if r["task"] == "perplexity"]
    lines += [
        markdown_table(
            ("model", "stage", "dataset", "split", *PERPLEXITY_METRICS),
            [
                (
                    _code(r["model"]),
                    r["stage"],
                    _code(r["dataset"]),
                    r.get("split"),
                    *_perplexity_cells(r, PERPLEXITY_METRICS),
                )
                for r in ppl
            ],
        ),
        "",
        made_by(*(r.get("command") or task_metrics["command"] for r in ppl)),
        "",
    ]
    lines += figures.block("perplexity_bpb.png")

    lines += ["### Tasks", ""]
    tasks = [r for r in records if r["task"] != "perplexity"]
    rows = [
        (
            _code(r["model"]),
            r["stage"],
            r["task"],
            _code(r["dataset"]),
            _code(", ".join(f"{k}={v}" for k, v in sorted(r.get("protocol", {}).items()))),
            "; ".join(f"{name} {fmt(value)}" for name, value in sorted(r["metrics"].items()))
            if r["status"] == "ok"
            else r["status"],
        )
        for r in tasks
    ]
    lines += [
        markdown_table(("model", "stage", "task", "dataset", "protocol", "metrics"), rows),
        "",
        made_by(*(r.get("command") or task_metrics["command"] for r in tasks)),
        "",
    ]
    notes = sorted({r["note"] for r in records if r.get("note")})
    lines += [f"- Note: {note}" for note in notes] + ([""] if notes else [])

    comparison, missing = _optional(results_dir, "baseline_comparison.json")
    lines += ["### Baselines side by side", ""]
    if missing:
        lines += [missing, ""]
    else:
        models = list(dict.fromkeys(row["model"] for row in comparison["rows"]))
        keys = list(dict.fromkeys((row["task"], row["metric"]) for row in comparison["rows"] if row.get("metric")))
        values = {(row["model"], row["task"], row["metric"]): row["value"] for row in comparison["rows"]}
        unavailable = {row["model"]: row["status"] for row in comparison["rows"] if row.get("status")}
        table = [
            (
                _code(task),
                metric,
                *(values.get((m, task, metric), "unavailable" if m in unavailable else "—") for m in models),
            )
            for task, metric in keys
        ]
        lines += [markdown_table(("task", "metric", *(f"`{m}`" for m in models)), table), ""]
        lines += [f"- `{model}`: {status}" for model, status in unavailable.items()]
        lines += ["", made_by(comparison["command"]), ""]

    gains, missing = _optional(results_dir, "stage_gains.csv")
    lines += ["### Stage gains", ""]
    if missing:
        lines += [missing, ""]
    else:
        lines += [
            markdown_table(
                ("stage", "task", "prompt", "metric", "value", "change vs previous stage"),
                [
                    (
                        r["stage"],
                        _code(r["task"]),
                        _code(r["protocol"]),
                        r["metric"],
                        r["value"],
                        "—" if r["delta_vs_previous_stage"] is None else fmt_signed(r["delta_vs_previous_stage"]),
                    )
                    for r in gains
                ],
            ),
            "",
            made_by(task_metrics["command"]) + " (stage_gains.csv is written with task_metrics.json)",
            "",
        ]
        lines += figures.block("stage_gains.png")
    return lines + verifier_section(results_dir, figures)


def verifier_section(results_dir: Path, figures: Figures) -> list[str]:
    analysis, missing = _optional(results_dir, "gsm8k_analysis.json")
    lines = ["### GSM8K: verifier impact and errors", ""]
    if missing:
        return lines + [missing, ""]
    about = f"`{analysis.get('model', '')}`, {fmt(analysis.get('n_problems'))} problems, N = {fmt(analysis['n_samples'])} samples each"
    if analysis["em_verifier"] is None:
        lines.append(
            f"- Verifier impact: unavailable: no verifier reranking in this run ({about}); greedy EM {fmt(analysis['em_greedy'])} (% of problems)."
        )
    else:
        lines.append(
            f"- Verifier impact ({about}): EM (% of problems) {fmt(analysis['em_greedy'])} greedy → "
            f"{fmt(analysis['em_verifier'])} verifier best-of-N, {fmt_signed(analysis['gain_points'])} EM points."
        )
    taxonomy = ", ".join(f"{kind} {fmt(count)}" for kind, count in analysis["taxonomy"].items())
    lines.append(
        f"- Error taxonomy of the wrong final answers (`{analysis.get('taxonomy_of', 'final')}` answers): {taxonomy}. "
        "extraction = no parsable number; arithmetic = a written step recomputes differently; reasoning = the rest."
    )
    for title, key in (
        ("False positive (the verifier's top pick is wrong)", "false_positives"),
        ("False negative (a correct candidate ranked low)", "false_negatives"),
    ):
        for example in analysis[key]:
            lines.append(
                f"- {title}: rank {fmt(example.get('verifier_rank'))} of {fmt(example.get('n_candidates'))}, "
                f"score {fmt(example.get('verifier_score'))}, answer {_quote(example.get('answer'), 40)} "
                f"(gold {_quote(example.get('reference'), 40)}); question {_quote(example.get('question', ''), 160)}; "
                f"solution {_quote(example.get('solution', ''))}"
            )
        if not analysis[key]:
            lines.append(f"- {title}: none.")
    lines += ["", made_by(analysis["command"]), ""]
    return lines + figures.block("gsm8k_em_vs_n.png")


def interpretability_section(results_dir: Path, stage_gains, figures: Figures) -> list[str]:
    lines = ["## Interpretability", ""]
    stats, missing = _optional(results_dir, "attention_stats.json")
    if missing:
        lines += [missing, ""]
    else:
        lines += [
            f"- Model `{stats['model_path']}`; examples: {', '.join(_quote(e['text'], 80) for e in stats['examples'])}.",
            f"- Conventions: {stats['conventions']}.",
            *(f"- {line}" for line in attention_observations(stats)),
            "",
            markdown_table(
                ("layer", "first-token mass", "learned-sink mass", "entropy (bits)"),
                [
                    (e["layer"], fmt_percent(e["first_token_mass"]), fmt_percent(e["sink_mass"]), e["entropy_bits"])
                    for e in stats["layers"]
                ],
            ),
            "",
            made_by(stats["command"]),
            "",
        ]
        lines += [line for figure in stats["figures"] for line in (figures.image(Path(figure).name), "")]
        lines += [
            "*Attention maps: tokens on both axes, one panel per head, chosen layers; sink mass and entropy: per layer, "
            "mean over heads (line) and each head (dots).*",
            "",
            made_by(stats["command"]),
            "",
        ]
    lines += ["### What the stages changed", ""]
    lines += (
        [f"- {line}" for line in stage_observations(stage_gains)]
        if stage_gains
        else ["- Not produced: stage_gains.csv is missing."]
    )
    return lines + [""]


def reproducibility_section(
    task_metrics: dict, summaries: dict, report_command: str, plot_cmd: str, results_dir: Path
) -> list[str]:
    seeds = sorted({r["seed"] for r in task_metrics["records"] if r.get("seed") is not None})
    lines = [
        "## Reproducibility",
        "",
        f"- This report: `{report_command}`",
        f"- Evaluation (`{results_dir}/task_metrics.json`, created `{task_metrics.get('created_at')}`): `{task_metrics['command']}`",
        f"- Figures alone: `{plot_cmd}`",
        f"- Evaluation seeds: {', '.join(fmt(s) for s in seeds) or 'n/a'}",
    ]
    lines += [
        f"- `{stage}`: config `{s.get('config_path')}`; command `{s['command']}`" for stage, s in summaries.items()
    ]
    lines += [
        "- Package versions (from task_metrics.json): "
        + ", ".join(f"`{name}=={version}`" for name, version in task_metrics["environment"].items()),
        "",
    ]
    return lines


def build_report(
    results_dir: str,
    run_dir: str | None,
    output: str,
    figures_dir: str | None = None,
    skip_figures: bool = False,
    attention_model: str | None = None,
    command: str = "",
) -> str:
    """Write the report (drawing the figures unless ``skip_figures``) and return its text."""
    results, output_path = Path(results_dir), Path(output)
    figures_path = Path(figures_dir) if figures_dir else output_path.parent / "figures"
    task_metrics = load_results_file(results, "task_metrics.json")  # the one file the report cannot do without
    run = Path(run_dir) if run_dir else None
    summaries = load_training_summaries(run) if run else {}
    checkpoints = final_checkpoints(run) if run else {}
    causal = {stage: path for stage, path in checkpoints.items() if stage != "verifier"}  # the verifier is a classifier
    if skip_figures:
        captions = dict.fromkeys(FIGURE_NAMES, "not drawn in this build (--skip_figures)")
    else:
        captions = {name: figure["caption"] for name, figure in make_plots(results, run, figures_path).items()}
        model = attention_model or (str(list(causal.values())[-1]) if causal else None)
        if model:
            stats_path = results / "attention_stats.json"
            visualize_attention(
                model, str(figures_path), str(stats_path), command=attention_command(model, figures_path, stats_path)
            )
    figures = Figures(figures_path, output_path, captions, plots_command(results, run, figures_path))
    stage_gains, _ = _optional(results, "stage_gains.csv")
    lines = [
        "# modern-llm: final report",
        "",
        f"Generated by `{command}` from `{results}`"
        + (f" and `{run}`" if run else " (no run directory)")
        + "; never edited by hand. Numbers are formatted from those files; every table and figure names the command that made it.",
        "",
    ]
    lines += architecture_section(causal, summaries)
    lines += training_section(run, summaries, figures)
    lines += results_section(results, task_metrics, figures)
    lines += interpretability_section(results, stage_gains, figures)
    lines += reproducibility_section(task_metrics, summaries, command, figures.command, results)
    text = "\n".join(lines)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(text, encoding="utf-8")
    for folder in checkpoints.values():  # the model cards get the numbers of their own checkpoint
        own = [
            r
            for r in task_metrics["records"]
            if r.get("model_path") and Path(r["model_path"]).resolve() == folder.resolve()
        ]
        if own and (folder / "README.md").is_file():
            update_model_card_results(folder, own, source=str(results / "task_metrics.json"))
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", default="experiments/results")
    parser.add_argument(
        "--run_dir", default=None, help="experiments/runs/<run>; without it the report has no training section"
    )
    parser.add_argument("--output", default="report/final_report.md")
    parser.add_argument("--figures_dir", default=None, help="default: <output's folder>/figures")
    parser.add_argument(
        "--skip_figures", action="store_true", help="do not draw figures or rerun the attention analysis"
    )
    parser.add_argument(
        "--attention_model",
        default=None,
        help="checkpoint for the attention figures; default: the run's last causal LM",
    )
    args = parser.parse_args(argv)
    try:
        build_report(
            args.results_dir,
            args.run_dir,
            args.output,
            args.figures_dir,
            args.skip_figures,
            args.attention_model,
            command=shlex.join(["python", "report/build_report.py", *argv]),
        )
    except ResultsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
