"""The evaluation library behind ``eval/*.py`` (docs/EVALUATION.md).

- ``lm``: ``CausalLM``, one wrapper around any HF causal LM with lm-eval's three request types;
- ``perplexity``, ``sst2``, ``gsm8k``: the tasks (``gsm8k_format``: prompt and answer extraction, shared with
  the verifier recipe); ``verifier_analysis``: reranking gain, error taxonomy, false positives/negatives;
- ``metrics``: the metrics as ``evaluate`` modules; ``results``: records and the result files;
- ``suite``: ``EvalArguments`` and ``run_suite``, the command line of every eval script.

Submodules are imported on demand, so ``gsm8k_format`` stays light for the training recipes.
"""
