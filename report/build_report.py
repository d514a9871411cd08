"""Build report/final_report.md (and its figures) from an evaluation's results and the training run.

    python report/build_report.py --results_dir experiments/results --run_dir experiments/runs/<run> \
        --output report/final_report.md [--update_model_cards]
    python report/build_report.py --results_dir experiments/runs/<run>/seed-0/results \
        --run_dir experiments/runs/<run>/seed-0 --seed_summary experiments/runs/<run>/seed_summary.json \
        --output report/final_report.md            # a run of several seeds (recipes/pipeline.py --seeds ...)

Reads the evaluation only through modeling_modern_llm.evaluation.results (lm-eval's results and samples, the
verifier's scores, the run index) and the run's training_summary.json files and trainer logs; draws the figures
(plots.py, and visualize_attention.py on the run's last causal LM) unless --skip_figures. Every number is one the
results module computed or a run file holds, with its standard error and n where it is a measurement; every table
and figure names the command that made it. --update_model_cards also writes each evaluated checkpoint's headline
row into its model card. With --seed_summary (the pipeline's `--seeds`), every number also shows its mean ± sd
across the seeds, their t interval and, for each change, how many seeds agree in its sign. It opens with what a
reviewer reads in a minute. Paths show relative to the run (`<run>/...`) and the interpreter as `python`;
--figures_dir puts the figures elsewhere (links relative to the report, e.g. docs/reference_report_figures/).
The report is never edited by hand.

Rule of the report/ folder: everything that turns result files into the report (scripts and their helpers) lives
here; the library (modeling_modern_llm/) computes and never draws or writes a report.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import plots  # a sibling script: Python puts a script's own folder first on sys.path
import run_files
import visualize_attention

from modeling_modern_llm.errors import InputFileError, run_command
from modeling_modern_llm.files import atomic_write_text, portable
from modeling_modern_llm.evaluation import results, seed_summary
from modeling_modern_llm.stages import POLICY_STAGES, get_stage
from modeling_modern_llm.training.model_card import ARCHITECTURE_FIELDS

SINK_THRESHOLD = 0.3  # mean attention on token 0 above which it counts as an attention sink
FLAT_ENTROPY_BITS = 0.1  # |last - first layer entropy| below this counts as flat
TRAINING_FIELDS = (  # (training_summary.json field, column); a column shows when any stage recorded it
    ("steps", "steps"),
    ("train_tokens", "tokens"),
    ("wall_time_s", "wall time (s)"),
    ("final_loss", "final loss"),
    ("hardware", "hardware"),
    ("world_size", "world size"),
    ("mixed_precision", "mixed precision"),
    ("param_dtype", "param dtype"),
    ("attn_implementation", "attention"),
    ("packing_strategy", "packing"),
    ("padding_free", "padding-free"),
    ("accelerate_config", "accelerate config"),
    ("rehearsal", "rehearsal"),
)
MINUTE_MEASURES = ("bits per byte", "SST-2", results.SELECTOR_COLUMNS["greedy"])  # each stage's effect, in one minute


def fmt(value) -> str:
    """A run-file value as printed: ints exact, floats to 4 significant decimals, booleans yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}".rstrip("0").rstrip(".")
    return "n/a" if value is None else str(value)


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(
        lines + ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    )


def code(text) -> str:
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def made_by(*commands: str) -> str:
    return "Made by: " + "; ".join(code(c) for c in dict.fromkeys(commands) if c)


def cell(value: dict | None, column: str) -> str:
    return results.format_value(value, percent=column != "bits per byte")


def points(fraction: float) -> str:
    return f"{100 * fraction:+.1f}"


def number(entry: dict, value: float | None, signed: bool = False) -> str:
    """A metric's value as the report prints it: points (percent) or bits per byte, signed for a change."""
    if value is None:
        return "n/a"
    scale, digits = (100, 1) if entry["percent"] else (1, 3)
    return f"{scale * value:{'+' if signed else ''}.{digits}f}"


def interval(entry: dict, bounds: list[float] | None, signed: bool = True) -> str:
    return "n/a" if bounds is None else f"[{number(entry, bounds[0], signed)}, {number(entry, bounds[1], signed)}]"


def sign_agreement(entry: dict) -> str:
    """ "3 of 3 positive": how many seeds agree with the sign of the mean ("1 positive, 1 negative" at a mean of 0)."""
    if not entry["mean"]:
        return f"{entry['positive']} positive, {entry['negative']} negative"
    side = "positive" if entry["mean"] > 0 else "negative"
    return f"{entry[side]} of {entry['n_seeds']} {side}"


