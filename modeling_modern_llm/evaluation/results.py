"""One results schema, and every view of it, computed when read. The report reads results through this module only.

The schema is what `eval/evaluate_tasks.py` writes into its output folder (docs/DESIGN.md):
- `run_index.json`: the command, seeds, limit, requested tasks, unavailable tasks with their reasons, and one entry per
  model (`name`, `path`, `stage`, `status`, `dir`, `chat_template`, `tasks`);
- `<dir>/results_<time>.json` and `<dir>/samples_<task>_<time>.jsonl`: lm-eval's own files for that model;
- `<dir>/verifier_scores_<task>.json`: the verifier's score of every sampled solution of a sampled GSM8K task.

Views (`write_views` also writes them as files for other tools; nothing reads them back):
- `task_records` -> task_metrics.json: every (model, task) with lm-eval's metrics, standard errors, n and protocol;
- `headline` -> baseline_comparison.json: per model bits per byte, SST-2 accuracy and GSM8K exact match of every
  best-of-N selector, each with its standard error and n;
- `stage_gains` -> stage_gains.csv: the headline numbers stage by stage and the change from the previous stage;
- `gsm8k_analysis` -> gsm8k_analysis.json: best-of-N on the sampled GSM8K task of the policy the verifier was trained
  on (`analysed_policy`), the paired bootstrap intervals of the verifier's selectors against a random pick, greedy and
  majority vote, the verifier's ranking quality, its false positives and negatives, the error taxonomy of greedy's and
  the selectors' wrong answers, the calculator's own effect, examples, every problem's candidates.
The reported SST-2 accuracy and GSM8K exact matches are computed from the logged samples with the `evaluate`
modules (`metrics.py`); tests/evaluation checks that they equal lm-eval's own numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from modeling_modern_llm.errors import InputFileError
from modeling_modern_llm.files import atomic_write_json, atomic_write_text
from modeling_modern_llm.stages import BASELINES, POLICY_STAGES, get_stage, infer_stage
from modeling_modern_llm.task_formats import extract_flexible, gsm8k_reference

from . import selectors
from .gsm8k_errors import COARSE_TAXONOMY, TAXONOMY, classify_error, coarse_kind
from .metrics import Accuracy, GSM8KExactMatch

RUN_INDEX = "run_index.json"
EVALUATE = (
    "python eval/evaluate_tasks.py --model <run>/pretrain_final <run>/sft_final <run>/dpo_final --output_dir {dir}"
)
# The headline measures: (column, the tasks that can supply it, first found wins; the `_chat` variants count as theirs).
PERPLEXITY_TASKS, SST2_TASKS = ("embedded_text", "wikitext", "tinystories"), ("embedded_sst2", "sst2")
# With the calculator first: a model that ran both decodings is reported (headline, analysis) with the calculator, and
# the analysis compares it with the other decoding on the same problems (`calculator_effect`).
SAMPLED_GSM8K_TASKS = (
    "embedded_gsm8k_sampled_calculator",
    "embedded_gsm8k_sampled",
    "gsm8k_sampled_calculator",
    "gsm8k_sampled",
)
GREEDY_GSM8K_TASKS = ("embedded_gsm8k_calculator", "embedded_gsm8k", "gsm8k_calculator", "gsm8k")  # the same order
CALCULATOR_SUFFIX = "_calculator"  # a GSM8K task's twin with the calculator at generation (eval/tasks/*_calculator*)
SELECTOR_COLUMNS = {
    "greedy": "GSM8K greedy",
    "random_of_n": "random pick",
    "majority_vote": "majority vote",
    "verifier_best_of_n": "verifier best-of-N",
    "verifier_weighted_vote": "verifier-weighted vote",
    "verifier_top_k_vote": f"verifier top-{selectors.TOP_K} vote",
    "oracle_pass_at_n": "pass@N",
}
COLUMNS = ("bits per byte", "SST-2", *SELECTOR_COLUMNS.values())


def task_key(task: str) -> str:
    """What compares across prompt formats: a task without its `_chat` suffix."""
    return task.removesuffix("_chat")


def read_samples(model_dir: Path, task: str) -> list[dict]:
    """lm-eval's logged samples of one task, one per document (the first filter's), in document order."""
    pattern = re.compile(
        rf"samples_{re.escape(task)}_\d{{4}}-\d\d-\d\dT[\d.-]+\.jsonl"
    )  # lm-eval's date id after the task
    files = sorted(p for p in model_dir.glob(f"samples_{task}_*.jsonl") if pattern.fullmatch(p.name))
    if not files:
        return []
    docs = {}
    with files[-1].open(encoding="utf-8") as handle:
        for line in handle:
            sample = json.loads(line)
            docs.setdefault(sample["doc_id"], sample)
    return [docs[doc_id] for doc_id in sorted(docs)]


@dataclass
class ModelRun:
    """One model of the run: its run-index entry and lm-eval's results (None when it was unavailable)."""

    entry: dict
    directory: Path
    results: dict | None = None
    _samples: dict = field(default_factory=dict, repr=False)

    name = property(lambda self: self.entry["name"])
    stage = property(lambda self: self.entry["stage"])
    status = property(lambda self: self.entry["status"])

    @property
    def display_name(self) -> str:
        if self.stage in POLICY_STAGES:
            return get_stage(self.stage).display_name
        return BASELINES.get(self.name, self.name)

    def samples(self, task: str) -> list[dict]:
        if task not in self._samples:
            self._samples[task] = read_samples(self.directory, task)
        return self._samples[task]

    def verifier_scores(self, task: str) -> dict[int, list[float]] | None:
        path = self.directory / f"verifier_scores_{task}.json"
        if not path.is_file():
            return None
        return {
            int(doc_id): scores for doc_id, scores in json.loads(path.read_text(encoding="utf-8"))["scores"].items()
        }

    def find_task(self, candidates: tuple[str, ...]) -> str | None:
        """The first of `candidates` (or its `_chat` variant) this model ran."""
        ran = list((self.results or {}).get("results", {}))
        return next((task for key in candidates for task in ran if task_key(task) == key), None)


