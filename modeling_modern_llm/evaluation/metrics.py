"""The project's metrics as ``evaluate`` modules, usable offline.

``evaluate.load("accuracy")`` needs the Hub, so the metrics are defined here and exposed as loadable
folders under ``eval/metrics/<name>/<name>.py`` (``evaluate.load("eval/metrics/gsm8k_exact_match")``).
The evaluation library instantiates the same classes directly, so both paths compute identical numbers.
"""

from __future__ import annotations

import math
import re

import datasets
import evaluate

from .gsm8k_format import extract_flexible, extract_reference, extract_strict, truncate_at_stop

_CITATION = "Cobbe et al. 2021 (GSM8K); Gao et al., lm-evaluation-harness (extraction rules, word/byte perplexity)."


class GSM8KExactMatch(evaluate.Metric):
    """Exact match of GSM8K answers with lm-eval's two extractions.

    predictions: model outputs (full text); references: GSM8K ``answer`` fields (full text, ``#### N``).
    Returns ``exact_match_strict`` ("#### N") and ``exact_match_flexible`` (the last number), in [0, 1]."""

    def _info(self):
        return evaluate.MetricInfo(
            description=self.__doc__,
            citation=_CITATION,
            inputs_description="predictions: list of generations; references: list of GSM8K answers",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        gold = [extract_reference(reference) for reference in references]
        texts = [truncate_at_stop(prediction) for prediction in predictions]
        scores = {}
        for name, extract in (("exact_match_strict", extract_strict), ("exact_match_flexible", extract_flexible)):
            hits = [extract(text) == answer for text, answer in zip(texts, gold)]
            scores[name] = sum(hits) / len(hits) if hits else float("nan")
        return scores


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
        hits = [int(p) == int(r) for p, r in zip(predictions, references)]
        return {"accuracy": sum(hits) / len(hits) if hits else float("nan")}


def count_words(text: str) -> int:
    """Words as lm-eval's wikitext task counts them (``re.split(r"\\s+", ...)`` on the original text)."""
    return len(re.split(r"\s+", text))


class Perplexity(evaluate.Metric):
    """Token perplexity and tokenizer-independent figures from per-document log-likelihoods.

    predictions: the log-likelihood (nats, a negative number) of each whole document under the model;
    references: the document texts. ``num_tokens`` (optional keyword, tokens per document) adds
    ``token_perplexity``. As lm-eval's ``wikitext``: word_perplexity = exp(NLL / words),
    byte_perplexity = exp(NLL / UTF-8 bytes), bits_per_byte = NLL / bytes / ln 2, sums over the corpus."""

    def _info(self):
        return evaluate.MetricInfo(
            description=self.__doc__,
            citation=_CITATION,
            inputs_description="predictions: document log-likelihoods in nats; references: document texts",
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, num_tokens=None):
        nll = -sum(predictions)
        n_bytes = sum(len(text.encode("utf-8")) for text in references)
        n_words = sum(count_words(text) for text in references)
        if n_bytes == 0:
            raise ValueError("perplexity needs at least one non-empty document")
        scores = {
            "word_perplexity": math.exp(nll / n_words),
            "byte_perplexity": math.exp(nll / n_bytes),
            "bits_per_byte": nll / n_bytes / math.log(2),
        }
        if num_tokens is not None:
            scores["token_perplexity"] = math.exp(nll / sum(num_tokens))
        return scores
