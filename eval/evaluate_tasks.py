"""Score models on lm-evaluation-harness tasks: our stage checkpoints, GPT-2 and DistilGPT-2 through the same code.

    python eval/evaluate_tasks.py --model experiments/runs/<run>/pretrain_final experiments/runs/<run>/sft_final \
        experiments/runs/<run>/dpo_final --verifier experiments/runs/<run>/verifier_final --include-baselines \
        --embedded --chat_template --limit 100 --n_samples 8 --output_dir experiments/results
    python eval/evaluate_tasks.py --model experiments/runs/<run>/sft_final --tasks hellaswag arc_easy --output_dir out

Any lm-eval task or group runs (`--tasks`); ours are the YAMLs in eval/tasks/, a user's come with `--include_path`.
Writes lm-eval's results and samples per model, the verifier's scores, run_index.json and the views
(task_metrics.json, baseline_comparison.json, stage_gains.csv, gsm8k_analysis.json) into --output_dir, replacing
finished results only with --overwrite. Rehearsals shrink it with --limit 4 --n_samples 2 --max_gen_toks 16.
`--help` lists every option; docs/EVALUATION.md explains the tasks and what is computed after the harness.
"""

import sys
from pathlib import Path

from modeling_modern_llm.errors import run_command
from modeling_modern_llm.evaluation.harness import main

TASKS = str(Path(__file__).resolve().parent / "tasks")

if __name__ == "__main__":
    sys.exit(run_command(main, [TASKS]))