def display(name: str) -> str:
    return get_stage(name).display_name if name in POLICY_STAGES else results.SELECTOR_COLUMNS.get(name, name)


def minute_section(
    run: results.EvaluationRun, summaries: dict, checkpoints: dict, run_dir: Path | None, seeds: dict | None
) -> list[str]:
    """What was trained, on what and how long; each stage's effect and the verifier's, with their intervals; what
    the data is. With seeds: means across seeds, t intervals, sign agreement; else the run's own intervals."""
    lines = ["## In one minute", ""]
    causal = [stage for stage in checkpoints if stage in POLICY_STAGES]
    if causal:
        folder = checkpoints[causal[-1]]
        config = run_files.read_json(folder / "config.json")
        kv = config.get("num_key_value_heads") or config.get("num_attention_heads")
        flags = [
            name
            for key, name in (("attention_sinks", "learned attention sinks"), ("qk_norm", "QK-norm"))
            if config.get(key)
        ]
        experts = f"{config['num_experts']} experts" if config.get("num_experts") else "dense MLPs"
        lines.append(
            f"- **Model**: {run_files.count_parameters(folder)} parameters ({code(folder)}), a decoder-only "
            f"transformer: hidden size {config.get('hidden_size')}, {config.get('num_hidden_layers')} layers, "
            f"{config.get('num_attention_heads')} attention heads sharing {kv} key-value heads, vocabulary "
            f"{config.get('vocab_size')}, context {config.get('max_position_embeddings')} tokens, "
            + ", ".join([*flags, experts])
            + "."
        )
    if summaries:
        hardware = ", ".join(dict.fromkeys(str(s.get("hardware")) for s in summaries.values()))
        stages = "; ".join(
            f"{display(stage)} {fmt(s.get('train_tokens'))} tokens in {fmt(s.get('wall_time_s'))} s"
            for stage, s in summaries.items()
        )
        pipeline = run_dir / "pipeline_summary.json" if run_dir else None
        total = run_files.read_json(pipeline).get("total_wall_time_s") if pipeline and pipeline.is_file() else None
        lines.append(
            f"- **Training** on {hardware}: {stages}"
            + (f"; the whole pipeline {fmt(total)} s" if total else "")
            + (
                f" (seed {seeds['seeds'][0]}; the pipeline ran once for each of the {len(seeds['seeds'])} seeds)"
                if seeds
                else ""
            )
            + "."
        )
    metrics = seeds["metrics"] if seeds else seed_summary.run_metrics(run)
    estimate, source = ("mean", seeds["command"]) if seeds else ("value", run.command)
    across = (
        (
            f"the mean of {len(seeds['seeds'])} seeds ({', '.join(map(str, seeds['seeds']))}), its "
            f"{100 * seeds['confidence']:.0f}% t interval across seeds and how many seeds agree in sign"
        )
        if seeds
        else None
    )
    gains = [m for m in metrics.values() if m["kind"] == "gain" and m["measure"] in MINUTE_MEASURES]
    steps = list(dict.fromkeys((m["previous_stage"], m["stage"]) for m in gains))
    if steps:
        measures = [measure for measure in MINUTE_MEASURES if any(m["measure"] == measure for m in gains)]
        body = []
        for previous, stage in steps:
            by_measure = {m["measure"]: m for m in gains if (m["previous_stage"], m["stage"]) == (previous, stage)}
            body.append(
                [
                    f"{display(previous)} → {display(stage)}",
                    *(
                        "—"
                        if (m := by_measure.get(measure)) is None
                        else f"{number(m, m[estimate], True)} {interval(m, m['interval'])}"
                        + (f", {sign_agreement(m)}" if seeds else "")
                        for measure in measures
                    ),
                ]
            )
        how = across or (
            "one training run: the change and its 95% interval from the standard errors of the two "
            "measurements, as if independent"
        )
        lines += [
            "",
            f"**What each stage did** ({how}; points, bits per byte: lower is better):",
            "",
            table(["stage", *measures], body),
            "",
            made_by(source),
            "",
        ]
    differences = [m for m in metrics.values() if m["kind"] == "difference"]
    verifier = [m for m in differences if m["treatment"].startswith("verifier")]
    if verifier:
        how = across or "one training run: the difference and its 95% paired bootstrap interval over the problems"
        lines += [
            f"**What the verifier did**: its pick among the {display(verifier[0]['stage'])} model's samples of "
            f"{code(verifier[0]['task'])}, against the other selectors on the same problems ({how}):",
            "",
            table(
                ["selector", "against", "difference (points)", "interval", *(["seeds"] if seeds else [])],
                [
                    [
                        display(m["treatment"]),
                        display(m["baseline"]),
                        number(m, m[estimate], True),
                        interval(m, m["interval"]),
                        *([sign_agreement(m)] if seeds else []),
                    ]
                    for m in verifier
                ],
            ),
            "",
            made_by(source),
            "",
        ]
        if ceiling := next(
            (m for m in differences if m["treatment"] == "oracle_pass_at_n" and m["baseline"] == "greedy"), None
        ):
            lines += [
                f"pass@N against greedy, {number(ceiling, ceiling[estimate], True)} points, is the most any "
                "selector over these samples can gain over greedy decoding.",
                "",
            ]
    tasks = {m["task"] for m in metrics.values()}
    if any(task.startswith("embedded") for task in tasks):
        lines += [
            "**The data** is the embedded corpus (`modeling_modern_llm/data/embedded.py`): templated stories, "
            "instructions, preference pairs, arithmetic word problems and sentiment sentences generated from a "
            "seed, every evaluation item held out from training by construction. It shows the pipeline learning "
            "in minutes on a CPU. It is not WikiText, SST-2 or GSM8K: its numbers are not comparable with "
            "published results on those benchmarks.",
            "",
        ]
    return lines


