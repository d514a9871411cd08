"""SST-2 accuracy, 0-shot and k-shot: eval/evaluate_tasks.py with the SST-2 tasks chosen.

    python eval/eval_sst2.py --model experiments/runs/<run>/sft_final --local_dir DIR --num_fewshot 5 --output_dir OUT

Runs lm-eval's `sst2` (add --embedded for the embedded corpus's `embedded_sst2` and `embedded_sst2_fewshot`); every
option of eval/evaluate_tasks.py applies (`--local_dir DIR` reads DIR/sst2/{validation,train}.jsonl offline).
"""

import sys

from evaluate_tasks import TASKS, main, run_command

if __name__ == "__main__":
    embedded = "--embedded" in sys.argv
    sys.exit(run_command(main, [TASKS], tasks=["embedded_sst2", "embedded_sst2_fewshot"] if embedded else ["sst2"]))
