"""Perplexity (token, word, byte; bits per byte) of models on WikiText-2 and TinyStories, or the embedded text.

    python eval/eval_perplexity.py --model experiments/runs/<run>/sft_final gpt2 --output_dir experiments/results

Takes the options of eval/evaluate_tasks.py (--model, --local_dir, --output_dir, --limit, --num_fewshot,
--seed, --embedded, ...) and runs only this task through the same library code, writing
perplexity_metrics.json (task_metrics.json's schema) in --output_dir.
"""

import sys

from modeling_modern_llm.evaluation.suite import main

if __name__ == "__main__":
    sys.exit(main(tasks=["perplexity"], full_results=False))
