"""SST-2 accuracy, 0-shot and k-shot, by label-word log-likelihood (lm-eval's prompt).

    python eval/eval_sst2.py --model experiments/runs/<run>/sft_final gpt2 --output_dir experiments/results

Takes the options of eval/evaluate_tasks.py (--model, --local_dir, --output_dir, --limit, --num_fewshot,
--seed, --embedded, ...) and runs only this task through the same library code, writing
sst2_metrics.json (task_metrics.json's schema) in --output_dir.
"""

import sys

from modeling_modern_llm.evaluation.suite import main

if __name__ == "__main__":
    sys.exit(main(tasks=["sst2"], full_results=False))