def seeds_section(seeds: dict) -> list[str]:
    """Every metric of the seed summary: the seeds' values, mean ± sd, the t interval and the within-run error."""
    count = len(seeds["seeds"])
    lines = [
        "## Across seeds",
        "",
        f"The whole pipeline trained and evaluated once per seed ({', '.join(map(str, seeds['seeds']))}: every "
        "stage's initialisation, data order and sampling, and the evaluation's sampling; the same corpus and "
        f"held-out items). Mean ± sd: the sample standard deviation over the {count} seeds; the "
        f"{100 * seeds['confidence']:.0f}% interval of the mean uses Student's t with n - 1 degrees of "
        "freedom (n seeds); within-run SE: the standard error over the test items of one run (mean over seeds), which "
        "covers the items, not the training run. The sections below show the first seed's run in detail.",
        "",
    ]
    titles = {
        "value": "Values",
        "gain": "Stage gains (change from the previous stage)",
        "difference": "Selector differences (paired, same problems)",
    }
    for kind, title in titles.items():
        entries = [(key, m) for key, m in seeds["metrics"].items() if m["kind"] == kind]
        if not entries:
            continue
        signed = kind != "value"
        header = [
            "metric",
            "per seed",
            "mean ± sd",
            f"{100 * seeds['confidence']:.0f}% t interval",
            "within-run SE",
            *(["seeds agreeing in sign"] if signed else []),
        ]
        body = [
            [
                code(key),
                ", ".join(number(m, v, signed) for v in m["values"]),
                f"{number(m, m['mean'], signed)} ± {number(m, m['sd'])}"
                if m["sd"] is not None
                else number(m, m["mean"], signed),
                interval(m, m["interval"], signed),
                number(m, m["mean_stderr"]),
                *([sign_agreement(m)] if signed else []),
            ]
            for key, m in entries
        ]
        lines += [
            f"**{title}** (percent metrics in points, `bits_per_byte` in bits; keys `<stage>/<task>/<metric>`)",
            "",
            table(header, body),
            "",
            made_by(seeds["command"]) + " (its `seed_summary.json`)",
            "",
        ]
    return lines


def headline_section(run: results.EvaluationRun, rows: list[dict]) -> list[str]:
    columns = [c for c in results.COLUMNS if any(r["cells"][c] for r in rows)] or list(results.COLUMNS[:2])
    body = [
        [
            row["display_name"],
            *(
                [cell(row["cells"][c], c) for c in columns]
                if row["status"] == "ok"
                else [row["status"]] + [""] * (len(columns) - 1)
            ),
        ]
        for row in rows
    ]
    sources = {results.task_key(r["cells"][c]["task"]): c for c in reversed(columns) for r in rows if r["cells"][c]}
    lines = [
        "## Headline",
        "",
        table(
            [
                "model",
                *(
                    f"{c} ({'lower' if c == 'bits per byte' else 'higher'} is better)"
                    if c in ("bits per byte", "SST-2")
                    else c
                    for c in columns
                ),
            ],
            body,
        ),
        "",
    ]
    lines.append(
        "Each cell: value ± standard error (n); percentages are accuracy or exact match. Tasks: "
        + ", ".join(
            f"{code(task)} ({column if column in ('bits per byte', 'SST-2', 'GSM8K greedy') else 'best-of-N'})"
            for task, column in reversed(sources.items())
        )
        + "; chat models ran their `_chat` variants."
    )
    if any(task.startswith("embedded") for task in sources):
        lines.append(
            "Embedded tasks score the generated corpus: a smoke test of the pipeline, not comparable with "
            "published benchmark numbers."
        )
    for task, reason in run.index.get("unavailable_tasks", {}).items():
        lines.append(f"Task {code(task)}: {reason}.")
    return lines + ["", made_by(run.command), ""]


