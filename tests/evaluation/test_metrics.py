"""The reported metrics load offline through `evaluate.load(<folder>)`, and equal lm-eval's own on a real run."""

from pathlib import Path

import evaluate

from modeling_modern_llm.evaluation import results

METRICS = Path(__file__).resolve().parents[2] / "eval" / "metrics"


def test_gsm8k_exact_match_takes_solutions_as_lm_eval_returns_them():
    metric = evaluate.load(str(METRICS / "gsm8k_exact_match"))
    predictions = ["3*4=12\n#### 12", "It costs $1,000.", "no idea", "#### 5 then 4"]
    references = ["3*4=<<3*4=12>>12\n#### 12", "#### 1,000", "#### 3", "#### 5"]
    assert metric.compute(predictions=predictions, references=references) == {
        "exact_match_strict": 0.5,
        "exact_match_flexible": 0.5,
    }


def test_accuracy_and_combine():
    accuracy = evaluate.load(str(METRICS / "accuracy"))
    assert accuracy.compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0]) == {"accuracy": 0.5}
    assert evaluate.combine([str(METRICS / "accuracy")]).compute(predictions=[0, 1], references=[0, 1]) == {
        "accuracy": 1.0
    }


def test_reported_numbers_equal_lm_evals_example_by_example(evaluated):
    """SST-2 accuracy and GSM8K greedy exact match, computed by the `evaluate` modules from the logged samples,
    equal lm-eval's `acc` and `exact_match` (in its results file and in each logged sample)."""
    run, checked = results.load_run(evaluated), 0
    for model in (m for m in run.models if m.results is not None):
        for task, values in model.results["results"].items():
            if "acc,none" in values:
                ours = results.accuracy(model, task)
                assert ours["value"] == values["acc,none"] and ours["stderr"] == values["acc_stderr,none"], task
                checked += 1
        task = model.find_task(results.SAMPLED_GSM8K_TASKS)
        items = results.problems(model, task)
        greedy = results.greedy_task(model, task)
        ours = results.selector_values(model, task, items)["greedy"]
        assert ours["value"] == model.results["results"][greedy]["exact_match,flexible-extract"]
        metric = evaluate.load(str(METRICS / "gsm8k_exact_match"))
        for sample in model.samples(greedy):  # the first filter's sample: strict-match
            mine = metric.compute(predictions=sample["resps"][0], references=[sample["doc"]["answer"]])[
                "exact_match_strict"
            ]
            assert mine == sample["exact_match"]
        checked += 1
    assert checked >= 6  # pretrain and SFT, each 0- and 2-shot SST-2 and greedy GSM8K
