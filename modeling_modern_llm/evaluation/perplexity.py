"""Perplexity of a causal LM on a text corpus, by sliding window, with tokenizer-independent figures.

The rows are joined with blank lines into one corpus (as transformers' perplexity guide does for
WikiText) and scored with a strided sliding window. Token perplexity depends on the tokenizer, so the
word perplexity, byte perplexity and bits per byte of lm-eval's ``wikitext`` task are reported too:
those are what compare across GPT-2 and our models.
"""

from __future__ import annotations

from typing import Iterable, Optional

from .lm import CausalLM
from .metrics import Perplexity


def select_corpus(lm: CausalLM, texts: Iterable[str], max_tokens: Optional[int] = None) -> str:
    """The rows, blank-line joined, up to the first row that brings the corpus to ``max_tokens`` tokens."""
    rows, n_tokens = [], 0
    for text in texts:
        rows.append(text)
        n_tokens += len(lm.encode(text, add_special_tokens=False))
        if max_tokens is not None and n_tokens >= max_tokens:
            break
    corpus = "\n\n".join(rows)
    if not corpus.strip():
        raise ValueError("the perplexity corpus is empty: the dataset has no text rows")
    return corpus


def evaluate_perplexity(lm: CausalLM, texts: Iterable[str], *, stride: Optional[int] = None, max_tokens: Optional[int] = None) -> dict:
    """(``{token_perplexity, word_perplexity, byte_perplexity, bits_per_byte}``, ``{num_tokens, num_bytes}``)."""
    corpus = select_corpus(lm, texts, max_tokens)
    [(loglikelihood, n_tokens)] = lm.loglikelihood_rolling([corpus], stride=stride)
    metrics = Perplexity().compute(predictions=[loglikelihood], references=[corpus], num_tokens=[n_tokens])
    return metrics, {"num_tokens": n_tokens, "num_bytes": len(corpus.encode("utf-8"))}
