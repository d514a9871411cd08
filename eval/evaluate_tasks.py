"""Score any list of models (our stage checkpoints, Hub causal LMs) on perplexity, SST-2 and GSM8K.

    python eval/evaluate_tasks.py --model experiments/runs/<run>/pretrain_final experiments/runs/<run>/sft_final \
        experiments/runs/<run>/dpo_final --verifier experiments/runs/<run>/verifier_final --embedded \
        --include-baselines --output_dir experiments/results --limit 100 --n_samples 8

Writes task_metrics.json, baseline_comparison.json, stage_gains.csv and gsm8k_analysis.json (+ .md) to
--output_dir (docs/DESIGN.md). Models or datasets that cannot be loaded (e.g. no network) are recorded
as "unavailable: <reason>"; the exit code is non-zero only if nothing at all could be scored.
`python eval/evaluate_tasks.py --help` lists every option; docs/EVALUATION.md explains the protocols.
"""

import sys

from modeling_modern_llm.evaluation.suite import main

if __name__ == "__main__":
    sys.exit(main())
