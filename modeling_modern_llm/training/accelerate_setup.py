"""What the accelerate config a stage runs under means for its checks: `AccelerateSetup`.

The pipeline reads the ``--config_file`` of its ``accelerate launch`` launcher (`accelerate_config_of`) through
accelerate's own loader (`accelerate.commands.config.config_args.load_config_from_file`, what ``accelerate launch``
reads), so a key or value accelerate would refuse is refused here, before anything runs. A recipe started by
``accelerate launch`` reads the same file when the pipeline names it (``MODERN_LLM_ACCELERATE_CONFIG``), else the
``ACCELERATE_*`` variables the launcher exported.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass

import yaml

from ..errors import InputFileError, UsageError


@dataclass(frozen=True)
class AccelerateSetup:
    """What the accelerate config a stage runs under means for it (from the YAML file or the launcher's environment)."""

    source: str
    distributed_type: str = "NO"
    num_processes: int = 1
    mixed_precision: str = "no"
    fsdp_state_dict_type: str | None = None
    fsdp_layer_classes: tuple[str, ...] = ()
    zero_stage: int | None = None
    zero3_save_16bit_model: bool = False
    moe_layer_classes: tuple[str, ...] = ()

    @classmethod
    def from_file(cls, path: str) -> AccelerateSetup:
        """The setup of an accelerate config file, as ``accelerate launch --config_file path`` reads it."""
        from accelerate.commands.config.config_args import load_config_from_file

        if not os.path.isfile(path):
            raise InputFileError(f"accelerate config {path}: no such file (see accelerate_configs/)")
        try:
            config = load_config_from_file(path)
        except yaml.YAMLError as error:  # one line, as `arguments.read_config` says it
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise UsageError(f"accelerate config {path} is not valid YAML{where}: {problem}") from None
        except (AttributeError, TypeError):  # accelerate calls .get on what the file holds
            raise UsageError(f"accelerate config {path} must be a YAML mapping of field: value") from None
        except ValueError as error:  # an unknown key, a missing or unknown distributed_type
            raise UsageError(f"accelerate config {path}: {' '.join(str(error).split())}") from None
        fsdp = getattr(config, "fsdp_config", None) or {}
        deepspeed = getattr(config, "deepspeed_config", None) or {}
        distributed = getattr(config.distributed_type, "value", config.distributed_type)
        processes = getattr(config, "num_processes", 1)
        return cls(
            source=path,
            distributed_type=str(distributed),
            num_processes=processes if processes and processes > 0 else 1,  # accelerate's total over all machines
            mixed_precision=str(config.mixed_precision or "no"),  # accelerate launch: unset means "no"
            fsdp_state_dict_type=fsdp.get("fsdp_state_dict_type"),
            fsdp_layer_classes=_names(fsdp.get("fsdp_transformer_layer_cls_to_wrap")),
            zero_stage=deepspeed.get("zero_stage"),
            zero3_save_16bit_model=bool(deepspeed.get("zero3_save_16bit_model", False)),
            moe_layer_classes=_names(deepspeed.get("deepspeed_moe_layer_cls_names")),
        )

    @classmethod
    def from_environment(cls) -> AccelerateSetup | None:
        """The setup `accelerate launch` exported to this process (None when it was not launched by accelerate)."""
        path = os.environ.get("MODERN_LLM_ACCELERATE_CONFIG")  # recipe_steps.ACCELERATE_CONFIG_ENV
        if path:
            return cls.from_file(path)
        env = os.environ
        if "ACCELERATE_MIXED_PRECISION" not in env:
            return None
        distributed = (
            "FSDP"
            if env.get("ACCELERATE_USE_FSDP") == "true"
            else "DEEPSPEED"
            if env.get("ACCELERATE_USE_DEEPSPEED") == "true"
            else "MULTI_GPU"
            if int(env.get("WORLD_SIZE", "1")) > 1
            else "NO"
        )
        stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
        return cls(
            source="the accelerate launch environment",
            distributed_type=distributed,
            num_processes=int(env.get("WORLD_SIZE", "1")),
            mixed_precision=env["ACCELERATE_MIXED_PRECISION"],
            fsdp_state_dict_type=env.get("FSDP_STATE_DICT_TYPE"),
            fsdp_layer_classes=_names(env.get("FSDP_TRANSFORMER_CLS_TO_WRAP")),
            zero_stage=int(stage) if stage else None,
            zero3_save_16bit_model=env.get("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL") == "true",
            moe_layer_classes=_names(env.get("ACCELERATE_DEEPSPEED_MOE_LAYER_CLS_NAMES")),
        )


def _names(value) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value)
    return tuple(name.strip() for name in str(value).split(",") if name.strip())


def accelerate_config_of(launcher: str) -> str | None:
    """The ``--config_file`` of an ``accelerate launch ...`` launcher string (None for another launcher)."""
    words = shlex.split(launcher)
    if "accelerate" not in [os.path.basename(word) for word in words[:2]]:
        return None
    for index, word in enumerate(words):
        if word == "--config_file" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("--config_file="):
            return word.split("=", 1)[1]
    return None


__all__ = ["AccelerateSetup", "accelerate_config_of"]
