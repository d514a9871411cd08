"""Checks of a stage's configuration that need no model, tokenizer or dataset: they run before anything loads.

A cluster run that crashes after hours in a queue, or after pretraining finished, costs a day. So
`recipes/pipeline.py` checks every stage before the first one starts, and each recipe checks itself before it
loads anything. Each problem is one line that names the field, what is wrong and the fix; `UsageError` carries
them all to the command's one-line error (`modeling_modern_llm.cli`).

What is checked, and why (the traps are in docs/TRAINING.md):
- the numbers a run needs (steps, batch sizes, a finite positive learning rate, sampling settings);
- the model a stage builds (`model_config` must be a valid `ModernLLMConfig`) or starts from (a model folder);
- the data (registry names, splits, `local_data_dir` files);
- the attention kernel against the model (sinks need a kernel that trains them; padding-free batches need a
  varlen kernel, since on sdpa/eager they become one row with a quadratic mask);
- precision (`bf16: true` with fp32 master weights; half-precision weights under Trainer are refused);
- the accelerate config against the stage (ZeRO-3 must gather the weights at save; the MoE block must be a ZeRO-3
  leaf; its mixed precision must agree with the stage's);
- the outputs (a writable folder with room for a checkpoint; a finished `<stage>_final` is not replaced unless
  `overwrite_final`), the logging integrations it reports to, the checkpoint named by `resume_from_checkpoint`;
- LoRA/QLoRA (4/8-bit weights need bitsandbytes and a CUDA GPU; the merged final needs unsharded weights) and the
  push to the Hub (a repo id, `hub_strategy: end`, no `hub_token` in the config, a token and the Hub switched on);
- the packages a run needs only for some settings: vLLM for `use_vllm: true`, and lm-evaluation-harness for the
  pipeline's evaluation step (`evaluation_problems`), so a cluster run cannot train for hours and then fail to evaluate.
- GRPO: known rewards with one weight each (the verifier reward needs a verifier folder), GSM8K data, completions that
  leave room for a prompt within the model's positions, and transformers' own generation (vLLM has no implementation
  of this remote-code architecture, so its samples' log-probs would not be this model's).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import math
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata

import torch
import yaml
from trl import TrlParser

from .. import attention_capabilities, check_attention_implementation
from ..cli import InputFileError, UsageError, die_with_parent_if_asked, existing_parent, run_command
from ..stages import final_folder
from .arguments import (
    DPOStageConfig,
    GRPOStageConfig,
    ModelArguments,
    PretrainConfig,
    ScriptArguments,
    SFTStageConfig,
    VerifierConfig,
)
from .checkpoints import final_model_problem, named_checkpoint_problem, resume_request, weights_problem
from .hub import stage_push_problems

STAGE_ARGUMENTS = {
    "pretrain": PretrainConfig,
    "sft": SFTStageConfig,
    "dpo": DPOStageConfig,
    "verifier": VerifierConfig,
    "grpo": GRPOStageConfig,
}
# Fields a from-scratch model must state explicitly; the rest keep ModernLLMConfig's defaults.
REQUIRED_MODEL_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
)
MOE_LAYER_CLASS = "ModernLLMSparseMoeBlock"
DECODER_LAYER_CLASS = "ModernLLMDecoderLayer"
# Python modules behind Trainer's `report_to` integrations.
REPORT_MODULES = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "comet_ml": ("comet_ml",),
    "trackio": ("trackio",),
    "clearml": ("clearml",),
}
LM_EVAL_MINIMUM = (0, 4, 12)  # the first lm-eval with the task index that evaluation/harness.py loads tasks through
BYTES_PER_PARAMETER_SAVED = 4 * 4  # one checkpoint (fp32 weights + AdamW's two moments) plus the final weights


class FileProblem(str):
    """A problem with a file or folder (exit status 1), as opposed to a wrong value (exit status 2)."""


def problems_error(lines: list[str]) -> UsageError | InputFileError:
    """The one error a command raises for its problems: a usage error unless every problem is a file problem."""
    kind = InputFileError if all(isinstance(line, FileProblem) for line in lines) else UsageError
    return kind("\n".join(lines))


def read_config(path: str) -> dict:
    """A YAML config as a mapping; a missing file or bad YAML is one line naming the file (and the line)."""
    if not os.path.isfile(path):
        raise InputFileError(f"--config {path}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise UsageError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path} must be a YAML mapping of field: value (it holds a {type(config).__name__})")
    return config


def parse_stage_args(stage: str, argv: list[str], *, for_validation: bool = False):
    """``(script_args, training_args, model_args)`` of a stage from its command line (``--config YAML ...``).

    A missing or malformed YAML, an unknown key or a bad value is a `UsageError` naming it. With
    ``for_validation`` a half-precision config is parsed on a machine without a GPU as it would be on one
    (``use_cpu`` is added: transformers otherwise refuses bf16 before any check can run).
    """
    argv = list(argv)
    if "--config" in argv:
        config = read_config(argv[argv.index("--config") + 1])
        half = config.get("bf16") is True or config.get("fp16") is True
        if for_validation and half and not torch.cuda.is_available() and "--use_cpu" not in argv:
            argv += ["--use_cpu", "true"]
    parser = TrlParser((ScriptArguments, STAGE_ARGUMENTS[stage], ModelArguments))
    try:
        return parser.parse_args_and_config(argv)
    except ValueError as error:
        message = " ".join(str(error).split())
        if "support bf16" in message:
            raise UsageError(
                "bf16: true needs a GPU with bf16 (Ampere or newer). On this machine pass --use_cpu true (bf16 autocast "
                "on the CPU, slow) or --bf16 false; to check a GPU config here run `python recipes/pipeline.py --config "
                "<scale>/pipeline.yaml --rehearse`."
            ) from None
        raise UsageError(f"{stage}: {message}") from None


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
        if not os.path.isfile(path):
            raise InputFileError(f"accelerate config {path}: no such file (see accelerate_configs/)")
        try:
            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle) or {}
        except yaml.YAMLError as error:
            raise UsageError(f"accelerate config {path} is not valid YAML: {error}") from None
        fsdp, deepspeed = config.get("fsdp_config") or {}, config.get("deepspeed_config") or {}
        return cls(
            source=path,
            distributed_type=str(config.get("distributed_type", "NO")),
            num_processes=int(config.get("num_processes", 1)) * int(config.get("num_machines", 1)),
            mixed_precision=str(config.get("mixed_precision", "no")),
            fsdp_state_dict_type=fsdp.get("fsdp_state_dict_type"),
            fsdp_layer_classes=_names(fsdp.get("fsdp_transformer_layer_cls_to_wrap")),
            zero_stage=deepspeed.get("zero_stage"),
            zero3_save_16bit_model=bool(deepspeed.get("zero3_save_16bit_model", False)),
            moe_layer_classes=_names(deepspeed.get("deepspeed_moe_layer_cls_names")),
        )

    @classmethod
    def from_environment(cls) -> AccelerateSetup | None:
        """The setup `accelerate launch` exported to this process (None when it was not launched by accelerate)."""
        path = os.environ.get("MODERN_LLM_ACCELERATE_CONFIG")
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


def architecture_of(model_args: ModelArguments) -> dict | None:
    """The model fields the checks need: from ``model_config`` (pretrain) or the starting folder's config.json."""
    if model_args.model_config:
        return dict(model_args.model_config)
    path = os.path.join(model_args.model_name_or_path or "", "config.json")
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    return None


