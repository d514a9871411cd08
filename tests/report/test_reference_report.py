"""report/reference_report.py keeps a run of several seeds' report where the repository shows it: figures beside it,
every link relative to it, a first line naming the command that made the run and the commit."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from modeling_modern_llm.evaluation import seed_summary

import reference_report  # noqa: E402  (report/ is on sys.path: conftest)

pytestmark = pytest.mark.slow  # it uses the session's real evaluation (lm-eval) and draws every figure


def test_the_kept_report_links_figures_that_are_beside_it(report_inputs, second_seed_results, tmp_path):
    results_dir, run = report_inputs
    reference = tmp_path / "runs" / "reference"
    shutil.copytree(run, reference / "seed-0")
    shutil.copytree(results_dir, reference / "seed-0" / "results")
    (reference / "pipeline_summary.json").write_text(
        json.dumps(
            {
                "command": "/usr/bin/python3 recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml --seeds 0 1",
                "steps": {},
            }
        )
    )
    seed_summary.write_seed_summary(
        reference / "seed_summary.json",
        [0, 1],
        [reference / "seed-0" / "results", second_seed_results],
        "python (test)",
    )
    docs = tmp_path / "docs"
    stale = docs / "reference_report_figures" / "from_an_earlier_run.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert (
        reference_report.main(
            [
                "--run_dir",
                str(reference),
                "--output",
                str(docs / "reference_report.md"),
                "--figures_dir",
                str(docs / "reference_report_figures"),
            ]
        )
        == 0
    )

    first, text = (docs / "reference_report.md").read_text().split("\n", 1)
    assert first.startswith("<!-- ") and first.endswith(" -->") and " at commit " in first
    assert "`python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml --seeds 0 1`" in first
    assert text.startswith("# modern-llm: final report") and "## Across seeds" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(link.startswith("reference_report_figures/") for link in links)
    assert all((docs / link).is_file() for link in links)
    assert not stale.exists()  # the folder holds this run's figures only
    assert str(tmp_path) not in text


def test_a_run_without_seed_summary_needs_its_results_named(tmp_path):
    with pytest.raises(ValueError, match="--seeds 0 1 2` first, or give --results_dir"):
        reference_report.inputs(tmp_path, None)