def stage_gains_section(run: results.EvaluationRun, rows: list[dict]) -> list[str]:
    every = results.stage_gains(run, rows)
    stages = [s for s in POLICY_STAGES if any(g["stage"] == s for g in every)]
    gains, steps = [g for g in every if g["delta_vs_previous_stage"] is not None], stages[1:]
    if not steps:
        return ["## Stage gains", "", "Fewer than two training stages were evaluated.", ""]
    header = ["measure", *(f"{get_stage(a).display_name} → {get_stage(b).display_name}" for a, b in zip(stages, steps))]
    body = []
    for measure in dict.fromkeys(g["measure"] for g in gains):
        scale, digits = (1, 3) if measure == "bits per byte" else (100, 1)
        by_stage = {g["stage"]: g for g in gains if g["measure"] == measure}
        body.append(
            [
                measure,
                *(
                    "—"
                    if (g := by_stage.get(s)) is None
                    else f"{scale * g['delta_vs_previous_stage']:+.{digits}f}"
                    + ("" if g["delta_stderr"] is None else f" ± {scale * g['delta_stderr']:.{digits}f}")
                    for s in steps
                ),
            ]
        )
    return [
        "## Stage gains",
        "",
        table(header, body),
        "",
        "Change from one stage to the next (points; bits per byte: lower is better) ± the standard error of the "
        "difference as if the two measurements were independent (they share their documents: it errs wide). Each "
        "stage is measured in its own prompt format (chat models through their template, `_chat` tasks); the "
        "values are in the headline table.",
        "",
        made_by(run.command),
        "",
    ]


def paired_interval(comparison: dict) -> str:
    """ "+3.2 [-1.0, +7.5]": a paired difference in points and its bootstrap interval."""
    return f"{points(comparison['difference'])} [{points(comparison['low'])}, {points(comparison['high'])}]"


def analysed_model_line(analysis: dict) -> str:
    stage = analysis["stage"]
    name = get_stage(stage).display_name if stage in POLICY_STAGES else analysis["model"]
    policy = analysis.get("verifier_policy")
    why = (
        f"It is the policy the verifier was trained on ({code(policy)})."
        if policy
        else "The run does not record which policy the verifier was trained on: the DPO stage stands for it (else the "
        "most trained policy before it)."
    )
    return (
        f"{name} ({code(analysis['model'])}) on {code(analysis['task'])}: {analysis['n_problems']} problems, "
        f"N = {analysis['n_samples']} samples each, greedy decoding from {code(analysis.get('greedy_task'))}, both "
        f"{'with' if analysis.get('calculator') else 'without'} the calculator at generation. {why}"
    )


def selector_table(analysis: dict) -> list[str]:
    """Exact match of every selector, and each one's paired difference against a random pick, greedy and majority."""
    baselines = ("random_of_n", "greedy", "majority_vote")
    pairs = {(c["treatment"], c["baseline"]): c for c in analysis["comparisons"]}
    body = [
        [
            results.SELECTOR_COLUMNS[selector],
            cell(value, "GSM8K"),
            *(paired_interval(pairs[selector, b]) if (selector, b) in pairs else "—" for b in baselines),
        ]
        for selector, value in analysis["selectors"].items()
    ]
    first = analysis["comparisons"][0] if analysis["comparisons"] else {"confidence": 0.95, "iterations": 0, "seed": 0}
    header = [
        "selector",
        "exact match (%)",
        *(f"vs {results.SELECTOR_COLUMNS[b]} (points) [{100 * first['confidence']:.0f}% interval]" for b in baselines),
    ]
    return [
        table(header, body),
        "",
        f"Differences on the same problems with their paired bootstrap interval ({first['iterations']} resamples of "
        f"the problems, seed {first['seed']}). A random pick is one of the N at random, scored by its expectation: "
        "what a verifier at chance scores. The verifier's top-k vote is a majority vote among its "
        f"{analysis.get('top_k')} best-scored solutions.",
    ]