@dataclass
class EvaluationRun:
    directory: Path
    index: dict
    models: list[ModelRun]

    @property
    def command(self) -> str:
        return self.index["command"]


def load_run(directory: str | Path) -> EvaluationRun:
    """The run in `directory`; InputFileError naming the command that makes it when it is missing or malformed."""
    directory = Path(directory)
    path = directory / RUN_INDEX
    if not path.is_file():
        raise InputFileError(f"{path} not found: run `{EVALUATE.format(dir=directory)}` first")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        models = []
        for entry in index["models"]:
            files = sorted((directory / entry.get("dir", "-")).glob("results_*.json"))
            results = json.loads(files[-1].read_text(encoding="utf-8")) if entry["status"] == "ok" and files else None
            models.append(ModelRun(entry, directory / entry.get("dir", "-"), results))
    except (ValueError, KeyError, TypeError) as error:
        raise InputFileError(
            f"{path} or a results file beside it is malformed ({error!r}); rerun the evaluation"
        ) from None
    return EvaluationRun(directory, index, models)


# ---------------------------------------------------------------- numbers with their standard error and n
def _value(value: float, stderr: float | None, n: int, **source) -> dict:
    clean = lambda x: None if x is None or isinstance(x, str) or math.isnan(x) else float(x)  # noqa: E731
    return {"value": float(value), "stderr": clean(stderr), "n": n, **source}


@cache
def _metric(name: str):
    return {"accuracy": Accuracy, "gsm8k": GSM8KExactMatch}[name]()


