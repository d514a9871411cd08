"""The project's metrics load offline through ``evaluate.load(<folder>)`` and compute the documented values."""

import math
from pathlib import Path

import evaluate
import pytest

METRICS = Path(__file__).resolve().parents[2] / "eval" / "metrics"


def test_gsm8k_exact_match_takes_full_texts():
    metric = evaluate.load(str(METRICS / "gsm8k_exact_match"))
    predictions = ["3*4=12\n#### 12", "It costs $1,000.", "no idea", "#### 5\n\nQuestion: 2+2?\nAnswer: #### 4"]
    references = ["3*4=<<3*4=12>>12\n#### 12", "#### 1000", "#### 3", "#### 5"]
    scores = metric.compute(predictions=predictions, references=references)
    assert scores == {"exact_match_strict": 0.5, "exact_match_flexible": 0.75}


def test_accuracy_and_combine():
    accuracy = evaluate.load(str(METRICS / "accuracy"))
    assert accuracy.compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0]) == {"accuracy": 0.5}
    combined = evaluate.combine([str(METRICS / "accuracy")])
    assert combined.compute(predictions=[0, 1], references=[0, 1]) == {"accuracy": 1.0}


def test_perplexity_figures_follow_lm_eval_wikitext():
    metric = evaluate.load(str(METRICS / "perplexity"))
    texts = ["the cat sat", "on the mat\n"]  # 3 words + 4 ("on the mat" and the trailing empty split) = 7, 22 bytes
    loglikelihoods = [-6.0, -8.0]
    scores = metric.compute(predictions=loglikelihoods, references=texts, num_tokens=[4, 3])
    assert scores["word_perplexity"] == pytest.approx(math.exp(14 / 7))
    assert scores["byte_perplexity"] == pytest.approx(math.exp(14 / 22))
    assert scores["bits_per_byte"] == pytest.approx(14 / 22 / math.log(2))
    assert scores["token_perplexity"] == pytest.approx(math.exp(2.0))
