"""Run the whole pipeline once per training seed, then summarise every reported number across the seeds.

`python recipes/pipeline.py --config <scale>/pipeline.yaml --seeds 0 1 2` trains and evaluates each seed in its own
run folder, `<runs_dir>/<run_name>/seed-<s>/` (stages, `results/`, its own `final_report.md` and
`pipeline_summary.json`), with the seed as every stage's training `--seed` (initialisation, data order, the
verifier's sampling) and as the evaluation's `--seed` (sampling, few-shot order). The embedded corpus and its
held-out items stay the same (`embedded_corpus_seed`, `--corpus_seed` are not touched), so the seeds are compared
on the same problems. A seed whose stages, evaluation and report finished is skipped on a rerun, as a finished
stage is. Then `seed_summary.json` (`modeling_modern_llm.evaluation.seed_summary`) and the report across seeds go
into `<runs_dir>/<run_name>/`, beside a `pipeline_summary.json` of the seeds' steps.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable

from modeling_modern_llm.files import atomic_write_json
from modeling_modern_llm.stages import stage_final
from modeling_modern_llm.evaluation.seed_summary import SUMMARY_FILE, write_seed_summary

from .checkpoints import final_model_problem

logger = logging.getLogger("pipeline")


def seed_folder(seed: int) -> str:
    return f"seed-{seed}"


def seed_arguments(args, seed: int):
    """A copy of the pipeline's arguments (a `PipelineArguments`) that runs one seed in `<run>/seed-<s>/`."""
    run_dir = os.path.join(args.runs_dir, args.run_name)
    one = copy.copy(args)  # not dataclasses.replace: __post_init__ would rename a rehearsal a second time
    one.seeds, one.runs_dir, one.run_name = None, run_dir, seed_folder(seed)
    one.results_dir = os.path.join(run_dir, one.run_name, "results")
    one.report_output = os.path.join(run_dir, one.run_name, "final_report.md")
    one.stage_args = {stage: f"{(args.stage_args or {}).get(stage, '')} --seed {seed}".strip() for stage in args.stages}
    one.eval_args = f"{args.eval_args} --seed {seed}"
    return one


def seed_finished(args) -> bool:
    """Whether the seed run of `args` (from `seed_arguments`) has every stage's final model, an evaluation and a
    report: its `pipeline_summary.json` records each of those steps as done."""
    run_dir = os.path.join(args.runs_dir, args.run_name)
    if any(final_model_problem(stage_final(run_dir, stage), stage) for stage in args.stages):
        return False
    if args.skip_eval:
        return True
    try:
        with open(os.path.join(run_dir, "pipeline_summary.json")) as handle:
            steps = json.load(handle)["steps"]
    except (OSError, ValueError, KeyError):
        return False
    return all(steps.get(step, {}).get("status") == "ok" for step in ("evaluation", "report")) and os.path.isfile(
        os.path.join(args.results_dir, "run_index.json")
    )


def run_seeds(args, run_pipeline: Callable) -> None:
    """`run_pipeline(seed_arguments(args, s))` for each seed not finished yet; then, unless `args.skip_eval`,
    `seed_summary.json` and the report across seeds (`args.report_script --seed_summary`, into `args.report_output`),
    each recorded in `<run>/pipeline_summary.json` with its command, status and wall time."""
    if args.validate_only:  # the seeds differ only in their seed: one validation speaks for all
        return run_pipeline(seed_arguments(args, args.seeds[0]))
    run_dir = os.path.join(args.runs_dir, args.run_name)
    os.makedirs(run_dir, exist_ok=True)
    summary_path = os.path.join(run_dir, "pipeline_summary.json")
    summary = {
        "run_name": args.run_name,
        "command": shlex.join([sys.executable, *sys.argv]),
        "python": sys.executable,
        "rehearsal": args.rehearse,
        "seeds": list(args.seeds),
        "steps": {},
    }
    per_seed = {seed: seed_arguments(args, seed) for seed in args.seeds}
    for seed, one in per_seed.items():
        name = seed_folder(seed)
        if seed_finished(one):
            logger.info("[%s] finished already (stages, evaluation and report): skipped", name)
        else:
            logger.info("[%s] the whole pipeline with seed %d into %s", name, seed, os.path.join(run_dir, name))
            run_pipeline(one)
        summary["steps"][name] = _seed_step(os.path.join(run_dir, name))
        _write(summary, summary_path)
    if args.skip_eval:
        logger.info("[seed-summary] SKIPPED: --skip_eval, so there are no results to summarise")
        return
    start = time.time()
    seed_summary_path = os.path.join(run_dir, SUMMARY_FILE)
    write_seed_summary(
        seed_summary_path, list(args.seeds), [one.results_dir for one in per_seed.values()], summary["command"]
    )
    summary["steps"]["seed-summary"] = {
        "status": "ok",
        "wall_time_s": round(time.time() - start, 1),
        "output": seed_summary_path,
    }
    logger.info("[seed-summary] wrote %s", seed_summary_path)
    first = per_seed[args.seeds[0]]
    report = [
        sys.executable,
        args.report_script,
        "--results_dir",
        first.results_dir,
        "--run_dir",
        os.path.join(first.runs_dir, first.run_name),
        "--seed_summary",
        seed_summary_path,
        "--output",
        args.report_output,
    ]
    logger.info("[report] %s", shlex.join(report))
    start = time.time()
    returncode = subprocess.run(report).returncode
    summary["steps"]["report"] = {
        "command": shlex.join(report),
        "wall_time_s": round(time.time() - start, 1),
        "status": "ok" if returncode == 0 else f"failed (exit code {returncode})",
    }
    _write(summary, summary_path)
    if returncode != 0:
        sys.exit(
            f"pipeline: the report across seeds failed (exit code {returncode}); rerun the same command: "
            "finished seeds are skipped."
        )


def _seed_step(seed_dir: str) -> dict:
    """A seed's line in the top-level summary: its own summary's status and wall time."""
    with open(os.path.join(seed_dir, "pipeline_summary.json")) as handle:
        steps = json.load(handle)
    failed = [
        name
        for name, step in steps["steps"].items()
        if not (step["status"] == "ok" or step["status"].startswith("skipped"))
    ]
    return {
        "status": "ok" if not failed else f"not finished: {', '.join(failed)}",
        "wall_time_s": steps.get("total_wall_time_s"),
        "summary": os.path.join(seed_dir, "pipeline_summary.json"),
    }


def _write(summary: dict, path: str) -> None:
    summary["total_wall_time_s"] = round(sum(s.get("wall_time_s") or 0 for s in summary["steps"].values()), 1)
    atomic_write_json(path, summary)


__all__ = ["run_seeds", "seed_arguments", "seed_finished", "seed_folder"]