def bits_per_byte(model: ModelRun, task: str) -> dict:
    """lm-eval's bits per byte, with the standard error of that ratio over documents (delta method; lm-eval gives none)."""
    pairs = [sample["bits_per_byte"] for sample in model.samples(task)]
    bits, sizes = [-ll / math.log(2) for ll, _ in pairs], [size for _, size in pairs]
    ratio, n = sum(bits) / sum(sizes), len(pairs)
    stderr = (
        math.sqrt(sum((b - ratio * s) ** 2 for b, s in zip(bits, sizes)) / (n * (n - 1))) / (sum(sizes) / n)
        if n > 1
        else None
    )
    return _value(model.results["results"][task]["bits_per_byte,none"], stderr, n, task=task)


def accuracy(model: ModelRun, task: str) -> dict:
    """Multiple-choice accuracy from the logged log-likelihoods (the likeliest choice; ties to the first), via `evaluate`."""
    samples = model.samples(task)
    predictions = [
        max(range(len(s["filtered_resps"])), key=lambda i, s=s: float(s["filtered_resps"][i][0])) for s in samples
    ]
    references = [int(s["target"]) for s in samples]
    hits = [float(p == r) for p, r in zip(predictions, references)]
    return _value(
        _metric("accuracy").compute(predictions=predictions, references=references)["accuracy"],
        selectors.standard_error(hits),
        len(samples),
        task=task,
    )


def greedy_value(model: ModelRun, task: str) -> dict:
    """Exact match of a greedy GSM8K task's solutions (the final answer, flexible-extract), via `evaluate`."""
    samples = model.samples(task)
    predictions, references = [s["resps"][0][0] for s in samples], [s["doc"]["answer"] for s in samples]
    flags = [float(extract_flexible(p) == gsm8k_reference(r)) for p, r in zip(predictions, references)]
    em = _metric("gsm8k").compute(predictions=predictions, references=references)["exact_match_flexible"]
    return _value(em, selectors.standard_error(flags), len(samples), task=task)


def greedy_task(model: ModelRun, sampled_task: str) -> str | None:
    """The greedy task a sampled task names (`metadata.greedy_task`), if this model ran it."""
    name = (model.results["configs"][sampled_task].get("metadata") or {}).get("greedy_task")
    return name if name in model.results["results"] else None


def problems(model: ModelRun, sampled_task: str) -> list[selectors.Problem]:
    """The sampled task's problems with their N solutions, the greedy task's solution and the verifier's scores."""
    greedy_name = greedy_task(model, sampled_task)
    greedy = {s["doc"]["question"]: s["resps"][0][0] for s in model.samples(greedy_name)} if greedy_name else {}
    scores = model.verifier_scores(sampled_task)
    return [
        selectors.Problem(
            s["doc"]["question"],
            s["doc"]["answer"],
            greedy.get(s["doc"]["question"]),
            list(s["resps"][0]),
            None if scores is None else scores.get(s["doc_id"]),
        )
        for s in model.samples(sampled_task)
    ]


def uses_calculator(model: ModelRun, task: str) -> bool:
    """Whether a task generated with the calculator (`calculator: true` in its generation_kwargs)."""
    return bool((model.results["configs"][task].get("generation_kwargs") or {}).get("calculator"))


def selector_values(model: ModelRun, task: str, items: list[selectors.Problem]) -> dict[str, dict]:
    """Exact match of every available selector, its standard error, n and the task it comes from. A selector that picks
    a solution is scored by the `evaluate` module; `random_of_n` is the mean of its per-problem fractions."""
    values = {}
    for selector in selectors.available_selectors(items):
        source = greedy_task(model, task) if selector == "greedy" else task
        flags = selectors.correct(items, selector)
        if selector == "random_of_n":
            em = sum(flags) / len(flags)
        else:
            chosen = [selectors.choose(p, selector) for p in items]
            em = _metric("gsm8k").compute(predictions=chosen, references=[p.answer for p in items])[
                "exact_match_flexible"
            ]
        values[selector] = _value(em, selectors.standard_error(flags), len(items), task=source)
    return values


