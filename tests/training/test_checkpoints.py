"""A truncated or corrupt checkpoint is detected and the previous one is used, with a warning."""

import json
import logging
import os

import torch
from safetensors.torch import save_file

from modeling_modern_llm.training import (
    checkpoint_problem,
    final_model_problem,
    last_valid_checkpoint,
    safetensors_problem,
)


def _checkpoint(root, step, truncate=False):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.randn(64, 64)}, str(folder / "model.safetensors"))
    if truncate:
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    for name in ("optimizer.pt", "scheduler.pt"):
        (folder / name).write_bytes(b"x")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_safetensors_checks(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(8, 8)}, str(path))
    assert safetensors_problem(str(path)) is None
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    assert "truncated" in safetensors_problem(str(path))
    path.write_bytes(data[:4])
    assert "truncated" in safetensors_problem(str(path))
    path.write_bytes(data[:8] + b"{not json" + data[17:])
    assert "corrupt header" in safetensors_problem(str(path))
    assert "missing" in safetensors_problem(str(tmp_path / "absent.safetensors"))


def test_incomplete_checkpoint_names_what_is_missing(tmp_path):
    folder = _checkpoint(tmp_path, 3)
    assert checkpoint_problem(str(folder)) is None
    os.remove(folder / "optimizer.pt")
    assert "optimizer.pt" in checkpoint_problem(str(folder))
    (folder / "optimizer.pt").write_bytes(b"x")
    (folder / "trainer_state.json").write_text("{trunc")
    assert "trainer_state.json" in checkpoint_problem(str(folder))


def test_last_valid_checkpoint_skips_a_truncated_one_with_a_warning(tmp_path, caplog):
    _checkpoint(tmp_path, 5)
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 15, truncate=True)
    with caplog.at_level(logging.WARNING):
        assert last_valid_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert "checkpoint-15" in caplog.text and "truncated" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-10", "checkpoint-5", "corrupt-checkpoint-15"]


def test_without_move_aside_nothing_is_renamed(tmp_path):
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4, truncate=True)
    assert last_valid_checkpoint(str(tmp_path), move_aside=False) == str(tmp_path / "checkpoint-2")
    assert (tmp_path / "checkpoint-4").is_dir()
    assert last_valid_checkpoint(str(tmp_path / "nowhere")) is None


def test_final_folder_problems(tmp_path):
    assert "does not exist" in final_model_problem(str(tmp_path / "sft_final"))
    folder = tmp_path / "sft_final"
    folder.mkdir()
    save_file({"w": torch.ones(2)}, str(folder / "model.safetensors"))
    assert "training_summary.json" in final_model_problem(str(folder))
    for name in ("config.json", "tokenizer_config.json", "training_summary.json", "README.md"):
        (folder / name).write_text("{}")
    assert final_model_problem(str(folder)) is None
