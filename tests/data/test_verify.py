"""verify_datasets and prefetch as users run them (their `__main__`, in this process): offline, against local
fixtures, and on a broken file."""

import runpy
import shutil
import sys
from pathlib import Path

import pytest

from modeling_modern_llm.data import REGISTRY
from modeling_modern_llm.data.prefetch import prefetch, read_config_targets
from modeling_modern_llm.data.verify import verify_datasets

REPO = Path(__file__).resolve().parents[2]
HUB_NAMES = [name for name, spec in REGISTRY.items() if not spec.embedded]


def run_script_in_process(script, *args, capsys, monkeypatch):
    """The script's ``__main__`` in this process (the slow package import is already done): exit code, stdout."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "recipes" / script), run_name="__main__")
    return exit_info.value.code, capsys.readouterr().out


def table_rows_any(stdout: str) -> dict[str, str]:
    """The table's lines by their first cell (dataset or model)."""
    return {line.split()[0]: line for line in stdout.splitlines()[2:] if line.split() and not line.startswith("-")}


def table_rows(stdout: str) -> dict[str, str]:
    return {name: line for name, line in table_rows_any(stdout).items() if name in REGISTRY}


def test_offline_every_hub_dataset_is_unreachable_without_traceback(capsys, monkeypatch):
    code, stdout = run_script_in_process("verify_datasets.py", "--quick", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "Traceback" not in stdout
    rows = table_rows(stdout)
    assert set(rows) == set(REGISTRY)
    for name in HUB_NAMES:
        assert "unreachable" in rows[name] and "no network" in rows[name] and "prefetch" in rows[name], rows[name]
    assert all(" ok " in rows[name] for name in REGISTRY if name not in HUB_NAMES)


def test_local_fixtures_pass(fixtures_dir, capsys, monkeypatch):
    code, stdout = run_script_in_process(
        "verify_datasets.py", "--local_dir", str(fixtures_dir), capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, stdout
    assert f"{len(REGISTRY)}/{len(REGISTRY)} datasets OK" in stdout
    assert table_rows(stdout)["hh-rlhf"].split()[1:3] == ["ok", "5"]  # 3 train + 2 test pairs


def test_file_missing_a_field_names_dataset_file_and_field(fixtures_dir, tmp_path, capsys, monkeypatch):
    local = tmp_path / "local"
    shutil.copytree(fixtures_dir, local)
    (local / "alpaca" / "train.parquet").unlink()
    (local / "alpaca" / "train.jsonl").write_text('{"instruction": "Say hi.", "input": "", "text": "..."}\n')
    code, stdout = run_script_in_process(
        "verify_datasets.py",
        "--local_dir",
        str(local),
        "--only",
        "alpaca",
        "--only",
        "gsm8k",
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    alpaca = table_rows(stdout)["alpaca"]
    assert code == 1 and "failed" in alpaca and "alpaca/train.jsonl lacks field 'output'" in alpaca
    assert " ok " in table_rows(stdout)["gsm8k"]


def test_verify_function_reports_a_missing_local_dataset(tmp_path):
    (result,) = verify_datasets(["tinystories"], local_dir=tmp_path)
    assert not result.ok and "no local file" in result.error and "tinystories/train.jsonl" in result.error


def test_prefetch_reads_every_dataset_and_model_key(tmp_path):
    config = tmp_path / "pretrain.yaml"
    config.write_text(
        "# Data\ndataset_mixture:\n  tinystories: 0.7\n  embedded-text: 0.3\ndataset_name: wikitext-103-raw-v1\n"
        "eval_datasets: [wikitext-2-raw-v1, gsm8k, sst2]\nbaseline_models:\n  - gpt2\n  - gpt2-medium\n"
        "learning_rate: 3.0e-4\n"
    )
    other = tmp_path / "sft.yaml"
    other.write_text("dataset_mixture: 'alpaca:1,embedded-alpaca:1'\neval_datasets:\n  - {name: gsm8k, split: test}\n")
    datasets_named, models = read_config_targets([config, other])
    assert datasets_named == [
        "wikitext-103-raw-v1",
        "tinystories",
        "embedded-text",
        "wikitext-2-raw-v1",
        "gsm8k",
        "sst2",
        "alpaca",
        "embedded-alpaca",
    ]
    assert models == ["gpt2", "gpt2-medium"]
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"run_name: demo\nstage_configs:\n  pretrain: {config}\n  sft: {other}\n")
    assert read_config_targets([pipeline]) == (datasets_named, models)
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_name: wikitext2\n")
    with pytest.raises(ValueError, match="unknown dataset 'wikitext2'"):
        read_config_targets([bad])


def test_prefetch_offline_fails_clearly(tmp_path, capsys, monkeypatch):
    results = prefetch(["gsm8k", "embedded-gsm8k"], ["gpt2"])
    assert [(r.name, r.status) for r in results] == [
        ("gsm8k", "unreachable"),
        ("embedded-gsm8k", "ok"),
        ("gpt2", "unreachable"),
    ]
    config = tmp_path / "eval.yaml"
    config.write_text("eval_datasets: [sst2]\nbaseline_models: [gpt2]\n")
    code, stdout = run_script_in_process("prefetch.py", "--config", str(config), capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "unreachable: no network (HF_HUB_OFFLINE=1 is set)" in stdout and "0/2 fetched" in stdout
    code, stdout = run_script_in_process(
        "prefetch.py", "--eval_suite", "hub", "--include_baselines", capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 1 and {"tinystories", "sst2", "gsm8k", "gpt2"} <= set(table_rows_any(stdout))
