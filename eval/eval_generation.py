"""Greedy and sampled completions of a few prompts by each model, for reading (generations.json).

    python eval/eval_generation.py --model experiments/runs/<run>/sft_final gpt2 --output_dir experiments/results

Takes the options of eval/evaluate_tasks.py (--model, --local_dir, --output_dir, --limit, --num_fewshot,
--seed, --embedded, ...) and runs only this task through the same library code, writing
generations.json in --output_dir.
"""

import sys

from modeling_modern_llm.evaluation.suite import main

if __name__ == "__main__":
    sys.exit(main(tasks=["generation"], full_results=False))
