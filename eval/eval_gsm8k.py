"""GSM8K exact match: greedy, and best-of-N over sampled solutions (majority vote, verifier best-of-N, verifier-weighted
vote, oracle pass@N): eval/evaluate_tasks.py with the GSM8K tasks chosen.

    python eval/eval_gsm8k.py --model experiments/runs/<run>/dpo_final --verifier experiments/runs/<run>/verifier_final \
        --n_samples 8 --output_dir experiments/results

Runs lm-eval's `gsm8k` and our `gsm8k_sampled` (add --embedded for `embedded_gsm8k` and `embedded_gsm8k_sampled`);
every option of eval/evaluate_tasks.py applies.
"""

import sys

from evaluate_tasks import TASKS, main, run_command

if __name__ == "__main__":
    embedded = "--embedded" in sys.argv
    tasks = ["embedded_gsm8k", "embedded_gsm8k_sampled"] if embedded else ["gsm8k", "gsm8k_sampled"]
    sys.exit(run_command(main, [TASKS], tasks=tasks))
