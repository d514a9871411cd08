"""The report end to end on a real evaluation: every number traceable to the results module or a run file, figures
written and cited, each section once, training facts as recorded, model cards only when asked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from modeling_modern_llm.evaluation import results, seed_summary

import build_report  # noqa: E402  (report/ is on sys.path: conftest)

REPO = Path(__file__).resolve().parents[2]
FIGURES = [
    "training_loss.png",
    "grpo_training.png",
    "gsm8k_em_vs_n.png",
    "attention_sink_mass.png",
    "attention_entropy.png",
] + [f"attention_{e}_layer{layer}.png" for e in ("sentiment", "coreference", "math") for layer in (0, 1)]
# A number in running text: not part of a word ("SST-2"), a path or a version (those sit in code spans, removed first).
NUMBER = re.compile(r"(?<![\w.-])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?(?!\w)")


@pytest.fixture(scope="module")
def built(report_inputs, tmp_path_factory):
    results_dir, run = report_inputs
    output = tmp_path_factory.mktemp("out") / "final_report.md"
    return build_report.build_report(
        str(results_dir), str(run), str(output), command="python report/build_report.py (test)"
    ), output


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def traceable_numbers(results_dir: Path, run: Path, figures: Path, seeds: Path | None = None) -> set[str]:
    """Every number the results module computes and the run files hold (and the seed summary, given one), in each
    format the report prints numbers in."""
    evaluation = results.load_run(results_dir)
    values = list(
        _leaves(
            [
                results.headline(evaluation),
                results.stage_gains(evaluation),
                results.gsm8k_analysis(evaluation),
                seed_summary.run_metrics(evaluation),
                evaluation.index,
            ]
        )
    )
    for path in [*run.rglob("*.json"), figures / "attention_stats.json", *([seeds] if seeds else [])]:
        values += list(_leaves(json.loads(path.read_text())))
    allowed = set()
    for v in values:
        allowed |= {
            build_report.fmt(v),
            f"{v:.3f}",
            f"{100 * v:.1f}",
            f"{100 * v:.1f}%",
            f"{100 * v:.0f}%",
            f"{v:+.3f}",
            f"{100 * v:+.1f}",
            str(v),
        }
    allowed |= {
        build_report.fmt(build_report.FLAT_ENTROPY_BITS),
        f"{100 * build_report.SINK_THRESHOLD:.0f}%",
        str(build_report.run_files.count_parameters(run / "dpo_final")),
    }
    return allowed


def untraceable(text: str, allowed: set[str]) -> list[str]:
    prose = re.sub(r"`[^`]*`", " ", text)  # commands, paths, versions, task names, quoted solutions
    prose = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", prose)  # image links
    return [n for n in NUMBER.findall(prose) if n not in allowed and n.lstrip("+") not in allowed]


@pytest.mark.slow  # an lm-eval run of the tiny run (report_inputs)
def test_every_number_is_traceable_and_an_invented_one_is_caught(built, report_inputs):
    text, output = built
    allowed = traceable_numbers(*report_inputs, output.parent / "figures")
    assert untraceable(text, allowed) == []
    assert len(NUMBER.findall(re.sub(r"`[^`]*`", " ", text))) > 100  # the check has numbers to check
    first_cell = re.search(r"\| pretrain \| (\d+\.\d+) ±", text).group(1)
    tampered = (
        text.replace(f"| pretrain | {first_cell} ±", "| pretrain | 9.876 ±", 1) + "\n- SFT gained 12.34 points.\n"
    )
    assert untraceable(tampered, allowed) == ["9.876", "12.34"]


@pytest.mark.slow  # an lm-eval run of the tiny run (report_inputs)
def test_every_figure_is_written_readable_and_cited(built):
    text, output = built
    for name in FIGURES:
        image = matplotlib.image.imread(output.parent / "figures" / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name
        assert f"![{name}](figures/{name})" in text
    blocks = text.split("\n\n")
    for index, block in enumerate(blocks):  # every table and figure is followed by the command that made it
        if block.startswith("|") or (block.startswith("![") and "attention_" not in block):
            assert "Made by: `python " in "\n\n".join(blocks[index + 1 : index + 4]), block[:80]


@pytest.mark.slow  # an lm-eval run of the tiny run (report_inputs)
def test_the_report_reads_in_one_minute(built, report_inputs):
    text, _ = built
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == [
        "In one minute",
        "Headline",
        "Stage gains",
        "Verifier impact",
        "Errors",
        "Interpretability",
        "Reproducibility",
    ]
    headline = text.split("## Headline")[1].split("##")[0]
    assert [line.split(" | ")[0] for line in headline.splitlines() if line.startswith("| ")][1:] == [
        "| pretrain",
        "| SFT",
        "| DPO",
        "| GPT-2",
        "| DistilGPT-2",
    ]
    assert "| GPT-2 | unavailable: gpt2 is not a local folder" in headline and " (n=6) |" in headline
    cells = re.findall(r"\d+\.\d ± \d+\.\d \(n=\d+\)", headline)
    assert len(cells) == 3 * 8  # SST-2, greedy and the six selectors of every stage
    gains_section = text.split("## Stage gains")[1].split("## Verifier impact")[0]
    assert not any(cell in gains_section for cell in cells)  # the stage gains do not repeat the values
    assert "| measure | pretrain → SFT | SFT → DPO |" in text
    analysis = results.gsm8k_analysis(results.load_run(report_inputs[0]))
    pairs = {(c["treatment"], c["baseline"]): c for c in analysis["comparisons"]}
    interval = lambda c: f"{100 * c['difference']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"  # noqa: E731
    best = results.format_value(analysis["selectors"]["verifier_best_of_n"], percent=True)
    assert (
        f"| verifier best-of-N | {best} | {interval(pairs['verifier_best_of_n', 'random_of_n'])} | "
        f"{interval(pairs['verifier_best_of_n', 'greedy'])} | {interval(pairs['verifier_best_of_n', 'majority_vote'])} |"
    ) in text
    assert analysis["selectors"]["greedy"]["value"] != analysis["selectors"]["verifier_best_of_n"]["value"]  # planted
    ceiling = pairs["oracle_pass_at_n", "greedy"]
    assert ceiling["difference"] >= pairs["verifier_best_of_n", "greedy"]["difference"]  # no selector beats it
    assert f"| — | {interval(ceiling)} | — |" in text and "is the ceiling" in text
    for row in ("| random pick |", "| verifier top-3 vote |", "| answer parses |", "| reasoning: a step missing |"):
        assert row in text, row
    errors = analysis["verifier_errors"]
    assert (
        f"{errors['false_positives']} of the {errors['problems_with_a_correct_candidate']} problems with a correct "
        "candidate"
    ) in text
    taxonomy = text.split("## Errors")[1]
    assert "| kind | GSM8K greedy | majority vote | verifier best-of-N |" in taxonomy
    assert "Verifier's top pick, wrong (rank 1 of 4" in text and "The learned sinks take" in text
    reproducibility = text.split("## Reproducibility")[1]
    assert (
        "| stage | config | datasets | steps | tokens | wall time (s) | final loss | hardware | world size | mixed precision |"
        in reproducibility
    )
    assert "| pretrain | `recipes/configs/cpu-demo/pretrain.yaml` | `embedded-text` | 60 | 121344 |" in reproducibility
    assert "accelerate_configs/cpu_ddp.yaml" in reproducibility and "0.8086 on its training pairs" in reproducibility
    assert (
        "- GRPO: rewards `exact_match`, `verifier` (weights 1, 0.25), 8 samples per prompt, beta 0; logged reward "
        "0.6875 at the first logged step, 0.8125 at the last."
    ) in reproducibility


@pytest.mark.slow  # an lm-eval run of the tiny run (report_inputs)
def test_model_cards_change_only_when_asked_and_only_for_the_runs_own_checkpoints(report_inputs, tmp_path):
    results_dir, run = report_inputs
    cards = {
        stage: (run / f"{stage}_final" / "README.md").read_text() for stage in ("pretrain", "sft", "dpo", "verifier")
    }
    build_report.build_report(str(results_dir), str(run), str(tmp_path / "a.md"), skip_figures=True)
    assert cards == {stage: (run / f"{stage}_final" / "README.md").read_text() for stage in cards}
    build_report.build_report(
        str(results_dir), str(run), str(tmp_path / "b.md"), skip_figures=True, update_model_cards=True
    )
    card = (run / "dpo_final" / "README.md").read_text()
    assert card.startswith(cards["dpo"].rstrip()) and "## Evaluation results" in card and "| SST-2 |" in card
    assert (run / "verifier_final" / "README.md").read_text() == cards["verifier"]  # not an evaluated model
    build_report.build_report(
        str(results_dir), str(run), str(tmp_path / "b.md"), skip_figures=True, update_model_cards=True
    )
    assert (run / "dpo_final" / "README.md").read_text().count("## Evaluation results") == 1


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_missing_results_are_one_line_naming_the_command(tmp_path):
    done = _run(
        "report/build_report.py", "--results_dir", str(tmp_path / "results"), "--output", str(tmp_path / "r.md")
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr and not (tmp_path / "r.md").exists()
    assert f"{tmp_path / 'results' / 'run_index.json'} not found: run `python eval/evaluate_tasks.py" in done.stderr


@pytest.mark.slow  # an lm-eval run of the tiny run (report_inputs)
def test_plots_cli_runs_alone_and_says_what_it_skipped(report_inputs, tmp_path, capsys):
    import plots

    assert plots.main(["--results_dir", str(report_inputs[0]), "--output_dir", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "training_loss.png: not drawn: no trainer log" in out and "grpo_training.png: not drawn: no GRPO" in out
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["gsm8k_em_vs_n.png"]


def test_the_first_section_says_what_was_trained_and_what_each_stage_and_the_verifier_did(built, report_inputs):
    text, _ = built
    minute = text.split("## In one minute")[1].split("\n## ")[0]
    run = report_inputs[1]
    parameters = build_report.run_files.count_parameters(run / "dpo_final")
    assert (
        f"**Model**: {parameters} parameters" in minute and "2 layers, 4 attention heads sharing 2 key-value" in minute
    )
    assert "pretrain 121344 tokens in 41.7 s; SFT 121345 tokens in 42.7 s" in minute and "655.1 s" in minute
    metrics = seed_summary.run_metrics(results.load_run(report_inputs[0]))
    gain = next(m for key, m in metrics.items() if key.endswith("/accuracy_gain") and m["stage"] == "sft")
    low, high = gain["interval"]
    assert "| stage | bits per byte | SST-2 | GSM8K greedy |" in minute
    row = next(line for line in minute.splitlines() if line.startswith("| pretrain → SFT |"))
    assert row.split(" | ")[2] == f"{100 * gain['value']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"  # SST-2
    versus = [m for m in metrics.values() if m["kind"] == "difference" and m["treatment"].startswith("verifier")]
    assert {m["baseline"] for m in versus} >= {"greedy", "majority_vote"}
    for m in versus:  # every verifier comparison the analysis made, with its paired bootstrap interval
        assert (
            f"| {build_report.display(m['treatment'])} | {build_report.display(m['baseline'])} | "
            f"{100 * m['value']:+.1f} | [{100 * m['interval'][0]:+.1f}, {100 * m['interval'][1]:+.1f}] |"
        ) in minute
    assert "is the most any selector over these samples can gain" in minute
    assert "not comparable with published results" in minute


@pytest.fixture(scope="module")
def seeded(report_inputs, second_seed_results, tmp_path_factory):
    """The seed summary of two seeds' evaluations (conftest), and the report built from it into a docs-like folder
    with its figures in a folder of their own."""
    results_dir, run = report_inputs
    root = tmp_path_factory.mktemp("seeds")
    summary_path = root / "seed_summary.json"
    summary = seed_summary.write_seed_summary(
        summary_path,
        [0, 1],
        [results_dir, second_seed_results],
        "/opt/venv/bin/python3.11 recipes/pipeline.py --seeds 0 1",
    )
    output = root / "docs" / "reference_report.md"
    text = build_report.build_report(
        str(results_dir),
        str(run),
        str(output),
        command="python report/build_report.py (test)",
        seed_summary_path=str(summary_path),
        figures_dir=str(root / "docs" / "report_figures"),
    )
    return text, output, summary, summary_path


@pytest.mark.slow
def test_seed_summary_holds_every_number_of_each_seed(seeded, report_inputs):
    _, _, summary, _ = seeded
    assert summary["seeds"] == [0, 1]
    one_run = seed_summary.run_metrics(results.load_run(report_inputs[0]))
    assert list(summary["metrics"]) == list(one_run)  # the same flattening, every metric of the run
    kinds = {m["kind"] for m in summary["metrics"].values()}
    assert kinds == {"value", "gain", "difference"}
    for key, metric in summary["metrics"].items():
        assert len(metric["values"]) == 2 and metric["values"][0] == one_run[key]["value"], key
        assert metric["mean"] == pytest.approx(sum(metric["values"]) / 2), key
    differing = [key for key, m in summary["metrics"].items() if m["values"][0] != m["values"][1]]
    assert differing and all("gsm8k" in key for key in differing)  # only the planted GSM8K solutions differ
    assert summary["metrics"]["dpo/embedded_text/bits_per_byte"]["sd"] == 0.0


@pytest.mark.slow
def test_the_report_of_seeds_shows_the_spread_next_to_the_within_run_error(seeded, report_inputs):
    text, output, summary, summary_path = seeded
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[:3] == ["In one minute", "Across seeds", "Headline"]
    allowed = traceable_numbers(*report_inputs, output.parent / "report_figures", summary_path)
    assert untraceable(text, allowed) == []
    across = text.split("## Across seeds")[1].split("\n## ")[0]
    assert "| metric | per seed | mean ± sd | 95% t interval | within-run SE | seeds agreeing in sign |" in across
    key = next(k for k, m in summary["metrics"].items() if m["kind"] == "gain" and m["values"][0] != m["values"][1])
    metric = summary["metrics"][key]
    row = next(line for line in across.splitlines() if line.startswith(f"| `{key}` |"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[1] == ", ".join(f"{100 * v:+.1f}" for v in metric["values"])
    assert cells[2] == f"{100 * metric['mean']:+.1f} ± {100 * metric['sd']:.1f}"
    assert cells[3] == f"[{100 * metric['interval'][0]:+.1f}, {100 * metric['interval'][1]:+.1f}]"
    assert cells[4] == f"{100 * metric['mean_stderr']:.1f}"
    side = "positive" if metric["mean"] > 0 else "negative"
    assert metric["mean"] != 0 and cells[5] == f"{metric[side]} of 2 {side}"
    minute = text.split("## In one minute")[1].split("\n## ")[0]
    assert "the mean of 2 seeds (0, 1), its 95% t interval across seeds" in minute and " of 2 " in minute
    assert "Made by: `python recipes/pipeline.py --seeds 0 1`" in across  # the interpreter's path is `python`


@pytest.mark.slow
def test_the_report_shows_no_machine_paths_and_links_its_figures_where_they_are(seeded, report_inputs, tmp_path):
    text, output, _, _ = seeded
    for machine in (str(report_inputs[0]), str(report_inputs[1]), str(output.parent), sys.executable, "/opt/venv"):
        assert machine not in text
    assert "`<run>/grpo_final`" in text and "from `<results>` and `<run>`" in text  # the model of the last stage
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(FIGURES) and all(link.startswith("report_figures/") for link in links)
    assert all((output.parent / link).is_file() for link in links)


def test_the_verifier_settings_compared_join_the_report_when_the_run_holds_them(tmp_path):
    assert build_report.verifier_sweep_section(tmp_path) == []
    table = tmp_path / "verifier_sweep" / "verifier_sweep.md"
    table.parent.mkdir()
    table.write_text(
        "Verifiers ... (`python benchmarks/verifier_sweep.py --run_dir r`)\n\n| variant |\n|---|\n| run |\n"
    )
    section = build_report.verifier_sweep_section(tmp_path)
    assert section[0] == "### Verifier settings compared"
    assert "(`python benchmarks/verifier_sweep.py --run_dir r`)" in section[4]
    assert section[4].endswith("| run |")