# ---------------------------------------------------------------- the views
def task_records(run: EvaluationRun) -> list[dict]:
    """Every (model, task): lm-eval's metrics with standard errors, n, the protocol; or the reason it did not run."""
    records = []
    for model in run.models:
        base = {"model": model.name, "model_path": model.entry["path"], "stage": model.stage}
        if model.results is None:
            records.append({**base, "task": None, "status": model.status})
            continue
        for task, values in model.results["results"].items():
            metrics = {
                key.removesuffix(",none"): {"value": value, "stderr": values.get(key.replace(",", "_stderr,", 1))}
                for key, value in values.items()
                if "," in key and "_stderr," not in key
            }
            config = model.results["configs"].get(task, {})
            records.append(
                {
                    **base,
                    "task": task,
                    "status": "ok",
                    "n": model.results["n-samples"].get(task, {}).get("effective"),
                    "metrics": metrics,
                    "protocol": {
                        "num_fewshot": model.results.get("n-shot", {}).get(task),
                        "repeats": config.get("repeats"),
                        "chat_template": model.entry.get("chat_template"),
                        "limit": run.index.get("limit"),
                        "generation_kwargs": config.get("generation_kwargs"),
                    },
                    "source": str(model.directory.relative_to(run.directory) / "results_*.json"),
                }
            )
        records += [
            {**base, "task": task, "status": reason} for task, reason in run.index.get("unavailable_tasks", {}).items()
        ]
    return records


def headline(run: EvaluationRun) -> list[dict]:
    """One row per model: `{"model", "display_name", "stage", "status", "cells": {column: value | None}}`."""
    rows = []
    for model in run.models:
        cells = dict.fromkeys(COLUMNS)
        if model.results is not None:
            if task := model.find_task(PERPLEXITY_TASKS):
                cells["bits per byte"] = bits_per_byte(model, task)
            if task := model.find_task(SST2_TASKS):
                cells["SST-2"] = accuracy(model, task)
            if task := model.find_task(SAMPLED_GSM8K_TASKS):
                for selector, value in selector_values(model, task, problems(model, task)).items():
                    cells[SELECTOR_COLUMNS[selector]] = value
            elif task := model.find_task(GREEDY_GSM8K_TASKS):  # a model evaluated without samples (--sampled_stages)
                cells[SELECTOR_COLUMNS["greedy"]] = greedy_value(model, task)
        rows.append(
            {
                "model": model.name,
                "display_name": model.display_name,
                "stage": model.stage,
                "status": model.status,
                "cells": cells,
            }
        )
    return rows


def stage_gains(run: EvaluationRun, rows: list[dict] | None = None) -> list[dict]:
    """The headline numbers of the training stages in order (the first model of each stage stands for it), and each
    change from the previous stage that has the same measure, with the standard error of that difference as if the
    two were independent: sqrt(se1^2 + se2^2) (the stages answer the same documents, so this errs on the wide side)."""
    by_stage = {}
    for row in rows or headline(run):
        if row["stage"] in POLICY_STAGES and row["status"] == "ok":
            by_stage.setdefault(row["stage"], row)
    gains = []
    for column in COLUMNS:
        previous = None
        for stage in POLICY_STAGES:
            if stage in by_stage and (cell := by_stage[stage]["cells"][column]) is not None:
                delta = None if previous is None else cell["value"] - previous["value"]
                errors = (
                    None
                    if previous is None or None in (cell["stderr"], previous["stderr"])
                    else (cell["stderr"], previous["stderr"])
                )
                gains.append(
                    {
                        "measure": column,
                        "stage": stage,
                        "task": cell["task"],
                        "value": cell["value"],
                        "stderr": cell["stderr"],
                        "n": cell["n"],
                        "delta_vs_previous_stage": delta,
                        "delta_stderr": errors and math.sqrt(errors[0] ** 2 + errors[1] ** 2),
                    }
                )
                previous = cell
    return gains


def _candidate(problem: selectors.Problem, index: int) -> dict:
    text = problem.candidates[index]
    return {
        "text": text,
        "answer": extract_flexible(text),
        "correct": extract_flexible(text) == problem.reference,
        "verifier_score": None if problem.scores is None else problem.scores[index],
    }


