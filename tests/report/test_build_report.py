"""The report end to end on a small results fixture: figures, traceable numbers, missing files, model cards."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from transformers import AutoModelForCausalLM

from modeling_modern_llm.reporting import fmt, fmt_percent, fmt_signed, sample_sizes
from modeling_modern_llm.reporting.observations import (
    ENTROPY_TREND_BITS,
    FIRST_TOKEN_SINK_THRESHOLD,
    STAGE_CHANGE_THRESHOLD,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "report"))
from build_report import build_report  # noqa: E402

FIGURES = [
    "training_loss.png",
    "stage_gains.png",
    "gsm8k_em_vs_n.png",
    "perplexity_bpb.png",
    "attention_sink_mass.png",
    "attention_entropy.png",
] + [f"attention_{e}_layer{layer}.png" for e in ("sentiment", "coreference", "math") for layer in (0, 1)]
# A number in running text: not part of a word, a path or a version (those sit in code spans, removed first).
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?(?!\w)")


@pytest.fixture(scope="module")
def built(tmp_path_factory, make_results_fixture):
    root = tmp_path_factory.mktemp("report")
    results, run = make_results_fixture(root)
    output = root / "out" / "final_report.md"
    text = build_report(str(results), str(run), str(output), command="python report/build_report.py (test)")
    return results, run, output, text


def _leaves(value):
    """Every number in a parsed JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def traceable_numbers(results: Path, run: Path) -> set[str]:
    """Each number of the fixture files in the report's formats, plus the derived values the report documents."""
    values = []
    for path in [*results.glob("*.json"), *run.rglob("*.json")]:
        values += list(_leaves(json.loads(path.read_text())))
    with (results / "stage_gains.csv").open() as handle:
        values += [
            float(v)
            for row in csv.DictReader(handle)
            for k, v in row.items()
            if k in ("value", "delta_vs_previous_stage") and v
        ]
    allowed = {text for v in values for text in (fmt(v), fmt_signed(v), fmt_percent(v))}
    stats = json.loads((results / "attention_stats.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(run / "sft_final")
    allowed |= {
        fmt(sum(p.numel() for p in model.parameters())),  # parameters, counted independently
        fmt_signed(
            stats["layers"][-1]["entropy_bits"] - stats["layers"][0]["entropy_bits"]
        ),  # entropy change with depth
        fmt_percent(FIRST_TOKEN_SINK_THRESHOLD),
        fmt(ENTROPY_TREND_BITS),
        fmt(STAGE_CHANGE_THRESHOLD),  # stated thresholds
        *map(
            fmt, sample_sizes(json.loads((results / "gsm8k_analysis.json").read_text())["n_samples"])
        ),  # the N of the curve
    }
    return allowed


def untraceable(text: str, allowed: set[str]) -> list[str]:
    prose = re.sub(r"`[^`]*`", " ", text)  # commands, paths, versions, quoted examples
    prose = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", prose)  # image links
    return [n for n in NUMBER.findall(prose) if n.lstrip("+") not in allowed and n not in allowed]


def test_every_number_is_traceable_and_an_invented_one_is_caught(built):
    results, run, _, text = built
    allowed = traceable_numbers(results, run)
    assert untraceable(text, allowed) == []
    assert len(NUMBER.findall(re.sub(r"`[^`]*`", " ", text))) > 100  # the check has numbers to check
    tampered = text.replace("| 0.6419 |", "| 0.6421 |", 1) + "\n- SFT raised accuracy by 12.34 points.\n"
    assert untraceable(tampered, allowed) == ["0.6421", "12.34"]


def test_every_figure_is_written_readable_and_cited(built):
    results, _, output, text = built
    for name in FIGURES:
        path = output.parent / "figures" / name
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name
        assert f"![{name}](figures/{name})" in text
    blocks = text.split("\n\n")
    for index, block in enumerate(blocks):  # every table and figure is followed by the command that made it
        if block.startswith("|") or (block.startswith("![") and "attention_" not in block):
            following = "\n\n".join(blocks[index + 1 : index + 4])
            assert "Made by: `python " in following, block[:80]
    stats = json.loads((results / "attention_stats.json").read_text())
    assert stats["command"].startswith("python report/visualize_attention.py --model_path")
    assert len(stats["layers"]) == 2 and len(stats["layers"][0]["per_head"]["entropy_bits"]) == 4


def test_report_content(built):
    _, run, _, text = built
    for heading in (
        "## Architecture",
        "## Training",
        "## Results",
        "### Stage gains",
        "## Interpretability",
        "## Reproducibility",
    ):
        assert heading in text
    assert (
        "| `gpt2` | baseline | `wikitext-2-raw-v1` | test | unavailable: the Hugging Face Hub cannot be reached (offline) |"
        in text
    )
    assert (
        "- `gpt2`: unavailable: the Hugging Face Hub cannot be reached (offline)" in text
    )  # under the side-by-side table
    assert "| `demo-sft` | sft | sst2 | `embedded-sst2` | `num_fewshot=0` | accuracy 0.6419 |" in text
    assert "EM (% of problems) 7.6923 greedy → 38.4615 verifier best-of-N, +30.7692 EM points" in text
    assert "`sft` improved `sst2/0-shot` accuracy by +0.1282 (to 0.6419)." in text
    assert "Trade-off in `sft`" in text
    assert "The learned sink takes the most mass in layer" in text  # the fixture model has sinks on
    assert "`torch==" in text and "Evaluation seeds: 1234" in text
    assert "recipes/configs/cpu-demo/sft.yaml" in text
    assert "0.8086 on 256 of its training pairs, 0.494 on 166 held-out pairs" in text
    card = (run / "sft_final" / "README.md").read_text()
    assert "## Evaluation results" in card and "| sst2 | embedded-sst2 | test | accuracy | 0.6419 |" in card
    assert "0.5137" in (run / "pretrain_final" / "README.md").read_text()
    assert "## Evaluation results" not in (run / "verifier_final" / "README.md").read_text()  # no records of its own
    assert (
        f"- Checkpoint: `{run / 'sft_final'}` (stage `sft`" in text
    )  # the verifier (a classifier) is not the architecture


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_missing_results_file_gives_the_command_and_no_traceback(tmp_path):
    done = _run(
        "report/build_report.py", "--results_dir", str(tmp_path / "results"), "--output", str(tmp_path / "r.md")
    )
    assert done.returncode == 1
    assert f"{tmp_path / 'results' / 'task_metrics.json'} not found: run `python eval/evaluate_tasks.py" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r.md").exists()


def test_optional_files_missing_are_named_in_the_report(results_fixture, tmp_path):
    results, run = results_fixture
    (results / "gsm8k_analysis.json").unlink()
    text = build_report(str(results), str(run), str(tmp_path / "r.md"), skip_figures=True)
    assert f"Not produced: {results / 'gsm8k_analysis.json'} not found: run `python eval/evaluate_tasks.py" in text
    assert "attention_stats.json not found: run `python report/visualize_attention.py" in text


def test_plots_cli_runs_alone_and_reports_what_it_skipped(results_fixture, tmp_path, capsys):
    import plots

    results, _ = results_fixture
    assert plots.main(["--results_dir", str(results), "--output_dir", str(tmp_path / "figs")]) == 0
    assert "training_loss.png: not drawn: no --run_dir given" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "gsm8k_em_vs_n.png",
        "perplexity_bpb.png",
        "stage_gains.png",
    ]


def test_visualize_attention_rejects_bad_input(tiny_checkpoint, tmp_path, capsys):
    import visualize_attention

    assert visualize_attention.main(["--model_path", str(tmp_path), "--stats_path", str(tmp_path / "s.json")]) == 1
    assert "is not a saved model (no config.json)" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")
    assert visualize_attention.main(["--model_path", str(tmp_path), "--stats_path", str(tmp_path / "s.json")]) == 1
    assert f"cannot load {tmp_path} as a causal LM" in capsys.readouterr().err
    args = [
        "--model_path",
        str(tiny_checkpoint),
        "--output_dir",
        str(tmp_path / "f"),
        "--stats_path",
        str(tmp_path / "s.json"),
    ]
    assert visualize_attention.main([*args, "--layers", "2"]) == 1
    assert "the model has 2 layers" in capsys.readouterr().err and not (tmp_path / "s.json").exists()
