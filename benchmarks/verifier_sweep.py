"""Verifier settings compared on the same held-out candidates, across seeds: does a verifier beat a random pick?

    python benchmarks/verifier_sweep.py --run_dir experiments/runs/reference --seeds 0 1 2 \
        --variant run --variant "400x8=--max_train_samples 400 --samples_per_problem 8"

For each seed's run (`<run_dir>/seed-<s>`, or `--run_dir` itself without `--seeds`) and each variant:
1. Trains a verifier from the policy the run's verifier was trained on (the GSM8K analysis's policy, `dpo_final` by
   default) with the verifier stage's YAML (`--config`) and the variant's extra `recipes/verifier.py` flags, the
   seed as `--seed`, into `<output_dir>/<variant>/seed-<s>/verifier`. A variant already trained there is reused
   (delete its folder to retrain). The variant `run` is the run's own `verifier_final`, as the pipeline trained it.
2. Scores the candidates the run's evaluation sampled for that policy (its sampled GSM8K task: N solutions of each
   held-out problem), so every variant ranks the very same solutions the report's verifier section ranks.
3. Prints, per variant and seed: the within-problem pair accuracy (with its n pairs), the same restricted to
   candidates whose answer parses, the AUROC, best-of-N and the top-k vote against a random pick of the same N
   (what a verifier at chance scores), the weighted vote against majority vote, best-of-N against greedy (each a
   paired difference with its 95% bootstrap interval), and the training time; then each variant's mean over the
   seeds. Writes `verifier_sweep.json` and `verifier_sweep.md` to `--output_dir`.
The variant `error_checks` trains nothing: it ranks the candidates by the error taxonomy's model-free checks (fewer
failed checks first: no operand from nowhere, no arithmetic slip, the answer the last result), a measure of how much
the text itself tells right from wrong within a problem, the room a learned verifier has.

A verifier at chance scores a random pick's exact match; the sweep says which settings learn beyond that, and by
how much the answer moves between seeds, before one is adopted in the stage's YAML.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

from modeling_modern_llm.errors import UsageError, run_command
from modeling_modern_llm.evaluation import selectors
from modeling_modern_llm.evaluation.gsm8k_errors import failed_checks
from modeling_modern_llm.evaluation.results import analysed_policy, load_run, problems
from modeling_modern_llm.evaluation.verifier import Verifier
from modeling_modern_llm.files import atomic_write_json, atomic_write_text
from modeling_modern_llm.stages import final_folder, stage_final
from modeling_modern_llm.task_formats import format_verifier_input

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_VERIFIER = "run"  # the variant that is the run's own verifier_final
CHECKS = "error_checks"  # no verifier: the error taxonomy's checks as the score (what the text itself tells apart)
# (treatment, baseline): the comparisons of each row, all paired over the same held-out problems
COMPARISONS = (
    ("verifier_best_of_n", "random_of_n"),
    ("verifier_top_k_vote", "random_of_n"),
    ("verifier_weighted_vote", "majority_vote"),
    ("verifier_best_of_n", "greedy"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run_dir", required=True, help="A pipeline run, evaluated (its results/ folder).")
    parser.add_argument("--seeds", type=int, nargs="*", default=None, help="Seeds of a --seeds run: seed-<s>/.")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="NAME=FLAGS (recipes/verifier.py flags), `run` (the run's own verifier_final) or `error_checks` (no "
        "model: minus the error taxonomy's failed checks). Repeat it.",
    )
    parser.add_argument("--config", default="recipes/configs/cpu-demo/verifier.yaml", help="The verifier's YAML.")
    parser.add_argument("--output_dir", default=None, help="Default: <run_dir>/verifier_sweep.")
    return parser.parse_args(argv)


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """`NAME=FLAGS` as (name, flags); `run` and `error_checks` stand alone."""
    name, _, flags = spec.partition("=")
    name = name.strip()
    if not name or "/" in name or (name in (RUN_VERIFIER, CHECKS) and flags.strip()):
        raise UsageError(
            f"--variant {spec!r}: give NAME=FLAGS (a name without '/'), or `{RUN_VERIFIER}` or `{CHECKS}` alone"
        )
    return name, shlex.split(flags)


def seed_runs(run_dir: str, seeds: list[int] | None) -> list[tuple[int | None, str]]:
    """(seed, folder) of each run to measure: `<run_dir>/seed-<s>` for each seed, else `run_dir` itself."""
    runs = [(None, run_dir)] if not seeds else [(seed, os.path.join(run_dir, f"seed-{seed}")) for seed in seeds]
    for _, folder in runs:
        if not os.path.isdir(os.path.join(folder, "results")):
            raise UsageError(f"{folder}/results not found: evaluate the run first (recipes/pipeline.py)")
    return runs


def held_out_problems(run_folder: str) -> tuple[str, str, list[selectors.Problem]]:
    """The policy the run's verifier was trained on (its path), its sampled GSM8K task and that task's problems."""
    analysed = analysed_policy(load_run(os.path.join(run_folder, "results")))
    if analysed is None:
        raise UsageError(f"{run_folder}/results has no sampled GSM8K task: nothing for a verifier to rank")
    model, task = analysed
    # The path the evaluation was given may be relative to where it ran; the run's own folder is the same model
    policy = next((p for p in (model.entry["path"], stage_final(run_folder, model.stage)) if os.path.isdir(p)), None)
    if policy is None:
        raise UsageError(f"{model.entry['path']} (the policy {run_folder}/results evaluated) not found")
    return os.path.abspath(policy), task, problems(model, task)


def rank_with(verifier_path: str, items: list[selectors.Problem]) -> list[selectors.Problem]:
    """The problems with `verifier_path`'s score on every candidate (the text it trained on and evaluation scores)."""
    verifier = Verifier.from_pretrained(verifier_path, batch_size=64)
    scores = verifier.score([format_verifier_input(p.question, c) for p in items for c in p.candidates])
    scored, start = [], 0
    for p in items:
        scored.append(
            selectors.Problem(p.question, p.answer, p.greedy, p.candidates, scores[start : start + len(p.candidates)])
        )
        start += len(p.candidates)
    return scored


