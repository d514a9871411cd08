"""GRPO's learning curves on GSM8K: the training reward, greedy exact match, pass@1 and pass@N against steps.

    python benchmarks/grpo_curves.py --run_dir experiments/runs/demo/seed-0 --eval_every 35
    python benchmarks/grpo_curves.py --run_dir experiments/runs/demo --grpo_args "--learning_rate 1e-4"

1. Trains the GRPO stage from `<run_dir>/dpo_final` with its YAML (`--config`, default the cpu-demo one; extra
   recipe flags in `--grpo_args`), keeping a checkpoint every `--eval_every` steps, into `<output_dir>/grpo`; the
   checkpoints already there (an earlier measurement) are evaluated as they are (delete the folder to retrain).
2. Evaluates the starting model (step 0) and every checkpoint with the evaluation's own tasks, on the same held-out
   problems: greedy and `--n_samples` samples per problem, with the calculator when the stage sampled with it, and
   through the chat template when the stage asked through it (one `eval/evaluate_tasks.py` run).
3. Prints one row per evaluated step: the mean training reward logged since the previous row, greedy exact match,
   pass@1 (the mean correctness of the N samples: what a random pick scores), majority vote and pass@N, each with
   its standard error and n; writes them to `<output_dir>/grpo_curves.json` and `grpo_curves.md`.

These are the curves that say whether the stage learns (reward), whether that carries to held-out problems
(pass@1) and whether it only sharpens what sampling already found (pass@1 rising while pass@N stays).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

import yaml

from modeling_modern_llm.errors import UsageError, run_command
from modeling_modern_llm.files import atomic_write_json, atomic_write_text
from modeling_modern_llm.evaluation.results import load_run, problems, selector_values
from modeling_modern_llm.stages import stage_final

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = (
    ("greedy", "greedy"),
    ("random_of_n", "pass@1"),
    ("majority_vote", "majority"),
    ("oracle_pass_at_n", "pass@N"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run_dir", required=True, help="A pipeline run (one seed's folder) with dpo_final.")
    parser.add_argument("--config", default="recipes/configs/cpu-demo/grpo.yaml", help="The GRPO stage's YAML.")
    parser.add_argument("--grpo_args", default="", help="More recipes/grpo.py flags, e.g. '--learning_rate 1e-4'.")
    parser.add_argument("--eval_every", type=int, default=35, help="Steps between evaluated checkpoints.")
    parser.add_argument("--limit", type=int, default=500, help="Held-out problems per evaluation.")
    parser.add_argument("--n_samples", type=int, default=8, help="Solutions sampled per problem (pass@N's N).")
    parser.add_argument("--output_dir", default=None, help="Default: <run_dir>/grpo_curves.")
    return parser.parse_args(argv)


def run(command: list[str], log_path: str) -> None:
    """Run one of the project's commands, its output in `log_path`; a failure names the log."""
    print("$", shlex.join(command), flush=True)
    with open(log_path, "w") as log:
        if subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise UsageError(f"`{shlex.join(command)}` failed; its output is in {log_path}")


def checkpoints(folder: str) -> list[tuple[int, str]]:
    """(step, path) of every `checkpoint-<step>` in `folder`, by step."""
    names = [name for name in os.listdir(folder) if name.startswith("checkpoint-")]
    return sorted((int(name.split("-")[1]), os.path.join(folder, name)) for name in names)


def mean_reward(log_history: list[dict], after: int, upto: int) -> float | None:
    """The mean of the rewards logged at steps in (after, upto]."""
    rewards = [entry["reward"] for entry in log_history if "reward" in entry and after < entry["step"] <= upto]
    return sum(rewards) / len(rewards) if rewards else None


