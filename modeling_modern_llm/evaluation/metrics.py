"""The project's reported metrics as ``evaluate`` modules, usable offline.

``evaluate.load("accuracy")`` needs the Hub, so the metrics are defined here and exposed as loadable folders
(``evaluate.load("eval/metrics/gsm8k_exact_match")``). The results views (``results.py``) compute the reported SST-2
accuracy and every GSM8K exact match with these classes from lm-eval's logged samples; tests/evaluation checks
that they equal lm-eval's own ``acc`` and ``exact_match`` example by example.
"""

from __future__ import annotations

import datasets
import evaluate

from modeling_modern_llm.task_formats import extract_flexible, extract_strict, gsm8k_reference


def _mean(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


class GSM8KExactMatch(evaluate.Metric):
    """Exact match of GSM8K solutions with lm-eval's two extractions and its normalisation.

    predictions: solutions (full text, as lm-eval's generate_until returns them); references: GSM8K ``answer``
    fields (full text, ``#### N``). Returns ``exact_match_strict`` (the "#### N" answer) and
    ``exact_match_flexible`` (the last number), in [0, 1]."""

    def _info(self):
        return evaluate.MetricInfo(
            description=self.__doc__,
            citation="Cobbe et al. 2021 (GSM8K); lm-evaluation-harness tasks/gsm8k/gsm8k.yaml (extraction rules).",
            inputs_description="predictions: list of solutions; references: list of GSM8K answers",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        gold = [gsm8k_reference(reference) for reference in references]
        return {
            f"exact_match_{name}": _mean(
                [extract(prediction) == answer for prediction, answer in zip(predictions, gold)]
            )
            for name, extract in (("strict", extract_strict), ("flexible", extract_flexible))
        }


class Accuracy(evaluate.Metric):
    """Fraction of predicted labels equal to the references (integer class ids)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=self.__doc__,
            citation="",
            inputs_description="predictions: list of int labels; references: list of int labels",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": _mean([int(p) == int(r) for p, r in zip(predictions, references)])}