def ranking_table(analysis: dict) -> list[str]:
    ranking = analysis.get("verifier_ranking")
    if not ranking:
        return []
    body = [
        [
            title,
            "n/a" if r["pair_accuracy"] is None else f"{r['pair_accuracy']:.3f}",
            f"{r['n_pairs']} ({r['n_problems']})",
            "n/a" if r["auroc"] is None else f"{r['auroc']:.3f}",
            f"{r['n']} ({r['n_correct']})",
        ]
        for title, r in (("all", ranking["all"]), ("answer parses", ranking["parsed"]))
    ]
    lines = [
        "",
        table(
            ["candidates", "within-problem pair accuracy", "pairs (problems)", "AUROC", "candidates (correct)"], body
        ),
        "",
        "Pair accuracy: over every (correct, wrong) pair of candidates of the same problem, how often the correct one "
        "scores higher (ties count half); AUROC: the same over all candidates of all problems. Chance is one half.",
    ]
    if errors := analysis.get("verifier_errors"):
        lines += [
            "",
            f"False positives (the verifier's top pick is wrong although one of the N is correct): "
            f"{errors['false_positives']} of the {errors['problems_with_a_correct_candidate']} problems with a "
            f"correct candidate (problems without one: {errors['problems_without_a_correct_candidate']}). False "
            f"negatives (correct candidates ranked below a wrong top pick): {errors['false_negatives']}. "
            "Examples under Errors.",
        ]
    return lines


def calculator_table(analysis: dict) -> list[str]:
    effect = analysis.get("calculator_effect")
    if not effect:
        return []
    body = [
        [
            results.SELECTOR_COLUMNS[row["selector"]],
            f"{100 * row['without']:.1f}",
            f"{100 * row['with']:.1f}",
            paired_interval(row),
        ]
        for row in effect["rows"]
    ]
    return [
        "",
        table(
            ["selector", "without the calculator (%)", "with it (%)", "with − without (points) [95% interval]"], body
        ),
        "",
        f"The calculator at generation on its own: {code(effect['tasks']['without'])} against "
        f"{code(effect['tasks']['with'])}, the {effect['n_problems']} problems both answered; its gain is the "
        "calculator's, not the verifier's.",
    ]


def verifier_section(analysis: dict | None, figures: dict, figure_command: str) -> list[str]:
    lines = ["## Verifier impact", ""]
    if analysis is None:
        return lines + ["Not produced: the evaluation ran no sampled GSM8K task (`--n_samples` > 0).", ""]
    lines += [analysed_model_line(analysis), ""]
    lines += selector_table(analysis)
    ceiling = next((c for c in analysis["comparisons"] if c["treatment"] == "oracle_pass_at_n"), None)
    if ceiling:
        lines += [
            "",
            f"pass@N against greedy ({points(ceiling['difference'])} points) is the ceiling: no selector "
            f"over these {analysis['n_samples']} samples can gain more over greedy decoding.",
        ]
    if "verifier_best_of_n" not in analysis["selectors"]:
        lines.append("No verifier scored the samples (`--verifier`), so there is no verifier selector.")
    lines += ["", made_by(analysis["command"])]
    for part in (ranking_table(analysis), calculator_table(analysis)):  # each table followed by its command
        lines += [*part, "", made_by(analysis["command"])] if part else []
    lines.append("")
    return lines + figure_block("gsm8k_em_vs_n.png", figures, figure_command)


SWEEP_TABLE = Path("verifier_sweep") / "verifier_sweep.md"  # benchmarks/verifier_sweep.py's default output


def verifier_sweep_section(top: Path | None) -> list[str]:
    """The verifier settings compared on the same held-out candidates (`benchmarks/verifier_sweep.py`), when the run
    (or the folder of its seeds) holds that benchmark's table: what was tried, beside what the pipeline trained."""
    path = top / SWEEP_TABLE if top else None
    if path is None or not path.is_file():
        return []
    return [
        "### Verifier settings compared",
        "",
        "Verifiers trained from the same policy, one setting changed at a time, rank the same held-out candidates "
        "as above. A verifier at chance scores a random pick.",
        "",
        path.read_text(encoding="utf-8").rstrip(),
        "",
    ]


KIND_NAMES = {
    "extraction": "extraction",
    "arithmetic": "arithmetic",
    "unsupported_quantity": "reasoning: a quantity not in the question",
    "answer_not_last_result": "reasoning: the answer is not the last result",
    "missing_step": "reasoning: a step missing",
}