def analysed_policy(run: EvaluationRun) -> tuple[ModelRun, str] | None:
    """The model the GSM8K analysis is about, and its sampled GSM8K task: the policy the verifier was trained on (the
    run index's `verifier_policy`, by path, then by stage), else the verifier's default policy stage (DPO), else the
    most trained policy before it, else the most trained model; None if no model ran a sampled GSM8K task. A later
    stage (GRPO, say) never takes it over: it has its own rows in the headline and stage-gains tables."""
    ran = [(m, t) for m in run.models if m.results is not None and (t := m.find_task(SAMPLED_GSM8K_TASKS))]
    if not ran:
        return None
    rank = {stage: i for i, stage in enumerate(POLICY_STAGES)}
    policy = run.index.get("verifier_policy")
    if policy:
        resolved = Path(policy).resolve()
        for pair in ran:
            if Path(pair[0].entry["path"]).resolve() == resolved:
                return pair
    default = get_stage("verifier").previous
    for stage in (infer_stage(policy) if policy else None, default):
        for pair in ran:
            if stage and pair[0].stage == stage:
                return pair
    before = [pair for pair in ran if rank.get(pair[0].stage, len(rank)) < rank.get(default, len(rank))]
    return max(before or ran, key=lambda pair: rank.get(pair[0].stage, -1))


def _comparison(treatment: str, baseline: str, items: list[selectors.Problem]) -> dict:
    return {
        "treatment": treatment,
        "baseline": baseline,
        **selectors.paired_bootstrap(selectors.correct(items, baseline), selectors.correct(items, treatment)),
    }


def comparison_pairs(values: dict) -> list[tuple[str, str]]:
    """(treatment, baseline): each verifier selector against a random pick, greedy and majority vote; majority vote
    against greedy and a random pick; pass@N against greedy (the ceiling)."""
    pairs = [(t, b) for t in selectors.VERIFIER_SELECTORS for b in ("random_of_n", "greedy", "majority_vote")]
    pairs += [("majority_vote", "greedy"), ("majority_vote", "random_of_n"), ("oracle_pass_at_n", "greedy")]
    return [(t, b) for t, b in pairs if t in values and b in values]


def _ranked(problem: selectors.Problem, order: list[int], index: int) -> dict:
    """A candidate with its problem, its rank by verifier score (1 = top) and the top pick's score."""
    return {
        "question": problem.question,
        "reference": problem.reference,
        "rank": order.index(index) + 1,
        "n_candidates": len(order),
        "top_score": problem.scores[order[0]],
        **_candidate(problem, index),
    }


def verifier_mistakes(items: list[selectors.Problem], n_examples: int) -> dict:
    """False positives: problems whose top-scored candidate is wrong although one of the candidates is correct (a
    problem with no correct candidate is none). False negatives: the correct candidates ranked below such a wrong top
    pick (a problem whose top pick is correct has none). Counts, and examples: the most confident false positives, and
    per false-positive problem its best-ranked correct candidate, the lowest-ranked first."""
    positives, negatives, best_correct, with_correct = [], 0, [], 0
    for p in items:
        flags = selectors.candidate_correct(p)
        if not any(flags):
            continue
        with_correct += 1
        order = selectors.verifier_order(p)
        if flags[order[0]]:
            continue
        positives.append(_ranked(p, order, order[0]))
        below = [i for i in order if flags[i]]
        negatives += len(below)
        best_correct.append(_ranked(p, order, below[0]))
    return {
        "counts": {
            "false_positives": len(positives),
            "problems_with_a_correct_candidate": with_correct,
            "problems_without_a_correct_candidate": len(items) - with_correct,
            "false_negatives": negatives,
        },
        "false_positives": sorted(positives, key=lambda c: -c["verifier_score"])[:n_examples],
        "false_negatives": sorted(best_correct, key=lambda c: -c["rank"])[:n_examples],
    }


