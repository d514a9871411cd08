"""Finding a checkpoint that is safe to resume from, and telling a finished stage from an interrupted one.

A process killed while ``Trainer`` writes ``checkpoint-N`` (or a full disk) leaves a folder that looks like a
checkpoint but holds a truncated file. ``Trainer`` would crash on it, the same way at every rerun (under SLURM
requeue, a loop), or load half a model. ``last_valid_checkpoint`` checks each one, newest first, moves a broken one
aside with a warning and returns the newest good one.

A checkpoint's layout depends on the engine that wrote it (read from transformers' ``Trainer._save_checkpoint`` and
accelerate's ``save_fsdp_model``/``save_fsdp_optimizer``, and DeepSpeed's ``save_checkpoint``):

| engine | weights | optimizer (+ scheduler) |
| --- | --- | --- |
| plain / DDP | ``model.safetensors`` (or an index and shards) | ``optimizer.pt``, ``scheduler.pt`` |
| DeepSpeed ZeRO | ``global_stepN/*model_states.pt`` (+ ``model.safetensors`` gathered), ``latest`` names N | \
``global_stepN/*optim_states.pt``, ``scheduler.pt`` unless DeepSpeed owns the scheduler |
| FSDP, ``SHARDED_STATE_DICT`` | ``pytorch_model_fsdp_0/`` (torch.distributed.checkpoint) | ``optimizer_0/``, ``scheduler.pt`` |
| FSDP, ``FULL_STATE_DICT`` | ``model.safetensors`` and ``pytorch_model_fsdp.bin`` | ``optimizer.bin``, ``scheduler.pt`` |

Every file is checked for being whole, not only present: a ``torch.save`` file is a zip archive whose central
directory is written last, a safetensors file's header states its length, a distributed checkpoint lists its
shards' byte ranges in ``.metadata``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import struct
import time
import zipfile

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
FINAL_FILES = ("config.json", "tokenizer_config.json", "training_summary.json", "README.md")
ADAPTER_CONFIG = "adapter_config.json"
MODEL_TYPE = "modern_llm"


def safetensors_problem(path: str) -> str | None:
    """Why a .safetensors file is unusable (missing, truncated, bad header), or None when it is whole."""
    if not os.path.isfile(path):
        return f"{os.path.basename(path)} is missing"
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return f"{os.path.basename(path)} is truncated ({size} bytes)"
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8:
            return f"{os.path.basename(path)} is truncated (header of {header_len} bytes, file of {size})"
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return f"{os.path.basename(path)} has a corrupt header"
    data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if size != 8 + header_len + data_end:
        return f"{os.path.basename(path)} is truncated ({size} bytes, header promises {8 + header_len + data_end})"
    return None


def torch_file_problem(path: str) -> str | None:
    """Why a ``torch.save`` file is unusable, or None when it is whole.

    torch.save writes a zip archive and its central directory last, so a file cut short by a kill or a full disk
    has none; every member's recorded size must also fit in the file.
    """
    name = os.path.basename(path)
    if not os.path.isfile(path):
        return f"{name} is missing"
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            end = max((info.header_offset + info.compress_size for info in archive.infolist()), default=0)
    except (zipfile.BadZipFile, OSError, ValueError):
        return f"{name} is truncated or corrupt ({size} bytes, no readable zip directory)"
    if end > size:
        return f"{name} is truncated ({size} bytes, its entries end at {end})"
    return None


def weights_problem(folder: str) -> str | None:
    """Checks every weight shard a folder's index lists, or the single model.safetensors."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index) as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
            return "model.safetensors.index.json is corrupt"
    elif not os.path.isfile(os.path.join(folder, "model.safetensors")) and os.path.isfile(
        os.path.join(folder, "pytorch_model.bin")
    ):
        return torch_file_problem(os.path.join(folder, "pytorch_model.bin"))  # an older Hub model's weights
    else:
        shards = ["model.safetensors"]
    return next((p for p in (safetensors_problem(os.path.join(folder, s)) for s in shards) if p), None)


def adapter_problem(folder: str) -> str | None:
    """Why a PEFT adapter folder (a LoRA run's checkpoint holds only the adapter) is unusable, or None."""
    try:
        with open(os.path.join(folder, ADAPTER_CONFIG)) as handle:
            json.load(handle)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return f"{ADAPTER_CONFIG} is missing or corrupt"
    return safetensors_problem(os.path.join(folder, "adapter_model.safetensors"))


