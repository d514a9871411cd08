"""Download every dataset and baseline model a recipe config names into the HF cache, for offline runs.

    python recipes/prefetch.py --config recipes/configs/gpu-full/pipeline.yaml [--config ...] \
        [--eval_suite hub --include_baselines] [--datasets NAME ...] [--models gpt2 ...]

Run it on a machine with network (a cluster's login node); afterwards the same configs run on compute
nodes with HF_HUB_OFFLINE=1. Config keys read: dataset_name, dataset_mixture, eval_datasets (registry
names), baseline_models (Hub model ids), and a pipeline config's stage_configs (followed). --eval_suite
adds the datasets eval/evaluate_tasks.py reads, --include_baselines its baseline models. Exits non-zero,
with the reason and the fix, if anything fails.
"""

import argparse
import sys

from modeling_modern_llm.data.prefetch import prefetch, read_config_targets
from modeling_modern_llm.data.verify import format_table
from modeling_modern_llm.evaluation.harness import evaluation_targets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], help="a recipe YAML (repeatable)")
    parser.add_argument("--datasets", nargs="*", default=[], help="extra registry names to fetch")
    parser.add_argument("--models", nargs="*", default=[], help="extra Hub model ids to fetch")
    parser.add_argument("--eval_suite", choices=("hub", "embedded"), help="also fetch this evaluation suite's datasets")
    parser.add_argument("--include_baselines", action="store_true", help="with --eval_suite: also its baseline models")
    args = parser.parse_args(argv)
    try:
        dataset_names, model_ids = read_config_targets(args.config)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    eval_names, eval_models = (
        evaluation_targets(args.eval_suite, args.include_baselines) if args.eval_suite else ([], [])
    )
    dataset_names = list(dict.fromkeys(dataset_names + eval_names + args.datasets))
    model_ids = list(dict.fromkeys(model_ids + eval_models + args.models))
    if not dataset_names and not model_ids:
        parser.error(
            "nothing to fetch: pass --config (with dataset_name/dataset_mixture/eval_datasets/baseline_models), "
            "--eval_suite, --datasets or --models"
        )
    results = prefetch(dataset_names, model_ids)
    print(format_table(results))
    failed = [r.name for r in results if not r.ok]
    print(
        f"\n{len(results) - len(failed)}/{len(results)} fetched" + (f"; failing: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