def rank_by_checks(items: list[selectors.Problem]) -> list[selectors.Problem]:
    """The problems with minus each candidate's failed error checks as its score (`gsm8k_errors.failed_checks`)."""
    return [
        selectors.Problem(
            p.question, p.answer, p.greedy, p.candidates, [-failed_checks(c, p.question) for c in p.candidates]
        )
        for p in items
    ]


def measure(items: list[selectors.Problem]) -> dict:
    """The ranking and the paired comparisons of one verifier on one run's problems."""
    ranking = selectors.verifier_ranking(items)
    parsed = selectors.verifier_ranking(items, parsed_only=True)
    row = {
        "pair_accuracy": ranking["pair_accuracy"],
        "n_pairs": ranking["n_pairs"],
        "pair_accuracy_answer_parses": parsed["pair_accuracy"],
        "n_pairs_answer_parses": parsed["n_pairs"],
        "auroc": ranking["auroc"],
        "n_candidates": ranking["n"],
        "n_problems": len(items),
    }
    for treatment, baseline in COMPARISONS:
        row[f"{treatment}-{baseline}"] = selectors.paired_bootstrap(
            selectors.correct(items, baseline), selectors.correct(items, treatment)
        )
    return row


def training_facts(verifier: str | None) -> dict:
    """What the verifier's stage recorded of its training: objective, samples and problems, wall time (sampling
    included)."""
    path = os.path.join(verifier, "training_summary.json") if verifier else ""
    if not os.path.isfile(path):
        return {"objective": None, "train_samples": None, "train_problems": None, "train_seconds": None}
    with open(path) as handle:
        summary = json.load(handle)
    return {
        "objective": summary.get("objective"),
        "train_samples": (summary.get("samples") or {}).get("train"),
        "train_problems": (summary.get("problems") or {}).get("train"),
        "train_seconds": summary.get("wall_time_s"),
    }


def train(config: str, policy: str, output_dir: str, seed: int | None, flags: list[str], log_path: str) -> None:
    """Train one verifier (`recipes/verifier.py`), its output in `log_path`."""
    command = [sys.executable, "recipes/verifier.py", "--config", config, "--model_name_or_path", policy]
    command += (
        ["--output_dir", os.path.abspath(output_dir)] + (["--seed", str(seed)] if seed is not None else []) + flags
    )
    print("$", shlex.join(command), flush=True)
    with open(os.path.abspath(log_path), "w") as log:
        if subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise UsageError(f"`{shlex.join(command)}` failed; its output is in {log_path}")


def main(args: argparse.Namespace) -> dict:
    variants = [parse_variant(spec) for spec in (args.variant or [RUN_VERIFIER])]
    if len({name for name, _ in variants}) != len(variants):
        raise UsageError("--variant: two variants share a name")
    runs = seed_runs(args.run_dir, args.seeds)
    output_dir = args.output_dir or os.path.join(args.run_dir, "verifier_sweep")
    rows, held_out = [], {folder: held_out_problems(folder) for _, folder in runs}
    for name, flags in variants:  # a variant over every seed, then the next
        for seed, folder in runs:
            policy, task, items = held_out[folder]
            if name == CHECKS:
                row = {"variant": name, "flags": "", "seed": seed, "verifier": None, "task": task}
                row.update(measure(rank_by_checks(items)), **training_facts(None))
                rows.append(row)
                print(markdown_row(row), flush=True)
                continue
            if name == RUN_VERIFIER:
                verifier = stage_final(folder, "verifier")
            else:
                trained = os.path.join(output_dir, name, f"seed-{seed}" if seed is not None else "run", "verifier")
                verifier = final_folder(trained)
                if not os.path.isdir(verifier):
                    os.makedirs(os.path.dirname(trained), exist_ok=True)
                    train(args.config, policy, trained, seed, flags, trained + ".log")
            if not os.path.isdir(verifier):
                raise UsageError(f"{verifier} not found: the run has no trained verifier")
            row = {"variant": name, "flags": shlex.join(flags), "seed": seed, "verifier": verifier, "task": task}
            row.update(measure(rank_with(verifier, items)), **training_facts(verifier))
            rows.append(row)
            print(markdown_row(row), flush=True)
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "config": args.config,
        "rows": rows,
        "means": [mean_over_seeds([r for r in rows if r["variant"] == name]) for name, _ in variants],
    }
    os.makedirs(output_dir, exist_ok=True)
    atomic_write_json(os.path.join(output_dir, "verifier_sweep.json"), report)
    table = markdown(report)
    atomic_write_text(os.path.join(output_dir, "verifier_sweep.md"), table)
    print(table)
    return report


