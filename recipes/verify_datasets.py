"""Check that every registered dataset loads and has the fields its normaliser needs.

    python recipes/verify_datasets.py [--quick] [--only NAME ...] [--local_dir DIR]

Prints a table (dataset, status, rows checked, error, what to do) and exits 0 only when every check
passes. ``--quick`` streams the first rows of each split; ``--local_dir DIR`` checks the copies in
``DIR/<name>/<split>.jsonl|.parquet`` instead of the Hub (the embedded corpus is always generated).
"""

import argparse
import sys

from modeling_modern_llm.data import REGISTRY
from modeling_modern_llm.data.verify import format_table, verify_datasets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=list(REGISTRY),
        metavar="NAME",
        help="check only this dataset (repeatable); default: all registered datasets",
    )
    parser.add_argument("--local_dir", help="read DIR/<name>/<split>.jsonl|.parquet instead of the Hub")
    parser.add_argument("--quick", action="store_true", help="check only the first rows of each split (streamed)")
    parser.add_argument("--quick_rows", type=int, default=16, help="rows per split with --quick")
    args = parser.parse_args(argv)
    results = verify_datasets(args.only, local_dir=args.local_dir, quick=args.quick, quick_rows=args.quick_rows)
    print(format_table(results))
    failed = [r.name for r in results if not r.ok]
    print(
        f"\n{len(results) - len(failed)}/{len(results)} datasets OK"
        + (f"; failing: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