def distributed_checkpoint_problem(folder: str) -> str | None:
    """Why a torch.distributed.checkpoint folder (FSDP's sharded layout) is unusable, or None when it is whole.

    ``.metadata`` is written after every shard; it records each tensor chunk's file and byte range, so a missing or
    short shard file shows without loading anything.
    """
    name = os.path.basename(folder)
    metadata_path = os.path.join(folder, ".metadata")
    if not os.path.isfile(metadata_path):
        return f"{name}/.metadata is missing (the sharded save did not finish)"
    try:
        with open(metadata_path, "rb") as handle:
            metadata = pickle.load(handle)  # written by torch.distributed.checkpoint.FileSystemWriter
    except Exception:  # noqa: BLE001 (unpickling a cut file raises many types)
        return f"{name}/.metadata is corrupt"
    needed: dict[str, int] = {}
    for item in (getattr(metadata, "storage_data", None) or {}).values():
        relative = getattr(item, "relative_path", None)
        if relative is not None:
            needed[relative] = max(needed.get(relative, 0), item.offset + item.length)
    for relative, end in sorted(needed.items()):
        path = os.path.join(folder, relative)
        if not os.path.isfile(path):
            return f"{name}/{relative} is missing"
        if os.path.getsize(path) < end:
            return f"{name}/{relative} is truncated ({os.path.getsize(path)} bytes, needs {end})"
    return None


def checkpoint_layout(folder: str) -> str:
    """Which engine wrote a checkpoint: "deepspeed", "fsdp-sharded", "fsdp-full" or "plain"."""
    if os.path.isfile(os.path.join(folder, "latest")) or any(
        entry.startswith("global_step") for entry in os.listdir(folder)
    ):
        return "deepspeed"
    if any(re.match(r"^(pytorch_model_fsdp|optimizer)_\d+$", entry) for entry in os.listdir(folder)):
        return "fsdp-sharded"
    if os.path.isfile(os.path.join(folder, "pytorch_model_fsdp.bin")) or os.path.isfile(
        os.path.join(folder, "optimizer.bin")
    ):
        return "fsdp-full"
    return "plain"


def _deepspeed_problem(folder: str) -> str | None:
    latest = os.path.join(folder, "latest")
    if not os.path.isfile(latest):
        return "missing latest (DeepSpeed's pointer to its global_stepN folder)"
    with open(latest) as handle:
        tag = handle.read().strip()
    engine_dir = os.path.join(folder, tag)
    if not tag or not os.path.isdir(engine_dir):
        return f"latest names {tag!r}, which is not a folder here"
    files = sorted(os.listdir(engine_dir))
    for kind in ("model_states.pt", "optim_states.pt"):
        if not any(name.endswith(kind) for name in files):
            return f"{tag}/ has no *{kind}"
    return next(
        (
            p
            for p in (torch_file_problem(os.path.join(engine_dir, name)) for name in files if name.endswith(".pt"))
            if p
        ),
        None,
    )


def checkpoint_problem(folder: str) -> str | None:
    """Why a ``checkpoint-N`` folder cannot be resumed from, or None when it is complete (any engine's layout)."""
    if not os.path.isfile(os.path.join(folder, "trainer_state.json")):
        return "missing trainer_state.json"
    try:
        with open(os.path.join(folder, "trainer_state.json")) as handle:
            json.load(handle)["global_step"]
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError, TypeError):
        return "trainer_state.json is corrupt"
    layout = checkpoint_layout(folder)
    if layout == "deepspeed":
        problem = _deepspeed_problem(folder)
    elif layout == "fsdp-sharded":
        problem = distributed_checkpoint_problem(
            os.path.join(folder, "pytorch_model_fsdp_0")
        ) or distributed_checkpoint_problem(os.path.join(folder, "optimizer_0"))
    elif layout == "fsdp-full":
        problem = torch_file_problem(os.path.join(folder, "pytorch_model_fsdp.bin")) or torch_file_problem(
            os.path.join(folder, "optimizer.bin")
        )
    else:
        weights = adapter_problem if os.path.isfile(os.path.join(folder, ADAPTER_CONFIG)) else weights_problem
        problem = torch_file_problem(os.path.join(folder, "optimizer.pt")) or weights(folder)
    if problem:
        return problem
    # DeepSpeed keeps the scheduler in its own state when it owns it; every other engine writes scheduler.pt.
    scheduler = os.path.join(folder, "scheduler.pt")
    if layout != "deepspeed" or os.path.exists(scheduler):
        return torch_file_problem(scheduler)
    return None