def error_taxonomy(items: list[selectors.Problem], values: dict) -> dict:
    """Per selector that picks a solution (greedy, majority vote, the verifier's best-of-N): how many of its answers are
    wrong and the kind of each (gsm8k_errors.TAXONOMY), with the first example of each kind."""
    by_selector, examples = {}, {}
    for selector in ("greedy", "majority_vote", "verifier_best_of_n"):
        if selector not in values:
            continue
        counts = dict.fromkeys(TAXONOMY, 0)
        for p, ok in zip(items, selectors.correct(items, selector)):
            if not ok:
                solution = selectors.choose(p, selector)
                kind = classify_error(solution, p.question)
                counts[kind] += 1
                examples.setdefault(
                    kind,
                    {
                        "selector": selector,
                        "question": p.question,
                        "reference": p.reference,
                        "text": solution,
                        "answer": extract_flexible(solution),
                    },
                )
        by_selector[selector] = {"n_wrong": sum(counts.values()), "counts": counts}
    return {
        "kinds": list(TAXONOMY),
        "by_selector": by_selector,
        "examples": {kind: examples[kind] for kind in TAXONOMY if kind in examples},
    }


def calculator_twin(model: ModelRun, task: str) -> str | None:
    """The task this model ran that is `task` with the calculator switched (on if off, off if on), if any."""
    key = task_key(task)
    twin = key.removesuffix(CALCULATOR_SUFFIX) if key.endswith(CALCULATOR_SUFFIX) else key + CALCULATOR_SUFFIX
    return model.find_task((twin,))


def calculator_effect(model: ModelRun, task: str) -> dict | None:
    """Exact match without and with the calculator on the problems both decodings answered, and the paired
    difference (with - without): every selector both sampled tasks allow, or greedy alone when only the other
    decoding's greedy task ran. None when the model ran one decoding only."""

    def sampled(name: str) -> dict:
        return {p.question: p for p in problems(model, name)}

    def greedy_only(name: str) -> dict:
        return {
            s["doc"]["question"]: selectors.Problem(s["doc"]["question"], s["doc"]["answer"], s["resps"][0][0], [])
            for s in model.samples(name)
        }

    if twin := calculator_twin(model, task):
        read = sampled
    elif (greedy := greedy_task(model, task)) and (twin := calculator_twin(model, greedy)):
        task, read = greedy, greedy_only
    else:
        return None
    on, off = (task, twin) if uses_calculator(model, task) else (twin, task)
    with_calculator, without = read(on), read(off)
    shared = [question for question in without if question in with_calculator]
    before, after = [without[q] for q in shared], [with_calculator[q] for q in shared]
    rows = []
    for selector in [s for s in selectors.available_selectors(before) if s in selectors.available_selectors(after)]:
        off_flags, on_flags = selectors.correct(before, selector), selectors.correct(after, selector)
        rows.append(
            {
                "selector": selector,
                "without": sum(off_flags) / len(off_flags),
                "with": sum(on_flags) / len(on_flags),
                **selectors.paired_bootstrap(off_flags, on_flags),
            }
        )
    return {"tasks": {"without": off, "with": on}, "n_problems": len(shared), "rows": rows}


