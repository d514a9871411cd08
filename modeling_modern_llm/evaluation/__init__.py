"""The evaluation library behind ``eval/*.py`` (docs/EVALUATION.md): lm-evaluation-harness does the scoring.

- ``harness``: the evaluation command: checks the inputs, runs ``lm_eval.simple_evaluate`` on every model, files
  lm-eval's results and samples, the verifier's scores and a run index;
- ``results``: the one results schema and its views (task metrics, headline table, stage gains, GSM8K analysis);
- ``selectors``: best-of-N on the logged GSM8K samples (greedy, majority vote, verifier best-of-N, verifier-weighted
  vote, oracle pass@N) and their statistics; ``gsm8k_errors``: why an answer is wrong;
- ``verifier``: checking and running the verifier; ``metrics``: the reported metrics as ``evaluate`` modules.

The task formats live in ``modeling_modern_llm.task_formats``, the task definitions in ``eval/tasks/*.yaml``.
"""
