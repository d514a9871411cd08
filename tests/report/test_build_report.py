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

from modeling_modern_llm.evaluation import results

import build_report  # noqa: E402  (report/ is on sys.path: conftest)

REPO = Path(__file__).resolve().parents[2]
FIGURES = ["training_loss.png", "gsm8k_em_vs_n.png", "attention_sink_mass.png", "attention_entropy.png"] + [
    f"attention_{e}_layer{layer}.png" for e in ("sentiment", "coreference", "math") for layer in (0, 1)]
# A number in running text: not part of a word ("SST-2"), a path or a version (those sit in code spans, removed first).
NUMBER = re.compile(r"(?<![\w.-])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?(?!\w)")


@pytest.fixture(scope="module")
def built(report_inputs, tmp_path_factory):
    results_dir, run = report_inputs
    output = tmp_path_factory.mktemp("out") / "final_report.md"
    return build_report.build_report(str(results_dir), str(run), str(output), command="python report/build_report.py (test)"), output


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def traceable_numbers(results_dir: Path, run: Path, figures: Path) -> set[str]:
    """Every number the results module computes and the run files hold, in each format the report prints numbers in."""
    evaluation = results.load_run(results_dir)
    values = list(_leaves([results.headline(evaluation), results.stage_gains(evaluation), results.gsm8k_analysis(evaluation),
                           evaluation.index]))
    for path in [*run.rglob("*.json"), figures / "attention_stats.json"]:
        values += list(_leaves(json.loads(path.read_text())))
    allowed = set()
    for v in values:
        allowed |= {build_report.fmt(v), f"{v:.3f}", f"{100 * v:.1f}", f"{100 * v:.1f}%", f"{100 * v:.0f}%", f"{v:+.3f}",
                    f"{100 * v:+.1f}", str(v)}
    allowed |= {build_report.fmt(build_report.FLAT_ENTROPY_BITS), f"{100 * build_report.SINK_THRESHOLD:.0f}%",
                str(build_report.run_files.count_parameters(run / "dpo_final"))}
    return allowed


def untraceable(text: str, allowed: set[str]) -> list[str]:
    prose = re.sub(r"`[^`]*`", " ", text)  # commands, paths, versions, task names, quoted solutions
    prose = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", prose)  # image links
    return [n for n in NUMBER.findall(prose) if n not in allowed and n.lstrip("+") not in allowed]


def test_every_number_is_traceable_and_an_invented_one_is_caught(built, report_inputs):
    text, output = built
    allowed = traceable_numbers(*report_inputs, output.parent / "figures")
    assert untraceable(text, allowed) == []
    assert len(NUMBER.findall(re.sub(r"`[^`]*`", " ", text))) > 100  # the check has numbers to check
    first_cell = re.search(r"\| pretrain \| (\d+\.\d+) ±", text).group(1)
    tampered = text.replace(f"| pretrain | {first_cell} ±", "| pretrain | 9.876 ±", 1) + "\n- SFT gained 12.34 points.\n"
    assert untraceable(tampered, allowed) == ["9.876", "12.34"]


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


def test_the_report_reads_in_one_minute(built, report_inputs):
    text, _ = built
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == ["Headline", "Stage gains", "Verifier impact", "Errors", "Interpretability", "Reproducibility"]
    headline = text.split("## Headline")[1].split("##")[0]
    assert [line.split(" | ")[0] for line in headline.splitlines() if line.startswith("| ")][1:] == [
        "| pretrain", "| SFT", "| DPO", "| GPT-2", "| DistilGPT-2"]
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
    assert (f"| verifier best-of-N | {best} | {interval(pairs['verifier_best_of_n', 'random_of_n'])} | "
            f"{interval(pairs['verifier_best_of_n', 'greedy'])} | {interval(pairs['verifier_best_of_n', 'majority_vote'])} |"
            ) in text
    assert analysis["selectors"]["greedy"]["value"] != analysis["selectors"]["verifier_best_of_n"]["value"]  # planted
    ceiling = pairs["oracle_pass_at_n", "greedy"]
    assert ceiling["difference"] >= pairs["verifier_best_of_n", "greedy"]["difference"]  # no selector beats it
    assert f"| — | {interval(ceiling)} | — |" in text and "is the ceiling" in text
    for row in ("| random pick |", "| verifier top-3 vote |", "| answer parses |", "| reasoning: a step missing |"):
        assert row in text, row
    errors = analysis["verifier_errors"]
    assert (f"{errors['false_positives']} of the {errors['problems_with_a_correct_candidate']} problems with a correct "
            "candidate") in text
    taxonomy = text.split("## Errors")[1]
    assert "| kind | GSM8K greedy | majority vote | verifier best-of-N |" in taxonomy
    assert "Verifier's top pick, wrong (rank 1 of 4" in text and "The learned sinks take" in text
    reproducibility = text.split("## Reproducibility")[1]
    assert "| stage | config | datasets | steps | tokens | wall time (s) | final loss | hardware | world size | mixed precision |" in reproducibility
    assert "| pretrain | `recipes/configs/cpu-demo/pretrain.yaml` | `embedded-text` | 60 | 121344 |" in reproducibility
    assert "accelerate_configs/cpu_ddp.yaml" in reproducibility and "0.8086 on its training pairs" in reproducibility


def test_model_cards_change_only_when_asked_and_only_for_the_runs_own_checkpoints(report_inputs, tmp_path):
    results_dir, run = report_inputs
    cards = {stage: (run / f"{stage}_final" / "README.md").read_text() for stage in ("pretrain", "sft", "dpo", "verifier")}
    build_report.build_report(str(results_dir), str(run), str(tmp_path / "a.md"), skip_figures=True)
    assert cards == {stage: (run / f"{stage}_final" / "README.md").read_text() for stage in cards}
    build_report.build_report(str(results_dir), str(run), str(tmp_path / "b.md"), skip_figures=True, update_model_cards=True)
    card = (run / "dpo_final" / "README.md").read_text()
    assert card.startswith(cards["dpo"].rstrip()) and "## Evaluation results" in card and "| SST-2 |" in card
    assert (run / "verifier_final" / "README.md").read_text() == cards["verifier"]  # not an evaluated model
    build_report.build_report(str(results_dir), str(run), str(tmp_path / "b.md"), skip_figures=True, update_model_cards=True)
    assert (run / "dpo_final" / "README.md").read_text().count("## Evaluation results") == 1


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_missing_results_are_one_line_naming_the_command(tmp_path):
    done = _run("report/build_report.py", "--results_dir", str(tmp_path / "results"), "--output", str(tmp_path / "r.md"))
    assert done.returncode == 1 and "Traceback" not in done.stderr and not (tmp_path / "r.md").exists()
    assert f"{tmp_path / 'results' / 'run_index.json'} not found: run `python eval/evaluate_tasks.py" in done.stderr


def test_plots_cli_runs_alone_and_says_what_it_skipped(report_inputs, tmp_path, capsys):
    import plots

    assert plots.main(["--results_dir", str(report_inputs[0]), "--output_dir", str(tmp_path / "figs")]) == 0
    assert "training_loss.png: not drawn: no trainer log" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["gsm8k_em_vs_n.png"]
