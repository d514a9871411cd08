"""Keep a run's report in the repository: docs/reference_report.md, its figures committed beside it.

    python report/reference_report.py --run_dir experiments/runs/reference

The reference run is the main job's config over three seeds:
`python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml --run_name reference --seeds 0 1 2`.
This builds its report (build_report.py with the run's seed_summary.json and its first seed's results and run folder;
a run of one seed needs --results_dir) into --output, the figures into --figures_dir (emptied first), every link
relative to the report so it works on the repository page, under a first-line comment naming the command that made
the run (from its pipeline_summary.json) and the commit of this checkout.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import build_report  # a sibling script: Python puts a script's own folder first on sys.path
import run_files

from modeling_modern_llm.errors import InputFileError, run_command
from modeling_modern_llm.files import atomic_write_text, portable
from modeling_modern_llm.evaluation.seed_summary import SUMMARY_FILE
from modeling_modern_llm.training.seeds import seed_folder


def checkout_commit(outputs: tuple[Path, ...] = ()) -> str:
    """The commit this checkout is at (with "+ uncommitted changes" when its tracked files differ, this script's own
    `outputs` aside: a report written earlier must not mark the code as changed), or "unknown"."""
    excluded = [f":(exclude){path}" for path in outputs]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def inputs(run_dir: Path, results_dir: str | None) -> tuple[Path, Path, Path | None]:
    """`(results_dir, run folder, seed summary)`: the first seed's of a run of several seeds, else the run's own."""
    summary = run_dir / SUMMARY_FILE
    if summary.is_file():
        first = run_dir / seed_folder(run_files.read_json(summary)["seeds"][0])
        return first / "results", first, summary
    if results_dir is None:
        raise InputFileError(
            f"{summary} not found: run `python recipes/pipeline.py --config "
            "recipes/configs/cpu-demo/pipeline.yaml --run_name reference --seeds 0 1 2` first, or "
            "give --results_dir for a run of one seed"
        )
    return Path(results_dir), run_dir, None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", type=Path, default=Path("experiments/runs/reference"))
    parser.add_argument("--results_dir", default=None, help="a run of one seed: its evaluation's results")
    parser.add_argument("--output", type=Path, default=Path("docs/reference_report.md"))
    parser.add_argument("--figures_dir", type=Path, default=Path("docs/reference_report_figures"))
    args = parser.parse_args(argv)
    results_dir, run, seeds = inputs(args.run_dir, args.results_dir)
    pipeline = args.run_dir / "pipeline_summary.json"
    made_by = run_files.read_json(pipeline)["command"] if pipeline.is_file() else "(no pipeline_summary.json)"
    command = shlex.join(["python", "report/reference_report.py", *argv])
    shutil.rmtree(args.figures_dir, ignore_errors=True)  # generated: no figure of an earlier run stays behind
    text = build_report.build_report(
        str(results_dir),
        str(run),
        str(args.output),
        command=command,
        seed_summary_path=str(seeds) if seeds else None,
        figures_dir=str(args.figures_dir),
    )
    header = (
        f"<!-- The reference run's report, kept in the repository: `{portable(made_by, {str(args.run_dir): '<run>'})}` "
        f"at commit {checkout_commit((args.output, args.figures_dir))}, built by `{command}`. -->"
    )
    atomic_write_text(str(args.output), f"{header}\n{text}")
    print(f"wrote {args.output} and {args.figures_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