def errors_section(analysis: dict | None) -> list[str]:
    if analysis is None:
        return []
    taxonomy = analysis.get("error_taxonomy") or {"by_selector": {}, "kinds": [], "examples": {}}
    columns = list(taxonomy["by_selector"])
    lines = ["## Errors", ""]
    if columns:
        body = [
            [KIND_NAMES.get(kind, kind), *(taxonomy["by_selector"][c]["counts"][kind] for c in columns)]
            for kind in taxonomy["kinds"]
        ]
        body.append(["wrong answers", *(taxonomy["by_selector"][c]["n_wrong"] for c in columns)])
        lines += [
            table(["kind", *(results.SELECTOR_COLUMNS[c] for c in columns)], body),
            "",
            "Each wrong answer gets the first kind that applies: extraction (no number to answer with); arithmetic "
            "(a step's written result recomputes differently); then reasoning, every step computing: a quantity "
            "not in the question (a step uses a number that is neither the question's nor an earlier result), "
            "the answer is not the last result computed, or a step missing (every number comes from the question "
            "or earlier steps and the answer is the last result, yet it is wrong: a needed step was not done, or a step used "
            "the wrong one of the question's quantities).",
            "",
        ]
    for kind, example in taxonomy["examples"].items():
        lines.append(
            f"- {KIND_NAMES.get(kind, kind)} ({results.SELECTOR_COLUMNS[example['selector']]}, answer "
            f"{code(example['answer'])}, reference {code(example['reference'])}): {code(example['question'])} → "
            f"{code(example['text'][:300])}"
        )
    for title, key in (
        ("Verifier's top pick, wrong", "false_positives"),
        ("Correct, ranked low by the verifier", "false_negatives"),
    ):
        for example in analysis[key]:
            top = f", top pick's score {example['top_score']:.3f}" if key == "false_negatives" else ""
            lines.append(
                f"- {title} (rank {example['rank']} of {example['n_candidates']}, score "
                f"{example['verifier_score']:.3f}{top}, answer {code(example['answer'])}, reference "
                f"{code(example['reference'])}): {code(example['question'])} → {code(example['text'][:300])}"
            )
    return lines + ["", made_by(analysis["command"]), ""]


def figure_block(name: str, figures: dict, command: str) -> list[str]:
    caption = figures.get(name, "not drawn in this build (--skip_figures)")
    if caption.startswith("not drawn"):
        return [f"Figure `{name}`: {caption}.", ""]
    return [f"![{name}](figures/{name})", "", f"*{caption}*", "", made_by(command), ""]


def interpretability_section(stats: dict | None, command: str) -> list[str]:
    lines = ["## Interpretability", ""]
    if stats is None:
        return lines + [f"Not produced: no causal checkpoint to analyse, or --skip_figures. Run `{command}`.", ""]
    layers = stats["layers"]
    top = max(layers, key=lambda entry: entry["first_token_mass"])
    first, last = layers[0], layers[-1]
    change = last["entropy_bits"] - first["entropy_bits"]
    trend = "stays flat" if abs(change) < FLAT_ENTROPY_BITS else "rises" if change > 0 else "falls"
    lines += [
        f"Model {code(stats['model_path'])}, {len(stats['examples'])} short examples; averages over every query position "
        "but the first (which sees only itself), examples and heads; entropy in bits over the softmax, the learned "
        "sink's column included.",
        f"- Layer {top['layer']} attends most to the first token: {100 * top['first_token_mass']:.1f}%, "
        f"{'above' if top['first_token_mass'] > SINK_THRESHOLD else 'below'} the {100 * SINK_THRESHOLD:.0f}% at which "
        "we call the first token an attention sink.",
        "- The learned sinks take "
        + ", ".join(f"{100 * e['sink_mass']:.1f}%" for e in layers)
        + " of the attention by layer."
        if stats["attention_sinks"]
        else "- The model has no learned sinks (`attention_sinks` off).",
        f"- Attention entropy {trend} with depth: {first['entropy_bits']:.3f} bits in layer {first['layer']}, "
        f"{last['entropy_bits']:.3f} in layer {last['layer']} (flat: within {FLAT_ENTROPY_BITS} bits).",
        "",
    ]
    for figure in stats["figures"]:
        lines += [f"![{Path(figure).name}](figures/{Path(figure).name})", ""]
    return lines + [
        "*Attention maps (tokens on both axes, one panel per head) and, per layer, sink mass and entropy "
        "(line: mean over heads; dots: heads).*",
        "",
        made_by(stats["command"]),
        "",
    ]


