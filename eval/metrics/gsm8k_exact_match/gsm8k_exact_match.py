"""GSM8K exact match (lm-eval's strict "#### N" and flexible last-number extraction), as an ``evaluate`` module.

    evaluate.load("eval/metrics/gsm8k_exact_match").compute(predictions=[generation, ...], references=[gsm8k_answer, ...])

predictions are model outputs (full text), references GSM8K ``answer`` fields (full text, ending in "#### N").
Returns ``exact_match_strict`` and ``exact_match_flexible`` in [0, 1]. Defined in modeling_modern_llm.evaluation.metrics.
"""

from modeling_modern_llm.evaluation.metrics import GSM8KExactMatch  # noqa: F401  (the module's metric)