def mean_over_seeds(rows: list[dict]) -> dict:
    """A variant's mean (and sd, with two seeds or more) of each number over its seeds, and in how many seeds each
    comparison's interval lies above 0."""

    def spread(values: list[float]) -> dict:
        return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None}

    summary = {"variant": rows[0]["variant"], "flags": rows[0]["flags"], "n_seeds": len(rows)}
    for key in ("pair_accuracy", "pair_accuracy_answer_parses", "auroc"):
        summary[key] = spread([r[key] for r in rows if r[key] is not None])
    for treatment, baseline in COMPARISONS:
        key = f"{treatment}-{baseline}"
        summary[key] = {
            **spread([r[key]["difference"] for r in rows]),
            "seeds_above_0": sum(r[key]["low"] > 0 for r in rows),
        }
    times = [r["train_seconds"] for r in rows if r["train_seconds"] is not None]
    summary["train_seconds"] = spread(times) if times else None
    return summary


def _spread(value: dict | None, scale: float = 1.0, digits: int = 3, sign: str = "") -> str:
    """`mean ± sd` (the mean alone for one seed); "—" when nothing was recorded."""
    if value is None:
        return "—"
    sd = "" if value["sd"] is None else f" ± {scale * value['sd']:.{digits}f}"
    return f"{scale * value['mean']:{sign}.{digits}f}{sd}"


def _difference(value: dict) -> str:
    return f"{100 * value['difference']:+.1f} [{100 * value['low']:+.1f}, {100 * value['high']:+.1f}]"


def markdown_row(row: dict) -> str:
    seconds = "—" if row["train_seconds"] is None else f"{row['train_seconds']:.0f}"
    samples = "—" if row["train_samples"] is None else f"{row['train_samples']} ({row['train_problems']})"
    parsed = row["pair_accuracy_answer_parses"]
    return (
        f"| {row['variant']} | {'—' if row['seed'] is None else row['seed']} "
        f"| {row['pair_accuracy']:.3f} ({row['n_pairs']}) "
        f"| {'—' if parsed is None else f'{parsed:.3f}'} ({row['n_pairs_answer_parses']}) | {row['auroc']:.3f} | "
        + " | ".join(_difference(row[f"{t}-{b}"]) for t, b in COMPARISONS)
        + f" | {samples} | {seconds} |"
    )


def variant_legends(means: list[dict]) -> list[tuple[str, str]]:
    """(variant, what it is) in the order the variants ran."""
    legends = {
        RUN_VERIFIER: "the run's own verifier, as the pipeline trained it",
        CHECKS: "no model, minus the error taxonomy's failed checks (what the text itself tells apart)",
    }
    return [(s["variant"], legends.get(s["variant"], f"the stage's YAML with `{s['flags']}`")) for s in means]


def markdown(report: dict) -> str:
    rows = report["rows"]
    header = ["variant", "seed", "pair accuracy (pairs)", "answer parses (pairs)", "AUROC"]
    header += ["best-of-N − random pick", "top-k vote − random pick", "weighted − majority", "best-of-N − greedy"]
    header += ["training samples (problems)", "verifier stage s"]
    lines = [
        f"Verifiers ranking the same held-out candidates: {rows[0]['n_problems']} problems x "
        f"{rows[0]['n_candidates'] // rows[0]['n_problems']} samples of `{rows[0]['task']}` per seed; "
        "differences in exact-match points, paired 95% bootstrap intervals "
        f"(`{report['command']}`)",
        "",
        "; ".join(f"`{name}`: {legend}" for name, legend in variant_legends(report["means"])) + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *[markdown_row(row) for row in rows],
    ]
    if any(summary["n_seeds"] > 1 for summary in report["means"]):
        comparisons = [("verifier_best_of_n", "random_of_n"), ("verifier_top_k_vote", "random_of_n")]
        comparisons += [("verifier_weighted_vote", "majority_vote")]
        lines += [
            "",
            "Mean ± sd over seeds; a difference's count is the seeds whose interval lies above 0:",
            "",
            "| variant | seeds | pair accuracy | AUROC | best-of-N − random pick | top-k vote − random pick "
            "| weighted − majority | stage s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in report["means"]:
            cells = [_spread(s["pair_accuracy"]), _spread(s["auroc"])]
            for treatment, baseline in comparisons:
                value = s[f"{treatment}-{baseline}"]
                cells.append(f"{_spread(value, 100, 1, '+')} ({value['seeds_above_0']})")
            cells.append(_spread(s["train_seconds"], digits=0))
            lines.append(f"| {s['variant']} | {s['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_command(main, parse_args())
