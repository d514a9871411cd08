"""Probe every command with bad inputs and faults, as a new user would, and count how each is handled.

    python tests/probes/probe_bad_inputs.py [--keep DIR]

Each probe runs one command in a scratch folder holding a finished tiny run (all four stages, evaluation results,
a report, an export) and classifies the outcome:
- handled well: the expected exit status (1: a file or model problem, 2: a usage error), `<command>: error: ...`
  naming the problem (one line per problem), no traceback, and every finished file byte-for-byte unchanged;
- traceback: a Python traceback, or an unexpected exit status;
- silent: exit 0 where the input was wrong, or a finished file changed.
It prints one row per probe and the counts (docs/TRAINING.md, "Bad input"). Not part of the test suite (minutes:
each probe starts Python); the per-case tests live with each module's tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tests" / "training" / "configs"
PY = sys.executable


@dataclass
class Probe:
    name: str
    argv: list[str]
    status: int  # the expected exit status
    words: str = ""  # expected in the last stderr line (refusals) or in the output
    setup: object = None  # callable(root) run before the command
    protect: tuple[str, ...] = ("runs/tiny", "results", "export")  # folders whose bytes must not change
    env: dict = field(default_factory=dict)
    table: bool = False  # a checker whose answer is a table on stdout, not an error line


def recipe(stage: str, *extra: str) -> list[str]:
    return [PY, str(REPO / "recipes" / f"{stage}.py"), "--config", str(CONFIGS / f"{stage}.yaml"), *extra]


def pipeline(*extra: str) -> list[str]:
    return [PY, str(REPO / "recipes" / "pipeline.py"), *extra]


def evaluate(*extra: str) -> list[str]:
    return [PY, str(REPO / "eval" / "evaluate_tasks.py"), *extra]


def write(path: str, content: bytes | str):
    def setup(root: Path):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def truncate(path: str, keep: int = 1000):
    def setup(root: Path):
        target = root / path
        target.write_bytes(target.read_bytes()[:keep])

    return setup


def copy_final(stage: str, to: str):
    def setup(root: Path):
        shutil.copytree(root / "runs" / "tiny" / f"{stage}_final", root / to)

    return setup


def probes(root: Path) -> list[Probe]:
    runs, results = root / "runs" / "tiny", root / "results"
    final = {stage: str(runs / f"{stage}_final") for stage in ("pretrain", "sft", "dpo", "verifier")}
    out = str(root / "scratch")
    bad_yaml = write("bad.yaml", "dataset_name: embedded-text\nmax_steps: [1\n")
    return [
        # training recipes: values
        Probe(
            "max_steps 0",
            recipe("pretrain", "--output_dir", out, "--max_steps", "0"),
            2,
            "`max_steps` must be positive",
        ),
        Probe(
            "negative batch size",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--per_device_train_batch_size",
                "-4",
            ),
            2,
            "per_device_train_batch_size",
        ),
        Probe(
            "NaN learning rate",
            recipe("dpo", "--output_dir", out, "--model_name_or_path", final["sft"], "--learning_rate", "nan"),
            2,
            "learning_rate",
        ),
        Probe(
            "zero learning rate",
            recipe("sft", "--output_dir", out, "--model_name_or_path", final["pretrain"], "--learning_rate", "0"),
            2,
            "learning_rate",
        ),
        Probe(
            "negative warmup",
            recipe("sft", "--output_dir", out, "--model_name_or_path", final["pretrain"], "--warmup_steps", "-3"),
            2,
            "warmup_steps",
        ),
        Probe("save_steps 0", recipe("pretrain", "--output_dir", out, "--save_steps", "0"), 2, "save_steps"),
        Probe(
            "DPO beta 0",
            recipe("dpo", "--output_dir", out, "--model_name_or_path", final["sft"], "--beta", "0"),
            2,
            "beta",
        ),
        Probe(
            "verifier temperature 0",
            recipe("verifier", "--output_dir", out, "--model_name_or_path", final["dpo"], "--temperature", "0"),
            2,
            "temperature",
        ),
        Probe(
            "verifier top_p 2",
            recipe("verifier", "--output_dir", out, "--model_name_or_path", final["dpo"], "--top_p", "2"),
            2,
            "top_p",
        ),
        Probe(
            "verifier one sample per problem",
            recipe(
                "verifier",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["dpo"],
                "--samples_per_problem",
                "1",
                "--include_reference",
                "false",
            ),
            2,
            "samples_per_problem",
        ),
        Probe(
            "max_eval_samples 0",
            recipe("sft", "--output_dir", out, "--model_name_or_path", final["pretrain"], "--max_eval_samples", "0"),
            2,
            "max_eval_samples",
        ),
        Probe(
            "unknown YAML key",
            [PY, str(REPO / "recipes" / "pretrain.py"), "--config", str(root / "typo.yaml"), "--output_dir", out],
            2,
            "learning_rat",
            setup=write("typo.yaml", "dataset_name: embedded-text\nlearning_rat: 0.1\n"),
        ),
        Probe(
            "malformed YAML",
            [PY, str(REPO / "recipes" / "pretrain.py"), "--config", str(root / "bad.yaml"), "--output_dir", out],
            2,
            "is not valid YAML at line",
            setup=bad_yaml,
        ),
        Probe(
            "missing config file",
            [PY, str(REPO / "recipes" / "sft.py"), "--config", str(root / "nope.yaml")],
            1,
            "no such file",
        ),
        Probe(
            "model_config heads do not divide",
            recipe(
                "pretrain",
                "--output_dir",
                out,
                "--model_config",
                '{"hidden_size": 30, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, '
                '"num_key_value_heads": 2, "max_position_embeddings": 128}',
            ),
            2,
            "must be divisible",
        ),
        Probe(
            "model_config unknown field",
            recipe("pretrain", "--output_dir", out, "--model_config", '{"hidden_size": 32, "n_layers": 2}'),
            2,
            "n_layers",
        ),
        Probe(
            "unknown dataset",
            recipe("sft", "--output_dir", out, "--model_name_or_path", final["pretrain"], "--dataset_name", "alpacca"),
            2,
            "not in the registry",
        ),
        Probe(
            "split the dataset lacks",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--dataset_name",
                "alpaca",
                "--eval_strategy",
                "steps",
            ),
            2,
            "no split",
        ),
        Probe(
            "bad mixture weight",
            recipe("pretrain", "--output_dir", out, "--dataset_mixture", "embedded-text:lots"),
            2,
            "embedded-text:lots",
        ),
        # training recipes: files and folders
        Probe(
            "missing model folder",
            recipe("sft", "--output_dir", out, "--model_name_or_path", str(root / "nope")),
            1,
            "does not exist",
        ),
        Probe(
            "not a model folder",
            recipe("sft", "--output_dir", out, "--model_name_or_path", str(root / "empty")),
            1,
            "missing config.json",
            setup=lambda r: (r / "empty").mkdir(),
        ),
        Probe(
            "truncated model.safetensors",
            recipe("dpo", "--output_dir", out, "--model_name_or_path", str(root / "cut")),
            1,
            "model.safetensors is truncated",
            setup=lambda r: (copy_final("sft", "cut")(r), truncate("cut/model.safetensors")(r)),
        ),
        Probe(
            "missing config.json",
            recipe("dpo", "--output_dir", out, "--model_name_or_path", str(root / "noconf")),
            1,
            "missing config.json",
            setup=lambda r: (copy_final("sft", "noconf")(r), os.remove(r / "noconf" / "config.json")),
        ),
        Probe(
            "garbage tokenizer.json",
            recipe("dpo", "--output_dir", out, "--model_name_or_path", str(root / "tok")),
            1,
            "tokenizer.json is corrupt",
            setup=lambda r: (copy_final("sft", "tok")(r), write("tok/tokenizer.json", b"\x80\x81garbage")(r)),
        ),
        Probe(
            "named tokenizer missing",
            recipe("pretrain", "--output_dir", out, "--tokenizer_name_or_path", str(root / "notok")),
            1,
            "not a saved tokenizer folder",
        ),
        Probe(
            "output_dir is a file",
            recipe("pretrain", "--output_dir", str(root / "afile")),
            1,
            "is a file",
            setup=write("afile", "x"),
        ),
        Probe(
            "finished final kept",
            recipe("sft", "--output_dir", str(runs / "sft"), "--model_name_or_path", final["pretrain"]),
            2,
            "--overwrite_final true",
        ),
        Probe(
            "resume from a missing checkpoint",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--resume_from_checkpoint",
                str(root / "checkpoint-9"),
            ),
            1,
            "resume_from_checkpoint",
        ),
        Probe(
            "empty local data file",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--dataset_name",
                "alpaca",
                "--eval_strategy",
                "no",
                "--local_data_dir",
                str(root / "data"),
            ),
            1,
            "train.jsonl is empty",
            setup=write("data/alpaca/train.jsonl", b""),
        ),
        Probe(
            "non-UTF-8 local data file",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--dataset_name",
                "alpaca",
                "--eval_strategy",
                "no",
                "--local_data_dir",
                str(root / "data8"),
            ),
            1,
            "is not UTF-8",
            setup=write("data8/alpaca/train.jsonl", b'{"instruction": "caf\xe9", "input": "", "output": "x"}\n'),
        ),
        Probe(
            "local file missing",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--dataset_name",
                "alpaca",
                "--eval_strategy",
                "no",
                "--local_data_dir",
                str(root / "nodata"),
            ),
            1,
            "no local file",
            setup=lambda r: (r / "nodata").mkdir(),
        ),
        Probe(
            "bf16 on a CPU",
            recipe("sft", "--output_dir", out, "--model_name_or_path", final["pretrain"], "--bf16", "true"),
            2,
            "bf16: true needs a GPU",
        ),
        Probe(
            "half-precision weights",
            recipe("dpo", "--output_dir", out, "--model_name_or_path", final["sft"], "--dtype", "bfloat16"),
            2,
            "dtype: bfloat16",
        ),
        Probe(
            "flash_attention_2 with sinks",
            recipe(
                "sft",
                "--output_dir",
                out,
                "--model_name_or_path",
                final["pretrain"],
                "--attn_implementation",
                "flash_attention_2",
            ),
            2,
            "flash_attention_2",
        ),
        Probe(
            "padding-free on sdpa",
            recipe("pretrain", "--output_dir", out, "--packing_strategy", "bfd_split"),
            2,
            "flattens each batch",
        ),
        # the pipeline
        Probe(
            "pipeline: unknown stage",
            pipeline(
                "--config",
                str(CONFIGS / "pipeline.yaml"),
                "--runs_dir",
                str(root / "pruns"),
                "--stages",
                "pretrain",
                "sfft",
            ),
            2,
            "sfft",
        ),
        Probe(
            "pipeline: malformed YAML",
            pipeline("--config", str(root / "bad.yaml")),
            2,
            "is not valid YAML",
            setup=bad_yaml,
        ),
        Probe(
            "pipeline: stage config missing",
            pipeline("--config", str(root / "p.yaml")),
            2,
            "does not exist",
            setup=write("p.yaml", "run_name: x\nstage_configs: {pretrain: nowhere.yaml}\nstages: [pretrain]\n"),
        ),
        Probe(
            "pipeline: a later stage broken",
            pipeline("--config", str(root / "late.yaml"), "--runs_dir", str(root / "pruns")),
            2,
            "dpo: `learning_rate`",
            setup=write(
                "late.yaml",
                "run_name: late\nstage_configs:\n"
                + "".join(f"  {s}: {CONFIGS / (s + '.yaml')}\n" for s in ("pretrain", "sft", "dpo", "verifier", "grpo"))
                + "stage_args: {dpo: --learning_rate nan}\n",
            ),
        ),
        # evaluation
        Probe(
            "eval: mistyped model into finished results",
            evaluate("--model", str(root / "sft_finall"), "--embedded", "--output_dir", str(results)),
            1,
            "does not exist",
        ),
        Probe(
            "eval: limit 0",
            evaluate("--model", final["sft"], "--embedded", "--limit", "0", "--output_dir", str(root / "r0")),
            2,
            "--limit",
        ),
        Probe(
            "eval: n_samples -1",
            evaluate("--model", final["sft"], "--embedded", "--n_samples", "-1", "--output_dir", str(root / "r1")),
            2,
            "--n_samples",
        ),
        Probe(
            "eval: temperature 0 with samples",
            evaluate(
                "--model",
                final["sft"],
                "--embedded",
                "--temperature",
                "0",
                "--n_samples",
                "2",
                "--output_dir",
                str(root / "r2"),
            ),
            2,
            "--temperature",
        ),
        Probe(
            "eval: num_fewshot beyond the split",
            evaluate(
                "--model", final["pretrain"], "--embedded", "--num_fewshot", "100000", "--output_dir", str(root / "r3")
            ),
            2,
            "--num_fewshot",
        ),
        Probe(
            "eval: dtype float8",
            evaluate("--model", final["sft"], "--embedded", "--dtype", "float8", "--output_dir", str(root / "r4")),
            2,
            "--dtype",
        ),
        Probe(
            "eval: cuda on a CPU",
            evaluate("--model", final["sft"], "--embedded", "--device", "cuda", "--output_dir", str(root / "r5")),
            2,
            "cuda",
        ),
        Probe(
            "eval: causal LM as verifier",
            evaluate(
                "--model", final["sft"], "--embedded", "--verifier", final["dpo"], "--output_dir", str(root / "r6")
            ),
            1,
            "--verifier",
        ),
        Probe(
            "eval: reward model as --model",
            evaluate("--model", final["verifier"], "--embedded", "--output_dir", str(root / "r7")),
            1,
            "--model",
        ),
        Probe(
            "eval: unknown task",
            evaluate("--model", final["sft"], "--tasks", "embedded_gsm9k", "--output_dir", str(root / "r8")),
            2,
            "embedded_gsm9k",
        ),
        Probe(
            "eval: finished results without --overwrite",
            evaluate("--model", final["sft"], "--embedded", "--limit", "2", "--output_dir", str(results)),
            2,
            "--overwrite",
        ),
        # report, export, tokenizer, datasets
        Probe(
            "report: missing results",
            [
                PY,
                str(REPO / "report" / "build_report.py"),
                "--results_dir",
                str(root / "noresults"),
                "--output",
                str(root / "rep.md"),
            ],
            1,
            "noresults",
        ),
        Probe(
            "export: non-empty destination",
            [PY, "-m", "modeling_modern_llm.export_llama", final["sft"], str(root / "export")],
            2,
            "--overwrite",
        ),
        Probe(
            "export: sinks cannot be Llama",
            [PY, "-m", "modeling_modern_llm.export_llama", final["sft"], str(root / "llama")],
            1,
            "attention_sinks",
        ),
        Probe(
            "export: truncated source",
            [PY, "-m", "modeling_modern_llm.export_llama", str(root / "cut2"), str(root / "llama2")],
            1,
            "truncated",
            setup=lambda r: (copy_final("sft", "cut2")(r), truncate("cut2/model.safetensors")(r)),
        ),
        Probe(
            "tokenizer: missing text file",
            [
                PY,
                "-m",
                "modeling_modern_llm.tokenizer",
                "--output_dir",
                str(root / "t"),
                "--text_file",
                str(root / "none.txt"),
            ],
            1,
            "does not exist",
        ),
        Probe(
            "tokenizer: non-UTF-8 text",
            [
                PY,
                "-m",
                "modeling_modern_llm.tokenizer",
                "--output_dir",
                str(root / "t2"),
                "--text_file",
                str(root / "latin.txt"),
            ],
            1,
            "not UTF-8",
            setup=write("latin.txt", b"caf\xe9\n" * 50),
        ),
        Probe(
            "tokenizer: existing output",
            [
                PY,
                "-m",
                "modeling_modern_llm.tokenizer",
                "--output_dir",
                final["sft"],
                "--dataset",
                "embedded-text",
                "--limit",
                "50",
            ],
            2,
            "--overwrite",
        ),
        Probe(
            "tokenizer: tiny vocabulary",
            [
                PY,
                "-m",
                "modeling_modern_llm.tokenizer",
                "--output_dir",
                str(root / "t3"),
                "--dataset",
                "embedded-text",
                "--vocab_size",
                "100",
            ],
            2,
            "too small",
        ),
        Probe(
            "verify_datasets: a local copy missing",
            [
                PY,
                str(REPO / "recipes" / "verify_datasets.py"),
                "--only",
                "alpaca",
                "--local_dir",
                str(root / "nodata2"),
            ],
            1,
            "no local file",
            setup=lambda r: (r / "nodata2").mkdir(),
            table=True,
        ),
    ]


def digest(folder: Path) -> dict[str, str]:
    return (
        {
            str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        if folder.exists()
        else {}
    )


def build_finished_run(root: Path) -> None:
    """A finished tiny run, its evaluation and an export destination: the finished work the probes must not touch."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [
            PY,
            str(REPO / "recipes" / "pipeline.py"),
            "--config",
            str(CONFIGS / "pipeline.yaml"),
            "--runs_dir",
            str(root / "runs"),
            "--skip_eval",
            "true",
        ],
        cwd=REPO,
        check=True,
        env=env,
        capture_output=True,
    )
    finals = [str(root / "runs" / "tiny" / f"{stage}_final") for stage in ("pretrain", "sft", "dpo")]
    subprocess.run(
        [
            PY,
            str(REPO / "eval" / "evaluate_tasks.py"),
            "--model",
            *finals,
            "--embedded",
            "--limit",
            "2",
            "--n_samples",
            "2",
            "--max_gen_toks",
            "8",
            "--verifier",
            str(root / "runs" / "tiny" / "verifier_final"),
            "--output_dir",
            str(root / "results"),
        ],
        cwd=REPO,
        check=True,
        env=env,
        capture_output=True,
    )
    (root / "export").mkdir()
    (root / "export" / "notes.txt").write_text("an earlier export the user keeps")


