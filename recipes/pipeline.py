"""Run pretrain -> SFT -> DPO -> verifier, then the evaluation and the report, resuming whatever was interrupted.

    python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml --run_name demo

Each stage runs as its own process (`launcher` + `recipes/<stage>.py --config <stage config>`), starting from
the previous stage's `<stage>_final`, with `--output_dir experiments/runs/<run>/<stage>`. A stage whose
`<stage>_final/` is complete is skipped; an interrupted one resumes from its last valid checkpoint. Then
`eval/evaluate_tasks.py` and `report/build_report.py` run (said plainly and skipped when the script is not
there). Per-stage wall times and commands go to `experiments/runs/<run>/pipeline_summary.json`.
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

from modeling_modern_llm.stages import POLICY_STAGES, STAGE_NAMES
from modeling_modern_llm.training import final_model_problem

logger = logging.getLogger("pipeline")
STAGES = STAGE_NAMES  # the one stage table: modeling_modern_llm/stages.py
RECIPES = os.path.relpath(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class PipelineArguments:
    run_name: str = field(metadata={"help": "Name of the run: outputs go to <runs_dir>/<run_name>/."})
    stage_configs: dict = field(metadata={"help": "Stage name -> its YAML, e.g. {pretrain: recipes/configs/...}."})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={"help": "Stages to run, in order."})
    runs_dir: str = field(default="experiments/runs")
    launcher: str = field(default="python", metadata={
        "help": "Command that runs a recipe, e.g. 'python' or 'accelerate launch --config_file "
                "accelerate_configs/single_gpu.yaml'."})
    verifier_policy: str = field(default="dpo", metadata={"help": "Stage whose final model the verifier samples from."})
    stage_args: dict | None = field(default=None, metadata={
        "help": "Stage name -> extra command-line overrides for it (a string), e.g. {pretrain: '--max_steps 10'}."})
    eval_script: str = field(default="eval/evaluate_tasks.py")
    eval_args: str = field(default="--embedded --include-baselines", metadata={"help": "Extra evaluation flags."})
    results_dir: str = field(default="experiments/results")
    report_script: str = field(default="report/build_report.py")
    report_output: str = field(default="report/final_report.md")
    skip_eval: bool = field(default=False, metadata={"help": "Stop after training."})

    def __post_init__(self):
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {unknown}; choose from {list(STAGES)}.")
        missing = [stage for stage in self.stages if stage not in self.stage_configs]
        if missing:
            raise ValueError(f"stage_configs: no config for stage(s) {missing}.")
        for stage in self.stages:
            if not os.path.isfile(self.stage_configs[stage]):
                raise ValueError(f"stage_configs.{stage}: {self.stage_configs[stage]} does not exist.")
        if self.verifier_policy not in STAGES[:3]:
            raise ValueError(f"verifier_policy: {self.verifier_policy!r} is not one of pretrain, sft, dpo.")


def stage_command(args: PipelineArguments, stage: str, run_dir: str) -> list[str]:
    previous = {"sft": "pretrain", "dpo": "sft", "verifier": args.verifier_policy}.get(stage)
    command = [*shlex.split(args.launcher), os.path.join(RECIPES, f"{stage}.py"), "--config", args.stage_configs[stage],
               "--output_dir", os.path.join(run_dir, stage), "--run_name", f"{args.run_name}-{stage}"]
    if previous:
        command += ["--model_name_or_path", os.path.join(run_dir, f"{previous}_final")]
    return command + shlex.split((args.stage_args or {}).get(stage, ""))


def run_step(name: str, command: list[str], summary: dict, summary_path: str) -> None:
    """Run one step as a subprocess, record its command, status and wall time (summed over attempts); stop on failure."""
    logger.info("[%s] %s", name, shlex.join(command))
    start, returncode = time.time(), None
    process = subprocess.Popen(command)
    try:
        returncode = process.wait()
    finally:  # also when the pipeline is stopped (SIGTERM from SLURM, Ctrl-C): stop the stage, record the attempt
        if process.poll() is None:
            process.terminate()
            process.wait()
        earlier = summary["steps"].get(name, {})
        earlier = earlier if earlier.get("status") != "ok" else {}  # an unfinished earlier attempt adds its time
        status = {None: "interrupted", 0: "ok"}.get(returncode, f"failed (exit code {returncode})")
        summary["steps"][name] = {"command": shlex.join(command), "status": status,
                                  "wall_time_s": round(earlier.get("wall_time_s", 0) + time.time() - start, 1),
                                  "attempts": earlier.get("attempts", 0) + 1}
        write_summary(summary, summary_path)
    if returncode != 0:
        sys.exit(f"pipeline: step {name!r} failed with exit code {returncode}; rerun the same command to resume it.")


def write_summary(summary: dict, path: str) -> None:
    summary["total_wall_time_s"] = round(sum(s.get("wall_time_s", 0) for s in summary["steps"].values()), 1)
    with open(path, "w") as handle:
        json.dump(summary, handle, indent=2)


def main(args: PipelineArguments) -> None:
    logging.basicConfig(format="%(asctime)s - %(name)s - %(message)s", level=logging.INFO)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("pipeline: terminated; rerun the same command to resume."))
    run_dir = os.path.join(args.runs_dir, args.run_name)
    os.makedirs(run_dir, exist_ok=True)
    summary_path = os.path.join(run_dir, "pipeline_summary.json")
    summary = {"run_name": args.run_name, "command": shlex.join(["python", *sys.argv]), "steps": {}}
    if os.path.isfile(summary_path):  # keep the times of stages finished by an earlier (interrupted) invocation
        with open(summary_path) as handle:
            summary["steps"] = json.load(handle).get("steps", {})

    for stage in args.stages:
        problem = final_model_problem(os.path.join(run_dir, f"{stage}_final"))
        if problem is None:
            logger.info("[%s] finished already (%s_final is complete): skipped", stage, stage)
            continue
        run_step(stage, stage_command(args, stage, run_dir), summary, summary_path)

    if args.skip_eval:
        return
    finals = {stage: os.path.join(run_dir, f"{stage}_final") for stage in STAGES}
    # --overwrite: the pipeline owns its results_dir; the evaluation swaps the complete new results in at the end
    evaluation = [sys.executable, args.eval_script, "--model", *(finals[stage] for stage in POLICY_STAGES),
                  "--stages", *POLICY_STAGES, "--verifier", finals["verifier"],
                  "--output_dir", args.results_dir, "--overwrite", *shlex.split(args.eval_args)]
    report = [sys.executable, args.report_script, "--results_dir", args.results_dir, "--run_dir", run_dir,
              "--output", args.report_output, "--update_model_cards"]
    for name, command, script in (("evaluation", evaluation, args.eval_script), ("report", report, args.report_script)):
        missing = f"{script} is missing" if not os.path.isfile(script) else None
        if name == "report" and summary["steps"]["evaluation"]["status"] != "ok":
            missing = "the evaluation did not run, so there are no results to report"
        if missing:
            logger.warning("[%s] SKIPPED: %s.", name, missing)
            summary["steps"][name] = {"command": shlex.join(command), "status": f"skipped: {missing}"}
            write_summary(summary, summary_path)
            continue
        run_step(name, command, summary, summary_path)


if __name__ == "__main__":
    main(*TrlParser((PipelineArguments,)).parse_args_and_config())
