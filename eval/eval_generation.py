"""Greedy and sampled completions of a few prompts by each model, for reading: eval/evaluate_tasks.py with the
`generation` and `generation_sampled` tasks (eval/tasks/generation.yaml lists the prompts).

    python eval/eval_generation.py --model experiments/runs/<run>/sft_final gpt2 --output_dir experiments/generations

The completions are lm-eval's logged samples, <output_dir>/<model>/samples_generation*_<time>.jsonl (`resps`); every
option of eval/evaluate_tasks.py applies (--chat_template prompts SFT/DPO models through their template).
"""

import sys

from evaluate_tasks import TASKS, main, run_command

if __name__ == "__main__":
    sys.exit(run_command(main, [TASKS], tasks=["generation", "generation_sampled"]))
