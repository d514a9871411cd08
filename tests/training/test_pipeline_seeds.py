"""`pipeline.py --seeds 0 1 --rehearse` on the main job's config: the whole pipeline once per seed, each in its own folder
with its own results, then seed_summary.json and the report across seeds; a rerun skips the finished seeds."""

import json
import os
import subprocess
import sys

import pytest
from training_helpers import REPO

pytestmark = pytest.mark.slow


def _seeds(runs_dir, *extra):
    command = [
        sys.executable,
        os.path.join(REPO, "recipes", "pipeline.py"),
        "--config",
        "recipes/configs/cpu-demo/pipeline.yaml",
        "--run_name",
        "R",
        "--runs_dir",
        str(runs_dir),
        "--seeds",
        "0",
        "1",
        "--rehearse",
        *extra,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)


def test_every_seed_runs_the_whole_pipeline_then_the_numbers_are_summarised(tmp_path):
    first = _seeds(tmp_path)
    assert first.returncode == 0, (first.stdout + first.stderr)[-5000:]
    run_dir = tmp_path / "R-rehearsal"
    assert sorted(os.listdir(tmp_path)) == ["R-rehearsal"]
    for seed in (0, 1):
        seed_dir = run_dir / f"seed-{seed}"
        with open(seed_dir / "pipeline_summary.json") as handle:
            steps = json.load(handle)["steps"]
        assert all(
            steps[name]["status"] == "ok" for name in ("pretrain", "sft", "dpo", "verifier", "evaluation", "report")
        )
        assert f"--seed {seed}" in steps["pretrain"]["command"] and f"--seed {seed}" in steps["evaluation"]["command"]
        with open(seed_dir / "results" / "run_index.json") as handle:
            index = json.load(handle)
        assert (index["seed"], index["corpus_seed"]) == (seed, 0)  # sampling varies, the corpus does not
        assert (seed_dir / "final_report.md").is_file()

    with open(run_dir / "seed_summary.json") as handle:
        summary = json.load(handle)
    assert summary["seeds"] == [0, 1]
    complete = {key: m for key, m in summary["metrics"].items() if len(m["values"]) == 2 and None not in m["values"]}
    assert len(complete) >= 6
    assert all(m["mean"] == pytest.approx(sum(m["values"]) / 2) and m["sd"] is not None for m in complete.values())
    assert any(m["values"][0] != m["values"][1] for m in complete.values())  # the seeds trained different models
    with open(run_dir / "pipeline_summary.json") as handle:
        top = json.load(handle)
    assert [top["steps"][name]["status"] for name in ("seed-0", "seed-1", "seed-summary", "report")] == ["ok"] * 4
    report = (run_dir / "final_report.md").read_text()
    assert report.startswith("# modern-llm: final report") and "## Across seeds" in report
    assert str(tmp_path) not in report and sys.executable not in report

    again = _seeds(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert log.count("finished already (stages, evaluation and report): skipped") == 2
    assert "recipes/pretrain.py" not in log and "eval/evaluate_tasks.py" not in log