def classify(probe: Probe, result, changed: list[str]) -> str:
    if changed:
        return "silent"
    if "Traceback" in result.stderr or result.returncode not in (0, 1, 2):
        return "traceback"
    if probe.status and result.returncode == 0:
        return "silent"
    said = probe.table or ": error: " in result.stderr or "usage:" in result.stderr  # one line per problem
    if result.returncode == probe.status and said and probe.words in result.stderr + result.stdout:
        return "handled well"
    return "traceback" if result.returncode else "silent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="build the scratch folder here and keep it")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="probes-"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "runs" / "tiny" / "verifier_final").is_dir():
        print(f"building a finished tiny run in {root} ...", flush=True)
        build_finished_run(root)
    for leftover in set(os.listdir(root)) - {"runs", "results", "export"}:  # a kept folder's earlier probes
        path = root / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    counts: dict[str, int] = {}
    print(f"{'probe':<46}{'exit':>5}{'s':>6}  outcome")
    for probe in probes(root):
        if probe.setup:
            probe.setup(root)
        before = {folder: digest(root / folder) for folder in probe.protect}
        start = time.time()
        result = subprocess.run(
            probe.argv,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **probe.env},
        )
        changed = [folder for folder in probe.protect if digest(root / folder) != before[folder]]
        outcome = classify(probe, result, changed)
        counts[outcome] = counts.get(outcome, 0) + 1
        detail = "" if outcome == "handled well" else "  | " + (result.stderr.strip().splitlines() or [""])[-1][:150]
        print(f"{probe.name:<46}{result.returncode:>5}{time.time() - start:>6.1f}  {outcome}{detail}", flush=True)
        for leftover in ("scratch", "scratch_final", "scratch_final.partial"):
            shutil.rmtree(root / leftover, ignore_errors=True)
    print(json.dumps(counts))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
