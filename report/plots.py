"""The report's figures: training loss per stage, GRPO's rewards, and GSM8K exact match of every best-of-N selector
against N.

    python report/plots.py --results_dir experiments/results --run_dir experiments/runs/<run> --output_dir report/figures

Writes `training_loss.png` and `grpo_training.png` (from the trainers' logs) and `gsm8k_em_vs_n.png` (from the
evaluation's logged samples, through modeling_modern_llm.evaluation.results). A figure whose inputs are missing is
skipped with the reason.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from run_files import log_history, loss_history  # noqa: E402

from modeling_modern_llm.evaluation.results import SELECTOR_COLUMNS, gsm8k_analysis, load_run  # noqa: E402
from modeling_modern_llm.stages import STAGE_NAMES  # noqa: E402

FIGURE_NAMES = ("training_loss.png", "grpo_training.png", "gsm8k_em_vs_n.png")


def plot_training_loss(run_dir: Path | None, path: Path) -> str:
    histories = {stage: h for stage in STAGE_NAMES if run_dir and (h := loss_history(run_dir, stage))}
    if not histories:
        return f"not drawn: no trainer log with losses under {run_dir or '(no --run_dir given)'}"
    fig, axes = plt.subplots(1, len(histories), figsize=(3.6 * len(histories), 3), squeeze=False)
    for ax, (stage, history) in zip(axes[0], histories.items()):
        ax.plot([step for step, _ in history], [loss for _, loss in history], marker=".")
        ax.set_title(stage, fontsize=10)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("training loss")
    _save(fig, path)
    return f"Training loss per logged step, from each stage's trainer_state.json ({', '.join(histories)})."


def plot_grpo_training(run_dir: Path | None, path: Path) -> str:
    entries = [e for e in (log_history(run_dir, "grpo") if run_dir else []) if "reward" in e and "step" in e]
    if not entries:
        return f"not drawn: no GRPO trainer log with rewards under {run_dir or '(no --run_dir given)'}"
    steps = [e["step"] for e in entries]
    fig, (rewards, lengths) = plt.subplots(1, 2, figsize=(8, 3))
    rewards.plot(steps, [e["reward"] for e in entries], marker=".", label="reward (mean)")
    rewards.plot(steps, [e.get("reward_std") for e in entries], marker=".", label="reward_std (within a group)")
    rewards.set_xlabel("step")
    rewards.legend(fontsize=8)
    lengths.plot(steps, [e.get("completions/mean_length") for e in entries], marker=".")
    lengths.set_xlabel("step")
    lengths.set_ylabel("completion length (tokens, mean)")
    _save(fig, path)
    return (
        "GRPO per logged step, from grpo/trainer_state.json: the mean reward of the step's completions, its "
        "standard deviation within each prompt's group of samples (0: the group teaches nothing), and the mean "
        "completion length."
    )


def plot_em_vs_n(analysis: dict | None, path: Path) -> str:
    if analysis is None:
        return "not drawn: the evaluation ran no sampled GSM8K task"
    sizes = analysis["em_vs_n"]["sizes"]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for selector, values in analysis["em_vs_n"]["exact_match"].items():  # every selector, baselines dashed
        style = "--" if selector in ("greedy", "random_of_n") else ":" if selector == "oracle_pass_at_n" else "-"
        ax.plot(sizes, [100 * v for v in values], style, marker="o", label=SELECTOR_COLUMNS.get(selector, selector))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("exact match (%)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    _save(fig, path)
    return (
        f"GSM8K exact match of {analysis['model']} ({analysis['task']}, {analysis['n_problems']} problems) using the "
        f"first N of its {analysis['n_samples']} samples, N = {', '.join(map(str, sizes))}, for every selector (greedy "
        "does not depend on N; a random pick is the samples' mean correctness)."
    )


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def make_plots(
    results_dir: Path, run_dir: Path | None, output_dir: Path, analysis: dict | None = None
) -> dict[str, str]:
    """`{figure name: caption}` (a caption starting "not drawn:" when skipped)."""
    analysis = analysis if analysis is not None else gsm8k_analysis(load_run(results_dir))
    return {
        "training_loss.png": plot_training_loss(run_dir, output_dir / "training_loss.png"),
        "grpo_training.png": plot_grpo_training(run_dir, output_dir / "grpo_training.png"),
        "gsm8k_em_vs_n.png": plot_em_vs_n(analysis, output_dir / "gsm8k_em_vs_n.png"),
    }


def command_line(results_dir: Path, run_dir: Path | None, output_dir: Path) -> str:
    run = ["--run_dir", str(run_dir)] if run_dir else []
    return shlex.join(
        ["python", "report/plots.py", "--results_dir", str(results_dir), *run, "--output_dir", str(output_dir)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results_dir", type=Path, default=Path("experiments/results"))
    parser.add_argument("--run_dir", type=Path, default=None, help="experiments/runs/<run> (for the training curves)")
    parser.add_argument("--output_dir", type=Path, default=Path("report/figures"))
    args = parser.parse_args(argv)
    captions = make_plots(args.results_dir, args.run_dir, args.output_dir)
    for name, caption in captions.items():
        print(f"{name}: {caption}")
    return 0 if any(not c.startswith("not drawn") for c in captions.values()) else 1


if __name__ == "__main__":
    from modeling_modern_llm.errors import run_command

    sys.exit(run_command(main))