def reproducibility_section(
    run: results.EvaluationRun,
    summaries: dict,
    checkpoints: dict,
    run_dir: Path | None,
    report_command: str,
    figures: dict,
    figure_command: str,
) -> list[str]:
    lines = [
        "## Reproducibility",
        "",
        f"- This report: {code(report_command)}",
        f"- Evaluation: {code(run.command)} "
        f"(seed {run.index['seed']}, corpus seed {run.index['corpus_seed']}, limit {run.index['limit']})",
        "- Packages: " + ", ".join(f"{name} {code(version)}" for name, version in run.index["environment"].items()),
    ]
    if not summaries:
        return lines + [f"- Training: no `<stage>_final/training_summary.json` under {code(run_dir)}.", ""]
    fields = [(key, title) for key, title in TRAINING_FIELDS if any(key in s for s in summaries.values())]
    lines += [
        "",
        table(
            ["stage", "config", "datasets", *(title for _, title in fields)],
            [
                [
                    stage,
                    code(s.get("config_path")),
                    ", ".join(map(code, s.get("datasets", []))),
                    *(fmt(s.get(key)) for key, _ in fields),
                ]
                for stage, s in summaries.items()
            ],
        ),
        "",
        made_by(*(s["command"] for s in summaries.values())) + " (each stage's `training_summary.json`)",
        "",
    ]
    if verifier := summaries.get("verifier", {}).get("pair_accuracy"):
        lines.append(
            f"- Verifier pair accuracy (a correct solution scored above a wrong one of the same problem): "
            f"{fmt(verifier.get('train'))} on its training pairs, {fmt(verifier.get('eval'))} held out."
        )
    causal = [stage for stage in checkpoints if stage in POLICY_STAGES]
    if causal:
        folder = checkpoints[causal[-1]]
        config = run_files.read_json(folder / "config.json")
        lines.append(
            f"- Architecture ({code(folder)}, {run_files.count_parameters(folder)} parameters): "
            + ", ".join(f"{key} {fmt(config[key])}" for key in ARCHITECTURE_FIELDS if key in config)
        )
    pipeline = run_dir / "pipeline_summary.json" if run_dir else None
    if pipeline and pipeline.is_file():
        data = run_files.read_json(pipeline)
        lines.append(
            f"- Pipeline: {code(data.get('command'))}, {fmt(data.get('total_wall_time_s'))} s of measured wall time."
        )
    if grpo := summaries.get("grpo"):
        reward = grpo.get("reward_logged") or {}
        lines.append(
            f"- GRPO: rewards {', '.join(map(code, grpo.get('reward_funcs', [])))} (weights "
            f"{', '.join(map(fmt, grpo.get('reward_weights', [])))}), {fmt(grpo.get('num_generations'))} samples "
            f"per prompt, beta {fmt(grpo.get('beta'))}; logged reward {fmt(reward.get('first'))} at the first "
            f"logged step, {fmt(reward.get('last'))} at the last."
        )
    return (
        lines
        + [""]
        + figure_block("training_loss.png", figures, figure_command)
        + (figure_block("grpo_training.png", figures, figure_command) if "grpo" in summaries else [])
    )


def model_card_section(row: dict, run: results.EvaluationRun, source: Path) -> str:
    columns = [c for c in results.COLUMNS if row["cells"][c]]
    body = [[c, cell(row["cells"][c], c), code(row["cells"][c]["task"])] for c in columns]
    return (
        f"{run_files.CARD_SECTION}\n\nFrom the evaluation in `{source}` ({code(run.command)}).\n\n"
        f"{table(['measure', 'value ± standard error (n)', 'task'], body)}\n\n"
    )


