"""Word perplexity, byte perplexity and bits per byte (lm-eval's wikitext figures), plus token perplexity.

    evaluate.load("eval/metrics/perplexity").compute(predictions=[doc_loglikelihood_nats, ...], references=[doc_text, ...],
                                                     num_tokens=[doc_tokens, ...])

predictions are per-document log-likelihoods in nats (as lm-eval's ``loglikelihood_rolling`` returns), references the
document texts; ``num_tokens`` is optional. Defined in modeling_modern_llm.evaluation.metrics.
"""

from modeling_modern_llm.evaluation.metrics import Perplexity  # noqa: F401  (the module's metric)
