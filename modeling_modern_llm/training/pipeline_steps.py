"""The steps of `recipes/pipeline.py` around the training: what each stage is given, every stage's config checked
before anything loads, a rehearsal's data, and the evaluation, report and pushes after the training.

Each function takes the pipeline's arguments (`PipelineArguments` of `recipes/pipeline.py`) as `args`; the steps
that run a process go through `supervision.run_step`, which records them in `<run>/pipeline_summary.json`.

- `recipe_argv`: a stage's command line, chained to the previous stage's `<stage>_final`;
- `validate_run`: every stage's config parsed and checked (`training.validation`), one line per problem;
- `prepare_rehearsal_data`: stand-ins for the Hub datasets when a rehearsal cannot reach the Hub;
- `evaluate_and_report`: `eval/evaluate_tasks.py` on the finished models, then `report/build_report.py`;
- `push_stages`: each stage's final folder to `<hub_model_id>-<stage>` with `recipes/push_to_hub.py`.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys

from ..errors import InputError
from ..data import REGISTRY
from ..data.registry import hub_offline, hub_reachable
from ..stages import POLICY_STAGES, get_stage, stage_final
from .checkpoints import final_model_problem
from .hub import push_problems, repo_id_problem
from .problems import Problem, merge_stages, problems_error, problems_of, usage_problem
from .rehearsal import stage_overrides, write_standins
from .supervision import run_step, write_summary
from .validation import (
    AccelerateSetup,
    architecture_of,
    evaluation_problems,
    parse_stage_args,
    stage_problems,
)

logger = logging.getLogger("pipeline")


def recipe_argv(args, stage: str, run_dir: str) -> list[str]:
    """What `recipes/<stage>.py` receives: its config and `<run_dir>/<stage>` output, the previous stage's final model
    (GRPO also the run's verifier, for its `verifier` reward), the local data and the stage's `stage_args`."""
    previous = args.verifier_policy if stage == "verifier" else get_stage(stage).previous
    argv = [
        "--config",
        args.stage_configs[stage],
        "--output_dir",
        os.path.join(run_dir, stage),
        "--run_name",
        f"{args.run_name}-{stage}",
    ]
    if previous:
        argv += ["--model_name_or_path", stage_final(run_dir, previous)]
    if stage == "grpo":  # used by its `verifier` reward, if the config names it
        argv += ["--reward_model_name_or_path", stage_final(run_dir, "verifier")]
    if args.local_data_dir:
        argv += ["--local_data_dir", args.local_data_dir]
    return argv + shlex.split((args.stage_args or {}).get(stage, ""))


def validate_run(args, run_dir: str, accelerate: AccelerateSetup | None):
    """Every stage's config parsed and checked before anything loads. Returns each stage's recipe argv (rehearsal
    overrides appended) and the Hub datasets the stages read from the Hub; exits with one line per problem if any."""
    problems, argvs, datasets, notes = [], {}, set(), []
    architecture = None  # the pretrain stage's model, carried down the chain (later stages' inputs do not exist yet)
    for stage in args.stages:
        argv = recipe_argv(args, stage, run_dir)
        try:
            script, training, model = parse_stage_args(stage, argv, for_validation=True)
        except InputError as error:
            problems += [problem.at(stage) for problem in problems_of(error)]
            continue
        if stage == "pretrain" or architecture is None:
            architecture = architecture_of(model)
        found = stage_problems(
            stage,
            script,
            training,
            model,
            architecture=architecture,
            accelerate=accelerate,
            check_inputs=stage == args.stages[0],
            rehearsal=args.rehearse,
            finished_ok=True,
        )
        problems += found
        if args.rehearse:
            overrides, said = stage_overrides(stage, training, model, architecture)
            argv, notes = argv + overrides, notes + said
        argvs[stage] = argv
        if not script.local_data_dir:  # the Hub datasets a stage reads from the Hub (or its cache)
            datasets.update(name for name, _ in script.mixture() if not REGISTRY[name].embedded)
        if args.push_to_hub and training.push_to_hub:
            problems.append(
                Problem(
                    stage=stage,
                    field="push_to_hub",
                    message="its config pushes it (push_to_hub: true) and the pipeline pushes every stage "
                    "(push_to_hub: true in the pipeline config); keep one",
                )
            )
    if not args.skip_eval:
        problems += evaluation_problems()
    if args.push_to_hub:
        problem = repo_id_problem(args.hub_model_id)
        problems += [usage_problem(f"push_to_hub: {problem}", "hub_model_id").at("pipeline")] if problem else []
        problems += [] if args.rehearse else [usage_problem(line).at("pipeline") for line in push_problems()]
    if problems:
        merged = merge_stages(problems)  # one line per problem, naming every stage it concerns
        error = problems_error(merged)
        summary = type(error)(
            f"{len(merged)} problem(s) in {', '.join(args.stages)} before anything was loaded:\n{error}"
        )
        summary.problems = error.problems
        raise summary
    for note in notes:
        logger.info("[rehearsal] %s", note)
    return argvs, datasets


def prepare_rehearsal_data(args, argvs: dict[str, list[str]], datasets: set[str], run_dir: str) -> None:
    """Stand-ins (into ``args.local_data_dir``) for the Hub datasets the stages would read from the Hub, when it
    cannot be reached."""
    hub_names = sorted(datasets)
    if not hub_names:
        return
    if not hub_offline() and hub_reachable():
        logger.info("[rehearsal] reading the first rows of %s from the Hub", ", ".join(hub_names))
        return
    args.local_data_dir = os.path.join(run_dir, "standins")
    write_standins(args.local_data_dir, [name for name in REGISTRY if not REGISTRY[name].embedded])
    logger.info(
        "[rehearsal] the Hub cannot be reached: %s read from stand-ins in %s (embedded-corpus rows in each "
        "dataset's Hub schema, through the same normalisers)",
        ", ".join(hub_names),
        args.local_data_dir,
    )
    for stage in argvs:
        argvs[stage] += ["--local_data_dir", args.local_data_dir]


def evaluate_and_report(args, run_dir: str, finals: dict[str, str], summary: dict, summary_path: str) -> None:
    """The evaluation of the policies this run finished (and its verifier, if finished), then the report; a step
    whose script is missing, or a report without an evaluation, is recorded as skipped."""
    eval_args = args.eval_args + (f" {args.rehearse_eval_args}" if args.rehearse else "")
    if args.local_data_dir:
        eval_args += f" --local_dir {args.local_data_dir}"
    # The policies this run trained (or finished earlier), and its verifier if it has one
    policies = [stage for stage in POLICY_STAGES if final_model_problem(finals[stage], stage) is None]
    verifier = ["--verifier", finals["verifier"]] if final_model_problem(finals["verifier"], "verifier") is None else []
    # --overwrite: the pipeline owns its results_dir; the evaluation swaps the complete new results in at the end
    evaluation = [
        sys.executable,
        args.eval_script,
        "--model",
        *(finals[stage] for stage in policies),
        "--stages",
        *policies,
        *verifier,
        "--output_dir",
        args.results_dir,
        "--overwrite",
        *shlex.split(eval_args),
    ]
    report = [
        sys.executable,
        args.report_script,
        "--results_dir",
        args.results_dir,
        "--run_dir",
        run_dir,
        "--output",
        args.report_output,
        "--update_model_cards",
    ]
    for name, command, script in (("evaluation", evaluation, args.eval_script), ("report", report, args.report_script)):
        missing = f"{script} is missing" if not os.path.isfile(script) else None
        if name == "report" and summary["steps"]["evaluation"]["status"] != "ok":
            missing = "the evaluation did not run, so there are no results to report"
        if missing:
            logger.warning("[%s] SKIPPED: %s.", name, missing)
            summary["steps"][name] = {"command": shlex.join(command), "status": f"skipped: {missing}"}
            write_summary(summary, summary_path)
            continue
        run_step(name, command, summary, summary_path, stop_timeout_s=args.stop_timeout_s)


def push_stages(args, finals: dict[str, str], summary: dict, summary_path: str, push_script: str) -> None:
    """Each trained stage to ``<hub_model_id>-<stage>`` with its results and the report (a step each, recorded, run
    as ``push_script``: `recipes/push_to_hub.py`); a rehearsal pushes nothing and says so."""
    report_ok = summary["steps"].get("report", {}).get("status") == "ok"
    for stage in args.stages:
        name, repo_id = f"push-{stage}", f"{args.hub_model_id}-{stage}"
        command = [
            sys.executable,
            push_script,
            finals[stage],
            repo_id,
            "--results_dir",
            args.results_dir,
            *(["--private"] if args.hub_private_repo else []),
            *(["--report", args.report_output] if report_ok else []),
        ]
        if args.rehearse:
            logger.info("[rehearsal] [%s] SKIPPED: a rehearsal never pushes to the Hub (%s)", name, repo_id)
            summary["steps"][name] = {"command": shlex.join(command), "status": "skipped: rehearsal"}
            write_summary(summary, summary_path)
            continue
        run_step(name, command, summary, summary_path, stop_timeout_s=args.stop_timeout_s)


__all__ = ["evaluate_and_report", "prepare_rehearsal_data", "push_stages", "recipe_argv", "validate_run"]
