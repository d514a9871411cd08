"""Run pretrain -> SFT -> DPO -> verifier -> GRPO, then the evaluation and the report, resuming what was interrupted.

    python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml
    python recipes/pipeline.py --config recipes/configs/gpu-full/pipeline.yaml --validate_only   # seconds, anywhere
    python recipes/pipeline.py --config recipes/configs/gpu-full/pipeline.yaml --rehearse        # minutes, on a CPU

First every stage's config is checked (`modeling_modern_llm.training.validation`), before any model, tokenizer or
dataset loads: a bad combination anywhere in the run is one line per problem, in seconds. Then each stage runs as
its own process (`launcher` + `recipes/<stage>.py --config <stage config>`), starting from the previous stage's
`<stage>_final` (GRPO also gets the run's verifier, for its `verifier` reward), with `--output_dir
<runs_dir>/<run>/<stage>`. A stage whose `<stage>_final/` is complete is skipped;
an interrupted one resumes from its last valid checkpoint. On SIGTERM/SIGUSR1 (SLURM before the time limit) the
running stage saves a checkpoint and stops. Then `eval/evaluate_tasks.py` and `report/build_report.py` run and, with
`push_to_hub: true` and `hub_model_id: <user>/<prefix>`, `recipes/push_to_hub.py` pushes each stage to
`<prefix>-<stage>` (results on the card, the report under `report/`). Per-step wall times, commands and statuses go
to `<runs_dir>/<run>/pipeline_summary.json`.

`--seeds 0 1 2` runs the whole pipeline once per training seed into `<runs_dir>/<run>/seed-<s>/`, then writes
`seed_summary.json` (every reported number's mean, sd and t interval across seeds) and the report across seeds
(`modeling_modern_llm.training.seeds`).

`--rehearse` runs the same pipeline shrunk (`modeling_modern_llm.training.rehearsal`) into
`<runs_dir>/<run>-rehearsal/`, interrupting and resuming every stage once: what to run before `sbatch`. A
rehearsal never pushes to the Hub.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from trl import TrlParser

from modeling_modern_llm.cli import (
    DIE_WITH_PARENT_ENV,
    InputError,
    UsageError,
    atomic_write_json,
    die_with_parent,
    run_command,
)
from modeling_modern_llm.data import REGISTRY
from modeling_modern_llm.data.registry import hub_offline, hub_reachable
from modeling_modern_llm.stages import POLICY_STAGES, STAGE_NAMES, get_stage, stage_final
from modeling_modern_llm.training import (
    STOPPED_EXIT_CODE,
    AccelerateSetup,
    final_model_problem,
    parse_stage_args,
    stage_problems,
)
from modeling_modern_llm.training.callbacks import STOP_AT_STEP_ENV
from modeling_modern_llm.training.hub import push_problems, repo_id_problem
from modeling_modern_llm.training.rehearsal import (
    STOP_STEP,
    stage_overrides,
    write_standins,
)
from modeling_modern_llm.training.seeds import run_seeds
from modeling_modern_llm.training.stage import (
    ACCELERATE_CONFIG_ENV,
    LAUNCHER_ENV,
    REHEARSAL_ENV,
)
from modeling_modern_llm.training.problems import (
    Problem,
    merge_stages,
    problems_error,
    problems_of,
    usage_problem,
)
from modeling_modern_llm.training.validation import (
    accelerate_config_of,
    architecture_of,
    evaluation_problems,
    read_config,
)

logger = logging.getLogger("pipeline")
STAGES = STAGE_NAMES  # the one stage table: modeling_modern_llm/stages.py
RECIPES = os.path.relpath(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class PipelineArguments:
    run_name: str = field(metadata={"help": "Name of the run: outputs go to <runs_dir>/<run_name>/."})
    stage_configs: dict = field(metadata={"help": "Stage name -> its YAML, e.g. {pretrain: recipes/configs/...}."})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={"help": "Stages to run, in order."})
    runs_dir: str = field(default="experiments/runs")
    launcher: str | None = field(
        default=None,
        metadata={
            "help": "How a recipe is started: unset (or 'python') runs it with the interpreter running this pipeline; "
            "'accelerate launch --config_file accelerate_configs/<x>.yaml' runs it under accelerate, again "
            "through this interpreter (so an unactivated virtual environment works)."
        },
    )
    verifier_policy: str = field(default="dpo", metadata={"help": "Stage whose final model the verifier samples from."})
    stage_args: dict | None = field(
        default=None,
        metadata={
            "help": "Stage name -> extra command-line overrides for it (a string), e.g. {pretrain: '--max_steps 10'}."
        },
    )
    local_data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Read every Hub dataset of every stage and of the evaluation from DIR/<registry name>/<split>.jsonl|"
            ".parquet (offline clusters; docs/DATA.md)."
        },
    )
    eval_script: str = field(default="eval/evaluate_tasks.py")
    eval_args: str = field(default="--embedded --include-baselines", metadata={"help": "Extra evaluation flags."})
    results_dir: str = field(default="experiments/results")
    report_script: str = field(default="report/build_report.py")
    report_output: str = field(default="report/final_report.md")
    skip_eval: bool = field(default=False, metadata={"help": "Stop after training."})
    validate_only: bool = field(default=False, metadata={"help": "Check every stage's config, then stop."})
    rehearse: bool = field(
        default=False,
        metadata={
            "help": "Run the whole pipeline shrunk, on this machine, into <runs_dir>/<run_name>-rehearsal/ (minutes on "
            "a CPU): every stage interrupted once and resumed, then the evaluation and the report."
        },
    )
    rehearse_eval_args: str = field(
        default="--limit 4 --n_samples 2 --max_gen_toks 16",
        metadata={"help": "Evaluation flags appended in a rehearsal (tiny limits)."},
    )
    stop_timeout_s: float = field(
        default=300.0,
        metadata={"help": "On SIGTERM, how long a stage may take to save its checkpoint before it is killed."},
    )
    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "After the report, push every stage's <stage>_final to <hub_model_id>-<stage> (its evaluation "
            "results on the card, the report under report/), with recipes/push_to_hub.py. Never in a rehearsal."
        },
    )
    hub_model_id: str | None = field(
        default=None,
        metadata={"help": "<user or organization>/<prefix> of the pushed repos: <prefix>-pretrain, <prefix>-sft, ..."},
    )
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the pushed repos private."})
    seeds: list[int] | None = field(
        default=None,
        metadata={
            "help": "Run the whole pipeline once per training seed (every stage's --seed and the evaluation's) into "
            "<runs_dir>/<run_name>/seed-<s>/, then write seed_summary.json and the report across seeds; the "
            "embedded corpus stays the same. Unset: one run with the configs' seeds."
        },
    )

    def __post_init__(self):
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise UsageError(f"stages: unknown stage(s) {unknown}; choose from {list(STAGES)}")
        missing = [stage for stage in self.stages if stage not in self.stage_configs]
        if missing:
            raise UsageError(f"stage_configs: no config for stage(s) {missing}")
        for stage in self.stages:
            if not os.path.isfile(self.stage_configs[stage]):
                raise UsageError(f"stage_configs.{stage}: {self.stage_configs[stage]} does not exist")
        if self.verifier_policy not in POLICY_STAGES:
            raise UsageError(f"verifier_policy: {self.verifier_policy!r} is not one of {', '.join(POLICY_STAGES)}")
        if self.seeds is not None and (len(set(self.seeds)) != len(self.seeds) or min(self.seeds, default=-1) < 0):
            raise UsageError(f"seeds: {self.seeds} must be one or more different non-negative integers")
        if self.seeds and self.push_to_hub:
            raise UsageError(
                "seeds: a run of several seeds pushes nothing (push_to_hub: true); push one seed's "
                "stages with recipes/push_to_hub.py <runs_dir>/<run_name>/seed-<s>/<stage>_final <repo>"
            )
        if self.rehearse:
            self.run_name += "-rehearsal"  # never mixed with a real run's outputs
            rehearsal_dir = os.path.join(self.runs_dir, self.run_name)
            self.results_dir = os.path.join(rehearsal_dir, "results")
            self.report_output = os.path.join(rehearsal_dir, "final_report.md")


def launcher_command(launcher: str | None) -> list[str]:
    """The launcher as an argv, bound to this interpreter: 'python' and 'accelerate launch' would otherwise come from
    PATH, and an unactivated virtual environment would fail with `No module named transformers`."""
    words = shlex.split(launcher or "python")
    if os.path.basename(words[0]).startswith("python"):
        return [sys.executable, *words[1:]]
    if words[:2] == ["accelerate", "launch"]:
        return [sys.executable, "-m", "accelerate.commands.launch", *words[2:]]
    return words


def stage_command(args: PipelineArguments, stage: str, run_dir: str, launcher: list[str] | None = None) -> list[str]:
    previous = args.verifier_policy if stage == "verifier" else get_stage(stage).previous
    recipe_args = [
        "--config",
        args.stage_configs[stage],
        "--output_dir",
        os.path.join(run_dir, stage),
        "--run_name",
        f"{args.run_name}-{stage}",
    ]
    if previous:
        recipe_args += ["--model_name_or_path", stage_final(run_dir, previous)]
    if stage == "grpo":  # used by its `verifier` reward, if the config names it
        recipe_args += ["--reward_model_name_or_path", stage_final(run_dir, "verifier")]
    if args.local_data_dir:
        recipe_args += ["--local_data_dir", args.local_data_dir]
    recipe_args += shlex.split((args.stage_args or {}).get(stage, ""))
    launcher = launcher_command(args.launcher) if launcher is None else launcher
    return [*launcher, os.path.join(RECIPES, f"{stage}.py"), *recipe_args]


def recipe_argv(command: list[str], stage: str) -> list[str]:
    """What the recipe itself receives: the words after `recipes/<stage>.py`."""
    return command[command.index(os.path.join(RECIPES, f"{stage}.py")) + 1 :]


def validate_run(args: PipelineArguments, run_dir: str, accelerate: AccelerateSetup | None):
    """Every stage's config parsed and checked before anything loads. Returns each stage's recipe argv (rehearsal
    overrides appended) and the Hub datasets the stages read from the Hub; exits with one line per problem if any."""
    problems, argvs, datasets, notes = [], {}, set(), []
    architecture = None  # the pretrain stage's model, carried down the chain (later stages' inputs do not exist yet)
    for stage in args.stages:
        argv = recipe_argv(stage_command(args, stage, run_dir, launcher=[]), stage)
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


def prepare_rehearsal_data(
    args: PipelineArguments, argvs: dict[str, list[str]], datasets: set[str], run_dir: str
) -> None:
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


def run_step(
    name: str,
    command: list[str],
    summary: dict,
    summary_path: str,
    env: dict | None = None,
    stop_timeout_s: float = 300.0,
    expect: int = 0,
) -> int:
    """Run one step as a subprocess in its own process group; record its command, status and wall time (summed over
    attempts). On SIGTERM/Ctrl-C the whole group gets SIGTERM (accelerate's launcher would not pass it on) and has
    `stop_timeout_s` to save a checkpoint. Stops the pipeline unless the exit code is `expect`."""
    logger.info("[%s] %s", name, shlex.join(command))
    start, returncode = time.time(), None
    # Its own process group (so a stop reaches the launcher's workers too), and tied to this process: if the pipeline
    # is killed outright (SIGKILL), the kernel sends the step SIGTERM instead of leaving it running as an orphan
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {}), DIE_WITH_PARENT_ENV: "1"},
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        returncode = process.wait()
    finally:  # also when the pipeline itself is stopped (SIGTERM from SLURM, Ctrl-C): stop the stage, record it
        if process.poll() is None or _group_alive(process.pid):
            _stop_group(process, stop_timeout_s)
        earlier = summary["steps"].get(name, {})
        earlier = earlier if earlier.get("status") != "ok" else {}  # an unfinished earlier attempt adds its time
        status = {None: "interrupted", 0: "ok", STOPPED_EXIT_CODE: "stopped (checkpoint saved)"}.get(
            returncode, f"failed (exit code {returncode})"
        )
        summary["steps"][name] = {
            "command": shlex.join(command),
            "status": status,
            "wall_time_s": round(earlier.get("wall_time_s", 0) + time.time() - start, 1),
            "attempts": earlier.get("attempts", 0) + 1,
        }
        write_summary(summary, summary_path)
    if returncode != expect:
        sys.exit(f"pipeline: step {name!r} {summary['steps'][name]['status']}; rerun the same command to resume it.")
    return returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stop_group(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM to the step's whole process group, then wait for all of it (a launcher may exit before its child
    finished saving); SIGKILL what is left after the timeout."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout_s
    while _group_alive(process.pid) and time.time() < deadline:
        process.poll()
        time.sleep(0.2)
    if _group_alive(process.pid):
        logger.warning(
            "step did not stop within %.0f s: killing it (it resumes from its last valid checkpoint)", timeout_s
        )
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def write_summary(summary: dict, path: str) -> None:
    summary["total_wall_time_s"] = round(sum(s.get("wall_time_s", 0) for s in summary["steps"].values()), 1)
    atomic_write_json(path, summary)


def _stop_on_signal(signum, frame):
    sys.exit(f"pipeline: stopped by signal {signum}; rerun the same command to resume.")


def main(args: PipelineArguments) -> None:
    logging.basicConfig(format="%(asctime)s - %(name)s - %(message)s", level=logging.INFO)
    for signum in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, _stop_on_signal)
    if args.seeds:
        return run_seeds(args, main)
    run_dir = os.path.join(args.runs_dir, args.run_name)
    accelerate_path = accelerate_config_of(args.launcher or "")
    accelerate = AccelerateSetup.from_file(accelerate_path) if accelerate_path else None
    argvs, datasets = validate_run(args, run_dir, accelerate)
    logger.info("validated %d stage config(s): %s", len(args.stages), ", ".join(args.stages))
    if args.validate_only:
        return
    os.makedirs(run_dir, exist_ok=True)
    launcher = launcher_command(args.launcher)
    env = {LAUNCHER_ENV: shlex.join(launcher), **({ACCELERATE_CONFIG_ENV: accelerate_path} if accelerate_path else {})}
    if args.rehearse:
        if launcher[1:3] == ["-m", "accelerate.commands.launch"]:
            logger.info(
                "[rehearsal] launcher %s -> this interpreter, one process (%s was validated)",
                args.launcher,
                accelerate_path,
            )
        launcher, env = [sys.executable], {LAUNCHER_ENV: sys.executable, REHEARSAL_ENV: "1"}
        prepare_rehearsal_data(args, argvs, datasets, run_dir)
    summary_path = os.path.join(run_dir, "pipeline_summary.json")
    summary = {
        "run_name": args.run_name,
        "command": shlex.join([sys.executable, *sys.argv]),
        "python": sys.executable,
        "rehearsal": args.rehearse,
        "steps": {},
    }
    if os.path.isfile(summary_path):  # keep the times of stages finished by an earlier (interrupted) invocation
        with open(summary_path) as handle:
            summary["steps"] = json.load(handle).get("steps", {})

    for stage in args.stages:
        problem = final_model_problem(stage_final(run_dir, stage), stage)
        if problem is None:
            logger.info("[%s] finished already (%s_final is complete): skipped", stage, stage)
            continue
        command = [*launcher, os.path.join(RECIPES, f"{stage}.py"), *argvs[stage]]
        if args.rehearse and not os.path.isdir(os.path.join(run_dir, stage)):
            # Interrupted once by a real SIGTERM at step STOP_STEP, then rerun: it must resume, not restart.
            run_step(
                stage,
                command,
                summary,
                summary_path,
                {**env, STOP_AT_STEP_ENV: str(STOP_STEP)},
                args.stop_timeout_s,
                expect=STOPPED_EXIT_CODE,
            )
        run_step(stage, command, summary, summary_path, env, args.stop_timeout_s)

    finals = {stage: stage_final(run_dir, stage) for stage in STAGES}
    if not args.skip_eval:
        evaluate_and_report(args, run_dir, finals, summary, summary_path)
    if args.push_to_hub:
        push_stages(args, finals, summary, summary_path)
    if args.rehearse:
        logger.info(
            "[rehearsal] passed: %s",
            ", ".join(
                f"{name} {step['wall_time_s']:.0f} s"
                for name, step in summary["steps"].items()
                if "wall_time_s" in step
            ),
        )


def evaluate_and_report(
    args: PipelineArguments, run_dir: str, finals: dict[str, str], summary: dict, summary_path: str
) -> None:
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


def push_stages(args: PipelineArguments, finals: dict[str, str], summary: dict, summary_path: str) -> None:
    """Each trained stage to ``<hub_model_id>-<stage>`` with its results and the report (a step each, recorded);
    a rehearsal pushes nothing and says so."""
    report_ok = summary["steps"].get("report", {}).get("status") == "ok"
    for stage in args.stages:
        name, repo_id = f"push-{stage}", f"{args.hub_model_id}-{stage}"
        command = [
            sys.executable,
            os.path.join(RECIPES, "push_to_hub.py"),
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


def parse_pipeline_args(argv: list[str]) -> PipelineArguments:
    if "--config" in argv:
        read_config(argv[argv.index("--config") + 1])  # a missing or malformed YAML is one line
    try:
        (args,) = TrlParser((PipelineArguments,)).parse_args_and_config(argv)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return args


if __name__ == "__main__":
    run_command(lambda: main(parse_pipeline_args(sys.argv[1:])))
