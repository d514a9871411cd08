"""Finding a checkpoint that is safe to resume from, and telling a finished stage from an interrupted one.

A process killed while ``Trainer`` writes ``checkpoint-N`` leaves a folder that looks like a checkpoint but
holds a truncated ``model.safetensors`` or no ``trainer_state.json``. ``Trainer`` would crash on it (or,
worse, load half a model), so ``last_valid_checkpoint`` checks each one, newest first, moves a broken one
aside with a warning and returns the newest good one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# What Trainer needs to resume exactly: weights, optimizer, scheduler, counters (RNG states are per process).
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
FINAL_FILES = ("config.json", "tokenizer_config.json", "training_summary.json", "README.md")


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


def _weights_problem(folder: str) -> str | None:
    """Checks every weight shard a folder's index lists, or the single model.safetensors."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index) as handle:
                shards = sorted(set(json.load(handle)["weight_map"].values()))
        except (json.JSONDecodeError, KeyError):
            return "model.safetensors.index.json is corrupt"
    else:
        shards = ["model.safetensors"]
    return next((p for p in (safetensors_problem(os.path.join(folder, s)) for s in shards) if p), None)


def checkpoint_problem(folder: str) -> str | None:
    """Why a ``checkpoint-N`` folder cannot be resumed from, or None when it is complete."""
    missing = [name for name in CHECKPOINT_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        with open(os.path.join(folder, "trainer_state.json")) as handle:
            json.load(handle)["global_step"]
    except (json.JSONDecodeError, KeyError):
        return "trainer_state.json is corrupt"
    return _weights_problem(folder)


def final_model_problem(folder: str) -> str | None:
    """Why a ``<stage>_final`` folder is not a finished stage, or None when it is."""
    if not os.path.isdir(folder):
        return "it does not exist"
    missing = [name for name in FINAL_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        return f"missing {', '.join(missing)}"
    return _weights_problem(folder)


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
