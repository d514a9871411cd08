"""Perplexity (word, byte; bits per byte) on WikiText-2 and TinyStories: eval/evaluate_tasks.py with those tasks chosen.

    python eval/eval_perplexity.py --model experiments/runs/<run>/sft_final gpt2 --output_dir experiments/results

Runs lm-eval's `wikitext` and our `tinystories` (add --embedded for `embedded_text`); every option of
eval/evaluate_tasks.py applies.
"""

import sys

from evaluate_tasks import TASKS, main, run_command

if __name__ == "__main__":
    embedded = "--embedded" in sys.argv
    sys.exit(run_command(main, [TASKS], tasks=["embedded_text"] if embedded else ["wikitext", "tinystories"]))
