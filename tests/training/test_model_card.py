"""What a reader sees carries no machine paths: `files.portable`, and the model card written into each `<stage>_final`
(training_summary.json keeps the full paths for provenance)."""

from __future__ import annotations

import json
import os
import sys

from modeling_modern_llm.files import portable
from modeling_modern_llm.training.model_card import write_model_card, write_training_summary


def test_portable_names_the_interpreter_python_and_paths_from_their_anchor(tmp_path, monkeypatch):
    run = tmp_path / "runs" / "demo"
    command = (
        f"{sys.executable} recipes/pipeline.py --x {run}/seed-0/pretrain_final,{run}-other "
        f"pretrained={run}/sft_final,trust_remote_code=True /usr/local/bin/python3.11 {os.getcwd()}/recipes/a.py"
    )
    assert portable(command, {str(run): "<run>"}) == (
        f"python recipes/pipeline.py --x <run>/seed-0/pretrain_final,{run}-other "  # a sibling folder is not the run
        "pretrained=<run>/sft_final,trust_remote_code=True python recipes/a.py"
    )
    assert (
        portable("experiments/runs/demo/dpo_final 3.11.7 python3 x/python")
        == "experiments/runs/demo/dpo_final 3.11.7 python3 x/python"
    )
    assert portable(f"../..{run}/x {run}/y /", {str(run): "<run>", "/": "<root>"}) == f"../..{run}/x <run>/y /"
    monkeypatch.chdir(tmp_path)  # relative anchors are taken from the working directory, as the paths were given
    assert portable(f"{run}/dpo_final and {tmp_path}/results", {"runs/demo": "<run>"}) == "<run>/dpo_final and results"


def test_the_model_card_shows_no_machine_paths(tmp_path):
    final = tmp_path / "runs" / "demo" / "sft_final"
    final.mkdir(parents=True)
    summary = {
        "stage": "sft",
        "command": f"python recipes/sft.py --output_dir {final.parent / 'sft'} --model_name_or_path "
        f"{final.parent / 'pretrain_final'}",
        "config_path": "recipes/configs/cpu-demo/sft.yaml",
        "steps": 3,
        "train_tokens": 100,
        "per_device_batch_size": 2,
        "learning_rate": 1e-4,
        "hardware": "cpu",
        "wall_time_s": 1.0,
        "tokens_per_s": 100,
        "datasets": ["embedded-alpaca"],
        "python": sys.executable,
    }
    write_training_summary(str(final), summary)
    write_model_card(str(final), summary, {"hidden_size": 8}, str(final.parent / "pretrain_final"), {})
    card = (final / "README.md").read_text()
    assert str(tmp_path) not in card and sys.executable not in card
    assert "--output_dir <run>/sft --model_name_or_path <run>/pretrain_final" in card
    assert (
        "- trained from: `<run>/pretrain_final`" in card and "base_model:" not in card
    )  # the Hub wants a Hub id there
    assert json.loads((final / "training_summary.json").read_text())["python"] == sys.executable  # provenance kept
