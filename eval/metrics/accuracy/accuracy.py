"""Accuracy of integer labels, as an ``evaluate`` module that works offline.

    evaluate.load("eval/metrics/accuracy").compute(predictions=[1, 0], references=[1, 1])  # {"accuracy": 0.5}

Defined in modeling_modern_llm.evaluation.metrics.
"""

from modeling_modern_llm.evaluation.metrics import Accuracy  # noqa: F401  (the module's metric)
