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
to `<runs_dir>/<run>/pipeline_summary.json`. This script holds the arguments and the order of the steps; the steps
themselves are library code: launching and stopping each process and that record in
`modeling_modern_llm.training.supervision`, the checks and the steps around the training in
`modeling_modern_llm.training.pipeline_steps`.

`--seeds 0 1 2` runs the whole pipeline once per training seed into `<runs_dir>/<run>/seed-<s>/`, then writes
`seed_summary.json` (every reported number's mean, sd and t interval across seeds) and the report across seeds
(`modeling_modern_llm.training.seeds`).

`--rehearse` runs the same pipeline shrunk (`modeling_modern_llm.training.rehearsal`) into
`<runs_dir>/<run>-rehearsal/`, interrupting and resuming every stage once: what to run before `sbatch`. A
rehearsal never pushes to the Hub.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

from trl import TrlParser

from modeling_modern_llm.errors import UsageError, run_command
from modeling_modern_llm.stages import POLICY_STAGES, STAGE_NAMES, stage_final
from modeling_modern_llm.training import STOPPED_EXIT_CODE, AccelerateSetup, final_model_problem
from modeling_modern_llm.training.callbacks import STOP_AT_STEP_ENV
from modeling_modern_llm.training.pipeline_steps import (
    evaluate_and_report,
    prepare_rehearsal_data,
    push_stages,
    validate_run,
)
from modeling_modern_llm.training.rehearsal import STOP_STEP
from modeling_modern_llm.training.seeds import run_seeds
from modeling_modern_llm.training.supervision import exit_on_stop_signals, run_step, stage_launcher, start_summary
from modeling_modern_llm.training.validation import accelerate_config_of, read_config

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


def main(args: PipelineArguments) -> None:
    logging.basicConfig(format="%(asctime)s - %(name)s - %(message)s", level=logging.INFO)
    exit_on_stop_signals()  # SIGTERM/SIGUSR1: the running step saves a checkpoint and stops, then the pipeline exits
    if args.seeds:
        return run_seeds(args, main)
    run_dir = os.path.join(args.runs_dir, args.run_name)

    # 1. Every stage's config checked before anything loads (one line per problem)
    accelerate_path = accelerate_config_of(args.launcher or "")
    accelerate = AccelerateSetup.from_file(accelerate_path) if accelerate_path else None
    argvs, datasets = validate_run(args, run_dir, accelerate)
    logger.info("validated %d stage config(s): %s", len(args.stages), ", ".join(args.stages))
    if args.validate_only:
        return
    os.makedirs(run_dir, exist_ok=True)
    launcher, env = stage_launcher(args.launcher, accelerate_path, rehearse=args.rehearse)
    if args.rehearse:
        prepare_rehearsal_data(args, argvs, datasets, run_dir)
    summary_path = os.path.join(run_dir, "pipeline_summary.json")
    summary = start_summary(summary_path, args.run_name, args.rehearse)

    # 2. Each stage in its own process: skipped once its <stage>_final is complete, else resumed
    for stage in args.stages:
        problem = final_model_problem(stage_final(run_dir, stage), stage)
        if problem is None:
            logger.info("[%s] finished already (%s_final is complete): skipped", stage, stage)
            continue
        command = [*launcher, os.path.join(RECIPES, f"{stage}.py"), *argvs[stage]]
        if args.rehearse and not os.path.isdir(os.path.join(run_dir, stage)):
            # Interrupted once by a real SIGTERM at step STOP_STEP, then rerun: it must resume, not restart.
            stop_env = {**env, STOP_AT_STEP_ENV: str(STOP_STEP)}
            run_step(stage, command, summary, summary_path, stop_env, args.stop_timeout_s, expect=STOPPED_EXIT_CODE)
        run_step(stage, command, summary, summary_path, env, args.stop_timeout_s)

    # 3. The evaluation and the report, then the pushes
    finals = {stage: stage_final(run_dir, stage) for stage in STAGES}
    if not args.skip_eval:
        evaluate_and_report(args, run_dir, finals, summary, summary_path)
    if args.push_to_hub:
        push_stages(args, finals, summary, summary_path, os.path.join(RECIPES, "push_to_hub.py"))
    if args.rehearse:
        times = [
            f"{name} {step['wall_time_s']:.0f} s" for name, step in summary["steps"].items() if "wall_time_s" in step
        ]
        logger.info("[rehearsal] passed: %s", ", ".join(times))


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
