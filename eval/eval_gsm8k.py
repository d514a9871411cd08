"""GSM8K exact match: greedy, majority vote, verifier best-of-N and oracle pass@N, plus the verifier analysis.

    python eval/eval_gsm8k.py --model experiments/runs/<run>/dpo_final --verifier experiments/runs/<run>/verifier_final --n_samples 8 --output_dir experiments/results

Takes the options of eval/evaluate_tasks.py (--model, --local_dir, --output_dir, --limit, --num_fewshot,
--seed, --embedded, ...) and runs only this task through the same library code, writing
gsm8k_metrics.json (task_metrics.json's schema) and gsm8k_analysis.json/.md in --output_dir.
"""

import sys

from modeling_modern_llm.evaluation.suite import main

if __name__ == "__main__":
    sys.exit(main(tasks=["gsm8k"], full_results=False))