def gsm8k_analysis(run: EvaluationRun, n_examples: int = 3) -> dict | None:
    """Best-of-N on the sampled GSM8K task of `analysed_policy`; its greedy solutions come from the greedy task of the
    same decoding (`metadata.greedy_task`). None if no model ran a sampled GSM8K task."""
    chosen = analysed_policy(run)
    if chosen is None:
        return None
    model, task = chosen
    items = problems(model, task)
    values = selector_values(model, task, items)
    scored = "verifier_best_of_n" in values
    final = "verifier_best_of_n" if scored else "greedy" if "greedy" in values else "majority_vote"
    coarse = dict.fromkeys(COARSE_TAXONOMY, 0)
    for p, ok in zip(items, selectors.correct(items, final)):
        if not ok:
            coarse[coarse_kind(classify_error(selectors.choose(p, final), p.question))] += 1
    mistakes = (
        verifier_mistakes(items, n_examples)
        if scored
        else {"counts": None, "false_positives": [], "false_negatives": []}
    )
    sizes = selectors.sample_sizes(max(len(p.candidates) for p in items))
    percent = lambda selector: 100 * values[selector]["value"] if selector in values else None  # noqa: E731
    return {
        "command": run.command,
        "model": model.name,
        "stage": model.stage,
        "task": task,
        "greedy_task": greedy_task(model, task),
        "calculator": uses_calculator(model, task),
        "verifier_policy": run.index.get("verifier_policy"),
        "top_k": selectors.TOP_K,
        "n_problems": len(items),
        "n_samples": max(len(p.candidates) for p in items),
        "em_greedy": percent("greedy"),
        "em_verifier": percent("verifier_best_of_n"),  # in percent, as before
        "selectors": values,
        "comparisons": [_comparison(t, b, items) for t, b in comparison_pairs(values)],
        "verifier_ranking": {
            "all": selectors.verifier_ranking(items),
            "parsed": selectors.verifier_ranking(items, parsed_only=True),
        }
        if scored
        else None,
        "verifier_errors": mistakes["counts"],
        "false_positives": mistakes["false_positives"],
        "false_negatives": mistakes["false_negatives"],
        "taxonomy_of": final,
        "taxonomy": coarse,
        "error_taxonomy": error_taxonomy(items, values),
        "calculator_effect": calculator_effect(model, task),
        "em_vs_n": {"sizes": sizes, "exact_match": selectors.exact_match_curve(items, sizes)},
        "problems": [
            {
                "question": p.question,
                "reference": p.reference,
                "greedy": p.greedy,
                "greedy_answer": None if p.greedy is None else extract_flexible(p.greedy),
                "majority_answer": extract_flexible(selectors.choose(p, "majority_vote")),
                "candidates": [_candidate(p, i) for i in range(len(p.candidates))],
            }
            for p in items
        ],
    }


STAGE_GAINS_COLUMNS = ("measure", "stage", "task", "value", "stderr", "n", "delta_vs_previous_stage", "delta_stderr")


def write_views(run: EvaluationRun, directory: str | Path) -> list[Path]:
    """task_metrics.json, baseline_comparison.json, stage_gains.csv and (with sampled GSM8K) gsm8k_analysis.json."""
    directory, rows = Path(directory), headline(run)
    views = {
        "task_metrics.json": {"command": run.command, "records": task_records(run)},
        "baseline_comparison.json": {"command": run.command, "columns": list(COLUMNS), "rows": rows},
    }
    if (analysis := gsm8k_analysis(run)) is not None:
        views["gsm8k_analysis.json"] = analysis
    for name, content in views.items():
        atomic_write_json(str(directory / name), content)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=STAGE_GAINS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(stage_gains(run, rows))
    atomic_write_text(str(directory / "stage_gains.csv"), table.getvalue())
    return [directory / name for name in (*views, "stage_gains.csv")]


def format_value(cell: dict | None, percent: bool) -> str:
    """ "77.0 ± 4.2 (n=100)" for a fraction in percent, "1.234 ± 0.012 (n=100)" otherwise; "—" when absent."""
    if cell is None:
        return "—"
    scale, digits = (100, 1) if percent else (1, 3)
    stderr = "" if cell["stderr"] is None else f" ± {scale * cell['stderr']:.{digits}f}"
    return f"{scale * cell['value']:.{digits}f}{stderr} (n={cell['n']})"


def summary_table(run: EvaluationRun) -> str:
    """The headline rows as plain text (printed at the end of an evaluation)."""
    lines = ["model | " + " | ".join(COLUMNS)]
    for row in headline(run):
        cells = (
            [format_value(row["cells"][c], c != "bits per byte") for c in COLUMNS]
            if row["status"] == "ok"
            else [row["status"]]
        )
        lines.append(f"{row['display_name']} ({row['model']}) | " + " | ".join(cells))
    return "\n".join(lines)