def main(args: argparse.Namespace) -> dict:
    start_model = stage_final(args.run_dir, "dpo")
    if not os.path.isdir(start_model):
        raise UsageError(f"{start_model} not found: run the pipeline up to DPO first (recipes/pipeline.py)")
    with open(os.path.join(ROOT, args.config)) as handle:
        stage_config = yaml.safe_load(handle)
    calculator = bool(stage_config.get("use_calculator", False))
    chat = bool(stage_config.get("sample_with_chat_template", True))
    output_dir = args.output_dir or os.path.join(args.run_dir, "grpo_curves")
    grpo_dir = os.path.join(output_dir, "grpo")
    os.makedirs(output_dir, exist_ok=True)

    # 1. Train, keeping every checkpoint (an earlier measurement's checkpoints are evaluated as they are)
    if not os.path.isdir(grpo_dir) or not checkpoints(grpo_dir):
        run(
            [sys.executable, "recipes/grpo.py", "--config", args.config, "--model_name_or_path", start_model]
            + ["--output_dir", grpo_dir, "--save_strategy", "steps", "--save_steps", str(args.eval_every)]
            + ["--save_total_limit", "1000"]
            + shlex.split(args.grpo_args),
            os.path.join(output_dir, "grpo.log"),
        )
    steps = checkpoints(grpo_dir)
    with open(os.path.join(steps[-1][1], "trainer_state.json")) as handle:
        log_history = json.load(handle)["log_history"]

    # 2. Evaluate step 0 and every checkpoint on the same problems
    suffix = "_calculator" if calculator else ""
    greedy_task, sampled_task = f"embedded_gsm8k{suffix}", f"embedded_gsm8k_sampled{suffix}"
    models = [("step-0", start_model, "dpo")] + [(f"step-{step}", path, "grpo") for step, path in steps]
    results_dir = os.path.join(output_dir, "results")
    run(
        [sys.executable, "eval/evaluate_tasks.py", "--embedded", "--tasks", greedy_task, sampled_task]
        + ["--model"]
        + [f"{name}={path}" for name, path, _ in models]
        + ["--stages"]
        + [stage for _, _, stage in models]
        + ["--limit", str(args.limit), "--n_samples", str(args.n_samples), "--output_dir", results_dir]
        + ["--overwrite", "--seed", "0"]
        + (["--chat_template"] if chat else []),
        os.path.join(output_dir, "evaluate.log"),
    )

    # 3. One row per step
    evaluation = {model.name: model for model in load_run(results_dir).models}
    rows, previous = [], 0
    for name, _, _ in models:
        step = int(name.split("-")[1])
        model = evaluation[name]
        task = model.find_task((sampled_task,))
        values = selector_values(model, task, problems(model, task))
        rows.append(
            {
                "step": step,
                "reward": mean_reward(log_history, previous, step) if step else None,
                **{column: values.get(selector) for selector, column in COLUMNS},
            }
        )
        previous = step
    report = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "config": args.config,
        "grpo_args": args.grpo_args,
        "start_model": start_model,
        "calculator": calculator,
        "n_samples": args.n_samples,
        "rows": rows,
    }
    atomic_write_json(os.path.join(output_dir, "grpo_curves.json"), report)
    table = markdown(report)
    atomic_write_text(os.path.join(output_dir, "grpo_curves.md"), table)
    print(table)
    return report


def markdown(report: dict) -> str:
    def cell(value: dict | None) -> str:
        return "—" if value is None else f"{100 * value['value']:.1f} ± {100 * (value['stderr'] or 0):.1f}"

    header = ["step", "reward (train)"] + [column for _, column in COLUMNS]
    lines = [
        f"GRPO from {report['start_model']}, N = {report['n_samples']}, calculator {report['calculator']}, "
        f"n = {report['rows'][0]['greedy']['n']} held-out problems (`{report['command']}`)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in report["rows"]:
        reward = "—" if row["reward"] is None else f"{row['reward']:.3f}"
        lines.append(f"| {row['step']} | {reward} | " + " | ".join(cell(row[c]) for _, c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_command(main, parse_args())