def build_report(
    results_dir: str,
    run_dir: str | None,
    output: str,
    skip_figures: bool = False,
    update_model_cards: bool = False,
    command: str = "",
    seed_summary_path: str | None = None,
    figures_dir: str | None = None,
) -> str:
    """Write the report (and, unless `skip_figures`, its figures into `figures_dir`, by default `figures/` beside
    it); returns its text. `seed_summary_path`: the seed_summary.json of a run of several seeds."""
    results_path, output_path = Path(results_dir), Path(output)
    run = results.load_run(results_path)
    run_path = Path(run_dir) if run_dir else None
    seeds = run_files.read_json(Path(seed_summary_path)) if seed_summary_path else None
    summaries = run_files.training_summaries(run_path) if run_path else {}
    checkpoints = run_files.final_checkpoints(run_path) if run_path else {}
    figures_dir = Path(figures_dir) if figures_dir else output_path.parent / "figures"
    # What a reader sees has no machine paths: the run as <run>, its results as <results>, the seeds' folder as
    # <seeds_dir> and the folder of runs that holds it as <runs_dir>, the report's and figures' folders as <report_dir>
    # and <figures> (absolute paths; relative ones stay as given). Where two are one folder, the later name wins.
    top = Path(seed_summary_path).parent if seeds else run_files.seeds_folder(run_path) or run_path
    anchors = {
        str(output_path.parent): "<report_dir>",
        str(figures_dir): "<figures>",
        str(top.parent) if top else "": "<runs_dir>",
        str(top) if top != run_path else "": "<seeds_dir>",
        str(run_path or ""): "<run>",
        str(results_path): "<results>",
    }
    rows, analysis = results.headline(run), results.gsm8k_analysis(run)
    figure_command = plots.command_line(results_path, run_path, figures_dir)
    causal = [path for stage, path in checkpoints.items() if stage in POLICY_STAGES]
    stats, attention_command = (
        None,
        visualize_attention.command_line(
            causal[-1] if causal else "<run>/dpo_final", figures_dir, figures_dir / "attention_stats.json"
        ),
    )
    figures, stats_path = {}, figures_dir / "attention_stats.json"
    if skip_figures and stats_path.is_file():  # re-rendering the Markdown keeps the last attention analysis
        stats = run_files.read_json(stats_path)
    if not skip_figures:
        figures = plots.make_plots(results_path, run_path, figures_dir, analysis)
        if causal:
            stats = visualize_attention.visualize_attention(
                str(causal[-1]), str(figures_dir), str(stats_path), command=attention_command
            )
    lines = [
        "# modern-llm: final report",
        "",
        f"Generated by {code(command)} from {code(results_path)}"
        + (f" and {code(run_path)}" if run_path else "")
        + "; never edited by hand. Every table and figure names the command that made it.",
        "",
    ]
    lines += minute_section(run, summaries, checkpoints, run_path, seeds)
    lines += seeds_section(seeds) if seeds else []
    lines += headline_section(run, rows)
    lines += stage_gains_section(run, rows)
    lines += verifier_section(analysis, figures, figure_command)
    lines += verifier_sweep_section(top)
    lines += errors_section(analysis)
    lines += interpretability_section(stats, attention_command)
    lines += reproducibility_section(run, summaries, checkpoints, run_path, command, figures, figure_command)
    text = portable("\n".join(lines), anchors)
    if (link := Path(os.path.relpath(figures_dir, output_path.parent)).as_posix()) != "figures":
        text = text.replace("](figures/", f"]({link}/")  # the sections link figures/<name>: where they really are
    atomic_write_text(str(output_path), text)
    if update_model_cards:
        for row, model in zip(rows, run.models):
            folder = Path(model.entry["path"]).resolve()
            if (
                row["status"] == "ok"
                and folder in {p.resolve() for p in checkpoints.values()}
                and (folder / "README.md").is_file()
            ):
                run_files.update_model_card(folder, portable(model_card_section(row, run, results_path), anchors))
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", default="experiments/results")
    parser.add_argument("--run_dir", default=None, help="experiments/runs/<run>; without it no training facts")
    parser.add_argument("--output", default="report/final_report.md")
    parser.add_argument(
        "--skip_figures", action="store_true", help="do not draw figures or rerun the attention analysis"
    )
    parser.add_argument(
        "--update_model_cards",
        action="store_true",
        help="write each evaluated <run>/<stage>_final's headline numbers into its model card",
    )
    parser.add_argument(
        "--seed_summary",
        default=None,
        help="<run>/seed_summary.json of `recipes/pipeline.py --seeds ...`: every number across seeds",
    )
    parser.add_argument(
        "--figures_dir",
        default=None,
        help="where the figures go (default: figures/ beside --output); the links follow them",
    )
    args = parser.parse_args(argv)
    if args.seed_summary and not Path(args.seed_summary).is_file():
        raise InputFileError(
            f"--seed_summary {args.seed_summary} not found: run `python recipes/pipeline.py --config "
            "<pipeline.yaml> --seeds 0 1 2` first"
        )
    build_report(
        args.results_dir,
        args.run_dir,
        args.output,
        args.skip_figures,
        args.update_model_cards,
        command=shlex.join(["python", "report/build_report.py", *argv]),
        seed_summary_path=args.seed_summary,
        figures_dir=args.figures_dir,
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
