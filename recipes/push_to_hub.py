"""Push a finished stage folder to the Hugging Face Hub.

    python recipes/push_to_hub.py experiments/runs/full/sft_final me/modern-llm-sft
    python recipes/push_to_hub.py experiments/runs/full/verifier_final me/modern-llm-verifier --private --revision v1

Uploads `<stage>_final` as it is (safetensors weights, remote code, tokenizer, generation config, model card,
training_summary.json, and `adapter/` after a LoRA run), creating the repo if needed (`--private` applies only
then). When the evaluation's `--results_dir` (its --output_dir) scored this folder, those numbers go into its model card
first as Hub `model-index` metadata; `--report` adds the report and its figures under `report/`. The token comes from HF_TOKEN or
`hf auth login`, never from the command line. Loads back with `AutoModelForCausalLM.from_pretrained(REPO_ID,
trust_remote_code=True)` (the verifier: `AutoModelForSequenceClassification`).
"""

import argparse
import logging
import sys

from modeling_modern_llm.errors import run_command
from modeling_modern_llm.training.hub import DEFAULT_RESULTS_DIR, push_folder


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a finished <stage>_final folder")
    parser.add_argument("repo_id", help="<user or organization>/<name>")
    parser.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    parser.add_argument("--revision", default=None, help="branch to push to (created from main if needed)")
    parser.add_argument(
        "--results_dir",
        default=DEFAULT_RESULTS_DIR,
        help="the evaluation's --output_dir (no results there: the card gets none)",
    )
    parser.add_argument(
        "--report", default=None, help="the report's Markdown file, pushed with its figures/ under report/"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(name)s - %(message)s", level=logging.INFO)
    url = push_folder(
        args.folder,
        args.repo_id,
        private=True if args.private else None,
        revision=args.revision,
        results_dir=args.results_dir,
        report=args.report,
    )
    print(url)


if __name__ == "__main__":
    run_command(main, sys.argv[1:])
