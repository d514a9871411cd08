"""A truncated or corrupt checkpoint, in any engine's layout, is detected and the previous one is used, with a warning.

The plain layout is written by torch and safetensors themselves; the FSDP sharded layout by
torch.distributed.checkpoint's own writer (one process, no process group). DeepSpeed does not install here
(the [gpu] extra): its layout is built from DeepSpeed's documented names (`latest`, `global_stepN/`,
`mp_rank_00_model_states.pt`, `zero_pp_rank_0_mp_rank_00_optim_states.pt`), each file a real torch.save archive.
"""

import json
import logging
import os

import torch
from safetensors.torch import save_file

from modeling_modern_llm.training import (
    checkpoint_layout,
    checkpoint_problem,
    final_model_problem,
    last_valid_checkpoint,
    safetensors_problem,
    torch_file_problem,
)


def _checkpoint(root, step, truncate=False):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.randn(64, 64)}, str(folder / "model.safetensors"))
    if truncate:
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({"state": {0: torch.randn(16)}}, folder / name)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


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
    torch.save({}, folder / "optimizer.pt")
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
    for name in ("tokenizer_config.json", "README.md"):
        (folder / name).write_text("{}")
    (folder / "config.json").write_text(json.dumps({"model_type": "modern_llm"}))
    (folder / "training_summary.json").write_text(json.dumps({"stage": "sft"}))
    assert final_model_problem(str(folder)) is None and final_model_problem(str(folder), "sft") is None
    assert "not 'dpo'" in final_model_problem(str(folder), "dpo")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))  # an export written over it
    assert "'llama' model" in final_model_problem(str(folder))


def test_a_truncated_optimizer_or_scheduler_is_caught(tmp_path):
    """A kill or a full disk mid-save leaves optimizer.pt cut short: resuming from it would fail at every rerun."""
    for name in ("optimizer.pt", "scheduler.pt"):
        folder = _checkpoint(tmp_path / name, 4)
        _truncate(folder / name, keep=0.9)
        assert name in checkpoint_problem(str(folder)) and "truncated" in checkpoint_problem(str(folder))
    path = tmp_path / "whole.pt"
    torch.save({"x": torch.ones(1000)}, path)
    assert torch_file_problem(str(path)) is None
    path.write_bytes(b"not a zip at all")
    assert "corrupt" in torch_file_problem(str(path))


def _deepspeed_checkpoint(root, step):
    """DeepSpeed's layout (engine.save_checkpoint): `latest` names global_stepN holding model and optimizer states."""
    folder = root / f"checkpoint-{step}"
    (folder / f"global_step{step}").mkdir(parents=True)
    (folder / "latest").write_text(f"global_step{step}")
    torch.save({"module": {"w": torch.ones(8)}}, folder / f"global_step{step}" / "mp_rank_00_model_states.pt")
    torch.save(
        {"optimizer_state_dict": {}}, folder / f"global_step{step}" / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    )
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_deepspeed_layout_is_judged_valid_and_its_damage_found(tmp_path):
    folder = _deepspeed_checkpoint(tmp_path, 6)
    assert checkpoint_layout(str(folder)) == "deepspeed" and checkpoint_problem(str(folder)) is None
    _truncate(folder / "global_step6" / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    assert "optim_states.pt is truncated" in checkpoint_problem(str(folder))
    (folder / "latest").write_text("global_step9")
    assert "global_step9" in checkpoint_problem(str(folder))
    assert last_valid_checkpoint(str(tmp_path), move_aside=False) is None


def _fsdp_sharded_checkpoint(root, step):
    """FSDP's SHARDED_STATE_DICT layout as accelerate's save_fsdp_model/save_fsdp_optimizer write it, through
    torch.distributed.checkpoint's own FileSystemWriter."""
    import torch.distributed.checkpoint as dcp

    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    dcp.save(
        {"model": {"w": torch.randn(64, 64), "b": torch.randn(64)}},
        storage_writer=dcp.FileSystemWriter(str(folder / "pytorch_model_fsdp_0")),
        no_dist=True,
    )
    dcp.save(
        {"optimizer": {"exp_avg": torch.randn(64, 64)}},
        storage_writer=dcp.FileSystemWriter(str(folder / "optimizer_0")),
        no_dist=True,
    )
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_fsdp_sharded_layout_is_judged_valid_and_a_short_shard_found(tmp_path):
    _fsdp_sharded_checkpoint(tmp_path, 4)
    newest = _fsdp_sharded_checkpoint(tmp_path, 8)
    assert checkpoint_layout(str(newest)) == "fsdp-sharded" and checkpoint_problem(str(newest)) is None
    shard = next((newest / "optimizer_0").glob("*.distcp"))
    _truncate(shard)
    assert "truncated" in checkpoint_problem(str(newest))
    assert last_valid_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")
    os.remove(tmp_path / "checkpoint-4" / "pytorch_model_fsdp_0" / ".metadata")
    assert ".metadata is missing" in checkpoint_problem(str(tmp_path / "checkpoint-4"))