def final_model_problem(folder: str, stage: str | None = None) -> str | None:
    """Why a ``<stage>_final`` folder is not a finished stage of this project, or None when it is.

    Besides whole weights and the files every final folder holds, the config must be a ModernLLM's (an export to
    Llama written into the folder is not a finished stage) and, when ``stage`` is given, the training summary
    must say that stage.
    """
    if not os.path.isdir(folder):
        return "it does not exist"
    missing = [name for name in FINAL_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        with open(os.path.join(folder, "config.json")) as handle:
            model_type = json.load(handle).get("model_type")
        with open(os.path.join(folder, "training_summary.json")) as handle:
            summary_stage = json.load(handle).get("stage")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return "config.json or training_summary.json is corrupt"
    if model_type != MODEL_TYPE:
        return f"config.json is a {model_type!r} model, not {MODEL_TYPE!r}"
    if stage is not None and summary_stage != stage:
        return f"training_summary.json is of stage {summary_stage!r}, not {stage!r}"
    return weights_problem(folder)


def resume_request(value) -> str:
    """What ``resume_from_checkpoint`` asks for: "auto" (unset or true), "fresh" (false) or a checkpoint path.

    YAML gives ``false``/``true`` as booleans and the command line as strings; both mean the same here.
    """
    if value is None or value is True or (isinstance(value, str) and value.lower() == "true"):
        return "auto"
    if value is False or (isinstance(value, str) and value.lower() == "false"):
        return "fresh"
    return str(value)


def named_checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint named by ``resume_from_checkpoint`` cannot be resumed from, or None."""
    return checkpoint_problem(path) if os.path.isdir(path) else "it does not exist"


def checkpoint_step(folder: str) -> int:
    """The global step a checkpoint was saved at (its trainer_state.json, else its name)."""
    try:
        with open(os.path.join(folder, "trainer_state.json")) as handle:
            return int(json.load(handle)["global_step"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        match = _CHECKPOINT.match(os.path.basename(os.path.normpath(folder)))
        return int(match.group(1)) if match else 0


def set_aside_checkpoints(output_dir: str, after_step: int = -1) -> str | None:
    """Move every ``checkpoint-N`` of ``output_dir`` with N > ``after_step`` into ``<output_dir>/set-aside-<time>/``.

    A run that starts again from an earlier step (``resume_from_checkpoint: <older one>`` or ``false``) would save
    over those folders, and Trainer's ``save_total_limit`` would delete by step number, mixing two runs. Moved, not
    deleted: nothing is lost. Returns the folder they went to (None when there was nothing to move).
    """
    if not os.path.isdir(output_dir):
        return None
    newer = sorted(
        name for name in os.listdir(output_dir) if (m := _CHECKPOINT.match(name)) and int(m.group(1)) > after_step
    )
    if not newer:
        return None
    aside = os.path.join(output_dir, "set-aside-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(aside, exist_ok=True)
    for name in newer:
        os.replace(os.path.join(output_dir, name), os.path.join(aside, name))
    logger.warning("Set aside %s into %s (nothing deleted)", ", ".join(newer), aside)
    return aside


def last_valid_checkpoint(output_dir: str, move_aside: bool = True) -> str | None:
    """The newest resumable ``checkpoint-N`` in ``output_dir``.

    Broken newer ones are skipped with a warning and, with ``move_aside`` (the main process only, under DDP),
    renamed ``corrupt-checkpoint-N``: kept for inspection, and out of Trainer's way (it would rotate them or
    save over them).
    """
    if not os.path.isdir(output_dir):
        return None
    steps = sorted((int(m.group(1)) for m in map(_CHECKPOINT.match, os.listdir(output_dir)) if m), reverse=True)
    for step in steps:
        folder = os.path.join(output_dir, f"checkpoint-{step}")
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("Checkpoint %s is unusable (%s); trying the previous one.", folder, problem)
        if move_aside:
            aside = os.path.join(output_dir, f"corrupt-checkpoint-{step}")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(folder, aside)
    return None