def kernel_package_problem(implementation: str) -> str | None:
    """Why the package a kernel needs is not installed here (None when it is, or none is needed)."""
    needs = {
        "flash_attention_2": "flash_attn",
        "flash_attention_3": "flash_attn_interface",
        "flash_attention_4": "flash_attn.cute",
    }.get(implementation)
    if implementation.startswith("kernels-community/"):
        needs = "kernels"
    if needs is None:
        return None
    try:
        found = importlib.util.find_spec(needs) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"needs the `{needs}` package, which is not installed here"


def padding_free(stage: str, training) -> bool:
    """Whether the stage's batches are flattened into one row (TRL: padding_free, or bfd packing)."""
    if stage not in ("pretrain", "sft"):
        return False  # TRL 1.16's DPO falls back to padded batches; the reward trainer has none
    return bool(training.padding_free or (training.packing and training.packing_strategy in ("bfd", "bfd_split")))


def _number_problems(stage: str, training, script) -> list[str]:
    problems = []

    def positive(name, value, integer=True):
        bad = value is None or (isinstance(value, float) and not math.isfinite(value)) or value <= 0
        if bad:
            kind = "a positive integer" if integer else "a finite positive number"
            problems.append(f"`{name}` must be {kind}, got {value!r}")

    if training.max_steps == 0 or training.max_steps < -1:
        problems.append(
            f"`max_steps` must be positive (or -1 to train `num_train_epochs` epochs), got {training.max_steps}"
        )
    elif training.max_steps == -1:
        positive("num_train_epochs", training.num_train_epochs, integer=False)
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        positive(name, getattr(training, name))
    positive("learning_rate", training.learning_rate, integer=False)
    for name in ("weight_decay", "warmup_steps"):
        value = getattr(training, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            problems.append(f"`{name}` must be a finite number >= 0, got {value!r}")
    if training.max_grad_norm is not None and not math.isfinite(training.max_grad_norm):
        problems.append(f"`max_grad_norm` must be finite, got {training.max_grad_norm!r}")
    if training.save_strategy == "steps":
        positive("save_steps", training.save_steps, integer=False)
    if training.eval_strategy == "steps" and training.eval_steps is not None:
        positive("eval_steps", training.eval_steps, integer=False)
    positive("logging_steps", training.logging_steps, integer=False)
    if getattr(training, "max_length", None) is not None:  # (GRPO has none: max_completion_length)
        positive("max_length", training.max_length)
    for name in ("max_train_samples", "max_eval_samples"):
        if getattr(script, name) is not None:
            positive(name, getattr(script, name))
    if stage == "dpo":
        positive("beta", training.beta, integer=False)
    if stage == "verifier":
        if training.objective == "pairwise" and training.samples_per_problem < 2 and not training.include_reference:
            problems.append(
                f"`samples_per_problem` must be at least 2 to give (correct, incorrect) pairs, got "
                f"{training.samples_per_problem} (or set include_reference: true)"
            )
        for name in ("max_new_tokens", "generation_batch_size", "max_pairs_per_problem"):
            positive(name, getattr(training, name))
        positive("temperature", training.temperature, integer=False)
        if not 0 < training.top_p <= 1:
            problems.append(f"`top_p` must be in (0, 1], got {training.top_p}")
        if training.num_fewshot < 0:
            problems.append(f"`num_fewshot` must be >= 0, got {training.num_fewshot}")
        if training.objective not in ("pairwise", "token_level"):
            problems.append(f"`objective` must be pairwise or token_level, got {training.objective!r}")
        if not (math.isfinite(training.lm_loss_coef) and training.lm_loss_coef >= 0):
            problems.append(f"`lm_loss_coef` must be a finite number >= 0, got {training.lm_loss_coef!r}")
    return problems


def _data_problems(stage: str, script, training) -> list[str]:
    from modeling_modern_llm.data import REGISTRY
    from modeling_modern_llm.data.registry import local_split_file

    try:
        mixture = script.mixture()
    except ValueError as error:
        return [str(error)]
    if not mixture:
        return [f"set `dataset_name` or `dataset_mixture` (registry names: {', '.join(REGISTRY)})"]
    problems = []
    if script.local_data_dir is not None and not os.path.isdir(script.local_data_dir):
        problems.append(
            FileProblem(
                f"`local_data_dir` {script.local_data_dir} is not a folder (it should hold "
                "<registry name>/<split>.jsonl|.parquet files in the Hub schema)"
            )
        )
    splits = [script.dataset_train_split] + ([script.dataset_test_split] if training.eval_strategy != "no" else [])
    for name, weight in mixture:
        if name not in REGISTRY:
            problems.append(f"dataset {name!r} is not in the registry; known names: {', '.join(REGISTRY)}")
            continue
        if not (weight > 0 and math.isfinite(weight)):
            problems.append(f"dataset_mixture: the weight of {name} must be a finite positive number, got {weight}")
        spec = REGISTRY[name]
        if stage == "grpo" and spec.kind != "gsm8k":
            problems.append(
                f"dataset {name!r} holds {spec.kind} rows; GRPO's rewards check GSM8K answers: use "
                "embedded-gsm8k or gsm8k"
            )
        for split in splits:
            if split not in spec.splits:
                fix = (
                    "set `eval_strategy: \"no\"`" if split == script.dataset_test_split else "set `dataset_train_split`"
                )
                problems.append(
                    f"dataset {name!r} has no split {split!r} (its splits: {', '.join(spec.splits)}); {fix}"
                )
            elif script.local_data_dir and os.path.isdir(script.local_data_dir) and not spec.embedded:
                try:
                    local_split_file(script.local_data_dir, name, split)
                except Exception as error:  # noqa: BLE001 (DatasetUnavailableError names the file and the fix)
                    problems.append(FileProblem(error))
    return problems


def _model_problems(stage: str, model_args, training, architecture: dict | None, check_inputs: bool) -> list[str]:
    from modeling_modern_llm import ModernLLMConfig

    problems = []
    if stage == "pretrain" and model_args.model_name_or_path and model_args.model_config:
        problems.append(
            "set `model_config` (a new model) or `model_name_or_path` (continue pretraining a saved one), not both"
        )
    elif stage == "pretrain" and not model_args.model_name_or_path:
        fields = model_args.model_config
        if not fields:
            return [
                "`model_config` (the ModernLLMConfig fields of the new model) is missing; or set "
                "`model_name_or_path` to continue pretraining a saved model"
            ]
        if model_args.use_peft:
            problems.append(
                "`use_peft: true` trains a LoRA adapter on a saved model, not on a new one: set "
                "`model_name_or_path` (continued pretraining) instead of `model_config`, or "
                "use_peft: false"
            )
        known = set(inspect.signature(ModernLLMConfig.__init__).parameters) | set(ModernLLMConfig().to_dict())
        unknown = sorted(set(fields) - known)
        if unknown:
            problems.append(f"model_config: unknown field(s) {unknown}; ModernLLMConfig has no such field")
        missing = [name for name in REQUIRED_MODEL_FIELDS if name not in fields]
        if missing:
            problems.append(f"model_config: missing field(s) {missing}")
        if not unknown:
            try:
                ModernLLMConfig(**{"vocab_size": model_args.tokenizer_vocab_size, **fields})
            except (ValueError, TypeError) as error:
                problems.append("model_config: " + " ".join(str(error).replace("Invalid ModernLLMConfig:", "").split()))
        if model_args.tokenizer_vocab_size <= 0:
            problems.append(f"`tokenizer_vocab_size` must be positive, got {model_args.tokenizer_vocab_size}")
        tokenizer = model_args.tokenizer_name_or_path
        if (
            tokenizer
            and _looks_local(tokenizer)
            and not os.path.isfile(os.path.join(tokenizer, "tokenizer_config.json"))
        ):
            problems.append(
                FileProblem(
                    f"`tokenizer_name_or_path` {tokenizer} is not a saved tokenizer folder (no tokenizer_config.json)"
                )
            )
    elif not model_args.model_name_or_path:
        problems.append("`model_name_or_path` (the previous stage's *_final folder) is missing")
    elif check_inputs and _looks_local(model_args.model_name_or_path):
        problems += _model_folder_problems(model_args.model_name_or_path, stage)
    limit = (model_args.model_config or {}).get("max_position_embeddings") if stage == "pretrain" else None
    if limit and training.max_length and training.max_length > limit:  # packed rows are exactly max_length long
        problems.append(
            f"`max_length` {training.max_length} exceeds model_config.max_position_embeddings {limit}; "
            "lower max_length or raise max_position_embeddings"
        )
    return problems


def _grpo_problems(training, architecture: dict | None, check_inputs: bool) -> list[str]:
    """The GRPO stage's own settings: rewards and their weights, generation, and lengths against the model."""
    from .grpo import REWARD_NAMES

    problems = []
    for name in ("max_completion_length", "verifier_batch_size"):
        value = getattr(training, name)
        if value is None or value <= 0:
            problems.append(f"`{name}` must be a positive integer, got {value!r}")
    if training.num_fewshot < 0:
        problems.append(f"`num_fewshot` must be >= 0, got {training.num_fewshot}")
    if not (math.isfinite(training.temperature) and training.temperature > 0):
        problems.append(f"`temperature` must be a finite positive number (GRPO samples), got {training.temperature}")
    if not 0 < training.top_p <= 1:
        problems.append(f"`top_p` must be in (0, 1], got {training.top_p}")
    if not (math.isfinite(training.beta) and training.beta >= 0):
        problems.append(
            f"`beta` (the weight of the KL term to the starting model) must be a finite number >= 0, got "
            f"{training.beta}"
        )
    names = list(training.reward_funcs or [])
    if not names:
        problems.append(f"`reward_funcs` is empty: name at least one of {', '.join(REWARD_NAMES)}")
    unknown = [name for name in names if name not in REWARD_NAMES and "." not in name]
    if unknown:
        problems.append(
            f"`reward_funcs`: unknown reward(s) {unknown}; choose from {', '.join(REWARD_NAMES)} or give a "
            "dotted import path (package.module.function)"
        )
    if training.reward_weights is not None and len(training.reward_weights) != len(names):
        problems.append(
            f"`reward_weights` has {len(training.reward_weights)} weight(s) for {len(names)} reward(s) "
            f"{names}; give one weight per reward, in the same order"
        )
    verifier = training.reward_model_name_or_path
    if "verifier" in names and not verifier:
        problems.append(
            "the `verifier` reward needs `reward_model_name_or_path`: the verifier folder "
            "(<run>/verifier_final; the pipeline sets it)"
        )
    elif "verifier" in names and check_inputs and _looks_local(verifier):
        problems += _verifier_folder_problems(verifier)
    positions = (architecture or {}).get("max_position_embeddings")
    if positions and training.max_completion_length and training.max_completion_length >= positions:
        problems.append(
            f"`max_completion_length` {training.max_completion_length} leaves no room for the prompt within "
            f"the model's max_position_embeddings {positions}; lower it (prompts longer than the rest are "
            "left out)"
        )
    if training.use_vllm:
        problems.append(
            "`use_vllm: true`: vLLM has no implementation of this remote-code architecture (attention "
            "sinks), so its samples' log-probs would not be this model's; set use_vllm: false (generation "
            "runs through transformers' generate)"
        )
    if training.use_transformers_continuous_batching:
        problems.append(
            "`use_transformers_continuous_batching: true` runs transformers' paged attention, which is not "
            "checked against this model's attention sinks; set it to false (plain generate)"
        )
    return problems


def _verifier_folder_problems(path: str) -> list[str]:
    """The verifier reward's folder must hold a saved sequence-classification model with its tokenizer."""
    problems = _model_folder_problems(path, "verifier")
    if problems:
        return [FileProblem(line.replace("`model_name_or_path`", "`reward_model_name_or_path`")) for line in problems]
    with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
        architectures = json.load(handle).get("architectures") or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        found = ", ".join(architectures) or "model of unknown class"
        return [
            FileProblem(
                f"`reward_model_name_or_path` {path} is a {found}, not a verifier (sequence "
                "classification): pass <run>/verifier_final"
            )
        ]
    return []


def _looks_local(path: str) -> bool:
    return os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") != 1


def _model_folder_problems(path: str, stage: str) -> list[str]:
    """A starting model folder must hold a readable config, tokenizer and whole weights (checked without loading)."""
    if not os.path.isdir(path):
        return [
            FileProblem(
                f"`model_name_or_path` {path} does not exist (run the previous stage first, or name a model folder)"
            )
        ]
    missing = [
        name for name in ("config.json", "tokenizer_config.json") if not os.path.isfile(os.path.join(path, name))
    ]
    if missing:
        return [
            FileProblem(
                f"`model_name_or_path` {path} is not a saved model with its tokenizer (missing {', '.join(missing)})"
            )
        ]
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        file = os.path.join(path, name)
        try:
            if os.path.isfile(file):
                with open(file, encoding="utf-8") as handle:
                    json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return [
                FileProblem(
                    f"`model_name_or_path` {path}: {name} is corrupt (not JSON); save the model again or restore it"
                )
            ]
    problem = weights_problem(path)
    if problem:
        return [
            FileProblem(
                f"`model_name_or_path` {path}: {problem}; rerun the stage that wrote it (its checkpoints resume it)"
            )
        ]
    return []


def _precision_problems(training, model_args, accelerate: AccelerateSetup | None) -> list[str]:
    problems = []
    if model_args.dtype in ("bfloat16", "float16") and not model_args.use_peft:
        problems.append(
            f"`dtype: {model_args.dtype}` loads the weights in half precision and Trainer then trains them without fp32 "
            "master weights (small AdamW updates round away); remove `dtype` and keep `bf16: true`, which is autocast "
            "over fp32 weights"
        )
    wanted = "bf16" if training.bf16 else "fp16" if training.fp16 else "no"
    if accelerate is not None and accelerate.mixed_precision not in (wanted, "None"):
        problems.append(
            f"the accelerate config ({accelerate.source}) sets mixed_precision: {accelerate.mixed_precision} "
            f"but the stage sets bf16: {bool(training.bf16)}, fp16: {bool(training.fp16)}; make them agree"
        )
    return problems


def _attention_problems(
    stage: str, training, model_args, architecture: dict | None, gpu_available: bool, rehearsal: bool
) -> list[str]:
    implementation = model_args.attn_implementation or (architecture or {}).get("_attn_implementation") or "sdpa"
    sinks = bool((architecture or {}).get("attention_sinks", True))
    problems = []
    problem = check_attention_implementation(implementation, sinks, training=True)
    if problem:
        problems.append(problem)
    if padding_free(stage, training):
        if training.padding_free and not training.packing and training.max_length is not None:
            problems.append(
                "`padding_free: true` without packing does not enforce `max_length` (TRL refuses it); set "
                "`padding_free: false`, or `packing: true`"
            )
        elif not attention_capabilities(implementation)["varlen"]:
            why = (
                ("`packing_strategy: " + training.packing_strategy + "`")
                if training.packing
                else "`padding_free: true`"
            )
            problems.append(
                f"{why} flattens each batch into one row, and `attn_implementation: {implementation}` has no varlen "
                f"kernel, so it attends over a ({training.per_device_train_batch_size}x{training.max_length})^2 mask; "
                "use `packing_strategy: wrapped` (fixed rows) or `padding_free: false`, or a varlen kernel "
                "(flash_attention_4)"
            )
    package = kernel_package_problem(implementation)
    if package and not rehearsal and (gpu_available or implementation.startswith("flash")):
        problems.append(f"`attn_implementation: {implementation}` {package}; `pip install -e \".[gpu]\"` or use sdpa")
    return problems


def _accelerate_problems(training, architecture: dict | None, accelerate: AccelerateSetup | None) -> list[str]:
    if accelerate is None:
        return []
    problems, source = [], accelerate.source
    experts = int((architecture or {}).get("num_experts", 0) or 0)
    if accelerate.distributed_type == "DEEPSPEED":
        if importlib.util.find_spec("deepspeed") is None:
            problems.append(f"{source} uses DeepSpeed, which is not installed: `pip install -e \".[gpu]\"`")
        if accelerate.zero_stage == 3 and not accelerate.zero3_save_16bit_model:
            problems.append(
                f"{source}: ZeRO-3 without `zero3_save_16bit_model: true` saves no weights into "
                "<stage>_final, so the next stage cannot load it; set it to true"
            )
        if accelerate.zero_stage == 3 and experts and MOE_LAYER_CLASS not in accelerate.moe_layer_classes:
            problems.append(
                f"{source}: a mixture-of-experts model under ZeRO-3 needs `deepspeed_moe_layer_cls_names: "
                f"{MOE_LAYER_CLASS}` (experts a batch skips would otherwise stall the parameter gather)"
            )
    if (
        accelerate.distributed_type == "FSDP"
        and accelerate.fsdp_layer_classes
        and DECODER_LAYER_CLASS not in accelerate.fsdp_layer_classes
    ):
        problems.append(
            f"{source}: `fsdp_transformer_layer_cls_to_wrap` must name {DECODER_LAYER_CLASS}, got "
            f"{', '.join(accelerate.fsdp_layer_classes)}"
        )
    if (
        accelerate.distributed_type in ("MULTI_GPU", "MULTI_CPU")
        and accelerate.num_processes > 1
        and training.ddp_find_unused_parameters is None
    ):
        problems.append(
            "`ddp_find_unused_parameters` is unset, so DDP may search the autograd graph every step; set it "
            "to false (every parameter of this model gets a gradient each step, unrouted experts included)"
        )
    return problems


def _output_problems(
    stage: str, training, script, architecture: dict | None, model_args, finished_ok: bool
) -> list[str]:
    problems = []
    output_dir = os.path.abspath(training.output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return [FileProblem(f"`output_dir` {training.output_dir} is a file, not a folder")]
    existing = existing_parent(output_dir)
    if not os.access(existing, os.W_OK | os.X_OK):
        return [
            FileProblem(f"`output_dir` {training.output_dir}: {existing} is not writable; choose another output_dir")
        ]
    needed = _bytes_to_save(architecture, model_args)
    free = shutil.disk_usage(existing).free
    if needed and free < needed:
        problems.append(
            FileProblem(
                f"`output_dir` {training.output_dir}: {free / 2**30:.1f} GiB free on its disk, a "
                f"checkpoint and the final model need about {needed / 2**30:.1f} GiB; free space "
                "or choose another output_dir"
            )
        )
    final = final_folder(output_dir)
    if not (script.overwrite_final or finished_ok) and final_model_problem(final) is None:
        problems.append(
            f"{final} already holds a finished model; pass --overwrite_final true to replace it (it is "
            "replaced only once the new one is complete), or choose another output_dir"
        )
    resume = resume_request(training.resume_from_checkpoint)
    if resume not in ("auto", "fresh"):
        problem = named_checkpoint_problem(resume)
        if problem:
            problems.append(FileProblem(f"`resume_from_checkpoint` {resume} cannot be resumed from: {problem}"))
    return problems


def _bytes_to_save(architecture: dict | None, model_args) -> int:
    """Disk one checkpoint plus the final model need, from the starting weights or the parameter count."""
    folder = model_args.model_name_or_path
    if folder and os.path.isdir(folder):
        weights = sum(
            os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder) if name.endswith(".safetensors")
        )
        return weights * BYTES_PER_PARAMETER_SAVED // 4
    if not architecture:
        return 0
    hidden, layers = architecture.get("hidden_size", 0), architecture.get("num_hidden_layers", 0)
    intermediate = architecture.get("intermediate_size", 0) * max(1, architecture.get("num_experts", 0) or 0)
    vocab = architecture.get("vocab_size", model_args.tokenizer_vocab_size)
    parameters = layers * (4 * hidden * hidden + 3 * hidden * intermediate) + vocab * hidden
    return parameters * BYTES_PER_PARAMETER_SAVED


def _adapter_problems(
    model_args, accelerate: AccelerateSetup | None, gpu_available: bool, rehearsal: bool
) -> list[str]:
    """LoRA and QLoRA (`modeling_modern_llm.training.adapters`): 4/8-bit weights need bitsandbytes on a CUDA GPU."""
    problems = []
    quantized = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit" if model_args.load_in_8bit else None
    if quantized and not model_args.use_peft:
        problems.append(
            f"`{quantized}: true` quantizes weights that cannot then be trained; QLoRA needs `use_peft: true`"
        )
    if quantized and not rehearsal:  # a rehearsal runs it as LoRA over full-precision weights, and says so
        if not gpu_available:
            problems.append(
                f"`{quantized}: true` (QLoRA) needs bitsandbytes and a CUDA GPU, and this machine has no "
                "GPU; remove it (LoRA over full-precision weights runs on a CPU)"
            )
        elif importlib.util.find_spec("bitsandbytes") is None:
            problems.append(f"`{quantized}: true` (QLoRA) needs the bitsandbytes package: `pip install bitsandbytes`")
    sharded = accelerate is not None and (accelerate.distributed_type == "FSDP" or accelerate.zero_stage == 3)
    if model_args.use_peft and sharded:
        problems.append(
            f"`use_peft: true` under {accelerate.source}, which shards the weights: the merged "
            "<stage>_final needs the whole model in one process; run LoRA under DDP "
            "(accelerate_configs/multi_gpu.yaml) or ZeRO-2 (its weights are small anyway)"
        )
    return problems


def _report_problems(training) -> list[str]:
    problems = []
    for name in training.report_to or []:
        modules = REPORT_MODULES.get(name)
        if modules and not any(importlib.util.find_spec(module) for module in modules):
            problems.append(
                f"`report_to: {name}` needs the `{modules[0]}` package, which is not installed; "
                f"`pip install {modules[0]}` or set report_to: none"
            )
    return problems


def _vllm_problems(training, rehearsal: bool) -> list[str]:
    if getattr(training, "use_vllm", False) and not rehearsal and importlib.util.find_spec("vllm") is None:
        return [
            "`use_vllm: true` needs the vllm package, which is not installed: `pip install vllm` (a CUDA machine), "
            "or set use_vllm: false"
        ]
    return []


def evaluation_problems() -> list[str]:
    """What the pipeline's evaluation step (eval/evaluate_tasks.py) needs installed: lm-evaluation-harness."""
    minimum = ".".join(map(str, LM_EVAL_MINIMUM))
    try:
        version = metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        found = "it is not installed"
    else:
        if tuple(int(part) for part in re.findall(r"\d+", version)[:3]) >= LM_EVAL_MINIMUM:
            return []
        found = f"{version} is installed"
    return [
        f"the evaluation step runs lm-evaluation-harness >= {minimum} and {found}: "
        f"`pip install 'lm-eval>={minimum}'` (modern-llm's own install brings it), or set skip_eval: true"
    ]


def stage_problems(
    stage: str,
    script,
    training,
    model_args,
    *,
    architecture: dict | None = None,
    accelerate: AccelerateSetup | None = None,
    check_inputs: bool = True,
    rehearsal: bool = False,
    finished_ok: bool = False,
) -> list[str]:
    """Every problem of one stage's configuration, one line each (empty when it can run).

    ``architecture``: the model's config fields when known (by default from ``model_config`` or the starting folder);
    ``check_inputs``: whether the starting folder must exist already (False when the pipeline validates a stage
    whose input an earlier stage will write); ``rehearsal``: kernels missing here are swapped for sdpa later;
    ``finished_ok``: a finished ``<stage>_final`` is no problem (the pipeline skips such stages).
    """
    architecture = architecture if architecture is not None else architecture_of(model_args)
    gpu_available = torch.cuda.is_available()
    return [
        *_number_problems(stage, training, script),
        *_data_problems(stage, script, training),
        *_model_problems(stage, model_args, training, architecture, check_inputs),
        *_precision_problems(training, model_args, accelerate),
        *_attention_problems(stage, training, model_args, architecture, gpu_available, rehearsal),
        *_accelerate_problems(training, architecture, accelerate),
        *_adapter_problems(model_args, accelerate, gpu_available, rehearsal),
        *_output_problems(stage, training, script, architecture, model_args, finished_ok),
        *_report_problems(training),
        *(_vllm_problems(training, rehearsal) if stage != "grpo" else []),  # GRPO refuses vLLM outright (below)
        *stage_push_problems(training, check_machine=not rehearsal),
        *(_grpo_problems(training, architecture, check_inputs) if stage == "grpo" else []),
    ]


def validate_stage(stage: str, script, training, model_args) -> None:
    """The recipe's own check before it loads anything: a `UsageError` listing every problem, one per line."""
    problems = stage_problems(
        stage,
        script,
        training,
        model_args,
        accelerate=AccelerateSetup.from_environment(),
        rehearsal=os.environ.get("MODERN_LLM_REHEARSAL") == "1",
    )
    if problems:
        raise problems_error([type(problem)(f"{stage}: {problem}") for problem in problems])


def stage_main(stage: str, main) -> None:
    """A recipe's entry point: parse its command line, run ``main``; input errors are one line and an exit status."""
    die_with_parent_if_asked()
    run_command(lambda: main(*parse_stage_args(stage, sys.argv[1:])))
