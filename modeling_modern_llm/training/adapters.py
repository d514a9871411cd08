"""LoRA in every stage through TRL's `get_peft_config`, and the merged model a LoRA stage leaves behind.

`use_peft: true` with TRL's `lora_r`, `lora_alpha`, `lora_dropout`, `lora_target_modules` (and `load_in_4bit` for
QLoRA on a GPU) hands each trainer `peft_config=stage_peft_config(...)`; the trainer wraps the model with PEFT and
trains only the adapter. Without `lora_target_modules` the adapter goes on the attention (q/k/v/o) and MLP
(gate/up/down) projections that are `nn.Linear` layers in this model (PEFT knows no defaults for a new model type);
those that are not (experts stored as stacked parameters) are named in the log and left alone. The verifier's new
`score` head is trained in full (`modules_to_save`), as TRL advises for a reward model.

`<stage>_final` holds the merged model, so the next stage, the evaluation and remote-code users load it like any
other, and the adapter beside it in `<stage>_final/adapter/` (PEFT's `adapter_config.json` and
`adapter_model.safetensors`; `PeftModel.from_pretrained(<the starting model>, "<stage>_final/adapter")`).
"""

from __future__ import annotations

import copy
import logging
import os

import torch
from accelerate.utils import is_peft_model
from torch import nn
from trl import get_peft_config, get_quantization_config

logger = logging.getLogger(__name__)
ADAPTER_DIR = "adapter"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linear_projections(model: nn.Module) -> list[str]:
    """Which of `PROJECTIONS` are `nn.Linear` layers somewhere in ``model`` (what a LoRA adapter can wrap)."""
    found = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    return [name for name in PROJECTIONS if name in found]


def stage_peft_config(stage: str, model_args, model: nn.Module):
    """TRL's `get_peft_config(model_args)` (None without `use_peft`), completed for this model and stage."""
    config = get_peft_config(model_args)
    if config is None:
        return None
    if isinstance(config.target_modules, str) and config.target_modules.isidentifier():
        # TRL's ModelConfig turns a one-item list into its item ("all-linear" needs that), and PEFT reads a string
        # as a regex over whole module paths, which a bare name like "q_proj" never matches: keep it a name.
        config.target_modules = {config.target_modules}
    if config.target_modules is None:
        targets = linear_projections(model)
        config.target_modules = set(targets)
        skipped = [name for name in PROJECTIONS if name not in targets]
        logger.info(
            "LoRA on %s%s",
            ", ".join(targets),
            f" ({', '.join(skipped)}: not nn.Linear layers in this model, "
            "not adapted; `lora_target_parameters` can target stacked parameters)"
            if skipped
            else "",
        )
    if stage == "verifier":
        # A reward model's head is new: train it in full (PEFT's SEQ_CLS task also keeps it with the adapter).
        config.task_type = "SEQ_CLS"
        config.modules_to_save = sorted(set(config.modules_to_save or []) | {"score"})
    return config


def quantization_kwargs(model_args) -> dict:
    """from_pretrained kwargs of QLoRA (`load_in_4bit`/`load_in_8bit`; validation refuses them without a GPU)."""
    quantization = get_quantization_config(model_args)
    if quantization is None:
        return {}
    from accelerate import PartialState

    # Each process keeps its quantized copy on its own GPU ("auto" would split it across them).
    return {"quantization_config": quantization, "device_map": {"": PartialState().local_process_index}}


def peft_summary(model) -> dict | None:
    """What the adapter is, for training_summary.json and the card (None when the model has none)."""
    if not is_peft_model(model):
        return None
    config = model.peft_config["default"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    targets = config.target_modules  # a set, or one string such as "all-linear"
    return {
        "method": "lora",
        "r": config.r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "target_modules": [targets] if isinstance(targets, str) else sorted(targets),
        "modules_to_save": sorted(set(config.modules_to_save or [])),  # PEFT's SEQ_CLS task appends its own
        "trainable_parameters": trainable,
        "adapter": f"{ADAPTER_DIR}/",
        "quantized_base": _quantized(model),
    }


def _quantized(model) -> bool:
    base = model.get_base_model()
    return bool(getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False))


def save_adapter_and_merge(model, folder: str, base_path: str | None):
    """Save the adapter into ``folder/adapter`` and return the merged model (the adapter folded into its weights).

    Full-precision weights are merged in place. A quantized base (QLoRA) is not merged into: its 4/8-bit weights
    would round the update away and save a checkpoint only bitsandbytes reads. The base is loaded again from
    ``base_path`` without quantization, in the adapter's compute dtype, and the saved adapter merged into that.
    """
    from peft import PeftModel

    adapter_dir = os.path.join(folder, ADAPTER_DIR)
    model.save_pretrained(adapter_dir)
    if not _quantized(model):
        return model.merge_and_unload()
    base = model.get_base_model()
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dtype = getattr(config, "dtype", None) or torch.bfloat16
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    full = type(base).from_pretrained(base_path, config=config, dtype=dtype)
    return PeftModel.from_pretrained(full, adapter_dir).merge_and_unload()


__all__ = [
    "ADAPTER_DIR",
    "PROJECTIONS",
    "linear_projections",
    "peft_summary",
    "quantization_kwargs",
    "save_adapter_and_merge",
    "stage_peft_config",
]
