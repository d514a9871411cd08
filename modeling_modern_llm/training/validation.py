"""Checks of a stage's configuration that need no model, tokenizer or dataset: they run before anything loads.

A cluster run that crashes after hours in a queue, or after pretraining finished, costs a day. So
`recipes/pipeline.py` checks every stage before the first one starts, and each recipe checks itself before it
loads anything. Each check returns `Problem` objects (`problems`): the field, what is wrong and the fix, and whether
it is a wrong value or a file; `problems_error` carries them all to the command's one-line error
(`modeling_modern_llm.errors`). A value out of range of one field is refused earlier, by its argument dataclass
(`arguments`, when the command line is parsed), and what transformers and TRL refuse themselves is not checked here.

What is checked, and why (the traps are in docs/TRAINING.md):
- the model a stage builds (`model_config` must be a valid `ModernLLMConfig`) or starts from (a model folder);
- the data (registry names, splits, `local_data_dir` files);
- the attention kernel against the model (sinks need a kernel that trains them; padding-free batches need a
  varlen kernel, since on sdpa/eager they become one row with a quadratic mask);
- precision (`bf16: true` with fp32 master weights; half-precision weights under Trainer are refused);
- the accelerate config against the stage (`accelerate_setup`: ZeRO-3 must gather the weights at save; the MoE block
  must be a ZeRO-3 leaf; its mixed precision must agree with the stage's);
- the outputs (a writable folder with room for a checkpoint, `disk_estimate`; a finished `<stage>_final` is not
  replaced unless `overwrite_final`), the logging integrations it reports to, the checkpoint named by
  `resume_from_checkpoint`;
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
import shutil
import sys
from importlib import metadata

import torch

from .. import attention_capabilities, check_attention_implementation
from ..errors import run_command
from ..files import existing_parent
from ..processes import die_with_parent_if_asked
from ..stages import final_folder
from .accelerate_setup import AccelerateSetup, accelerate_config_of
from .arguments import STAGE_ARGUMENTS, ModelArguments, parse_stage_args, read_config
from .checkpoints import final_model_problem, named_checkpoint_problem, resume_request, weights_problem
from .disk_estimate import bytes_to_save
from .hub import stage_push_problems
from .problems import Problem, file_problem, problems_error, usage_problem

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


def _data_problems(stage: str, script, training) -> list[Problem]:
    from modeling_modern_llm.data import REGISTRY
    from modeling_modern_llm.data.registry import local_split_file

    try:
        mixture = script.mixture()
    except ValueError as error:
        return [usage_problem(error, "dataset_mixture")]
    if not mixture:
        return [usage_problem(f"set `dataset_name` or `dataset_mixture` (registry names: {', '.join(REGISTRY)})")]
    problems = []
    if script.local_data_dir is not None and not os.path.isdir(script.local_data_dir):
        problems.append(
            file_problem(
                f"`local_data_dir` {script.local_data_dir} is not a folder (it should hold "
                "<registry name>/<split>.jsonl|.parquet files in the Hub schema)",
                "local_data_dir",
            )
        )
    splits = [script.dataset_train_split] + ([script.dataset_test_split] if training.eval_strategy != "no" else [])
    field = "dataset_mixture" if script.dataset_mixture else "dataset_name"
    for name, weight in mixture:
        if name not in REGISTRY:
            problems.append(
                usage_problem(f"dataset {name!r} is not in the registry; known names: {', '.join(REGISTRY)}", field)
            )
            continue
        if not (weight > 0 and math.isfinite(weight)):
            problems.append(
                usage_problem(
                    f"dataset_mixture: the weight of {name} must be a finite positive number, got {weight}",
                    "dataset_mixture",
                )
            )
        spec = REGISTRY[name]
        if stage == "grpo" and spec.kind != "gsm8k":
            problems.append(
                usage_problem(
                    f"dataset {name!r} holds {spec.kind} rows; GRPO's rewards check GSM8K answers: use "
                    "embedded-gsm8k or gsm8k",
                    field,
                )
            )
        for split in splits:
            if split not in spec.splits:
                test = split == script.dataset_test_split
                fix = "set `eval_strategy: \"no\"`" if test else "set `dataset_train_split`"
                problems.append(
                    usage_problem(
                        f"dataset {name!r} has no split {split!r} (its splits: {', '.join(spec.splits)}); {fix}",
                        "dataset_test_split" if test else "dataset_train_split",
                    )
                )
            elif script.local_data_dir and os.path.isdir(script.local_data_dir) and not spec.embedded:
                try:
                    local_split_file(script.local_data_dir, name, split)
                except Exception as error:  # noqa: BLE001 (DatasetUnavailableError names the file and the fix)
                    problems.append(file_problem(error, "local_data_dir"))
    return problems


def _model_config_problems(fields: dict, vocab_size: int) -> list[Problem]:
    """A from-scratch ``model_config``: known fields, the required ones, and a config `ModernLLMConfig` accepts."""
    from modeling_modern_llm.configuration_modern_llm import InvalidModernLLMConfig, ModernLLMConfig

    problems = []
    known = set(inspect.signature(ModernLLMConfig.__init__).parameters) | set(ModernLLMConfig().to_dict())
    unknown = sorted(set(fields) - known)
    if unknown:
        problems.append(
            usage_problem(
                f"model_config: unknown field(s) {unknown}; ModernLLMConfig has no such field", "model_config"
            )
        )
    missing = [name for name in REQUIRED_MODEL_FIELDS if name not in fields]
    if missing:
        problems.append(usage_problem(f"model_config: missing field(s) {missing}", "model_config"))
    if not unknown:
        try:
            ModernLLMConfig(**{"vocab_size": vocab_size, **fields})
        except InvalidModernLLMConfig as error:  # the model's own checks, one sentence each
            problems.append(usage_problem("model_config: " + " ".join(error.problems), "model_config"))
        except (ValueError, TypeError) as error:  # a value of the wrong type, refused by transformers or Python
            problems.append(usage_problem("model_config: " + " ".join(str(error).split()), "model_config"))
    return problems


def _model_problems(stage: str, model_args, training, architecture: dict | None, check_inputs: bool) -> list[Problem]:
    problems = []
    if stage == "pretrain" and model_args.model_name_or_path and model_args.model_config:
        problems.append(
            usage_problem(
                "set `model_config` (a new model) or `model_name_or_path` (continue pretraining a saved one), not both",
                "model_config",
            )
        )
    elif stage == "pretrain" and not model_args.model_name_or_path:
        fields = model_args.model_config
        if not fields:
            return [
                usage_problem(
                    "`model_config` (the ModernLLMConfig fields of the new model) is missing; or set "
                    "`model_name_or_path` to continue pretraining a saved model",
                    "model_config",
                )
            ]
        if model_args.use_peft:
            problems.append(
                usage_problem(
                    "`use_peft: true` trains a LoRA adapter on a saved model, not on a new one: set "
                    "`model_name_or_path` (continued pretraining) instead of `model_config`, or "
                    "use_peft: false",
                    "use_peft",
                )
            )
        problems += _model_config_problems(fields, model_args.tokenizer_vocab_size)
        tokenizer = model_args.tokenizer_name_or_path
        if (
            tokenizer
            and _looks_local(tokenizer)
            and not os.path.isfile(os.path.join(tokenizer, "tokenizer_config.json"))
        ):
            problems.append(
                file_problem(
                    f"`tokenizer_name_or_path` {tokenizer} is not a saved tokenizer folder (no tokenizer_config.json)",
                    "tokenizer_name_or_path",
                )
            )
    elif not model_args.model_name_or_path:
        problems.append(
            usage_problem("`model_name_or_path` (the previous stage's *_final folder) is missing", "model_name_or_path")
        )
    elif check_inputs and _looks_local(model_args.model_name_or_path):
        problems += _model_folder_problems(model_args.model_name_or_path)
    limit = (model_args.model_config or {}).get("max_position_embeddings") if stage == "pretrain" else None
    if limit and training.max_length and training.max_length > limit:  # packed rows are exactly max_length long
        problems.append(
            usage_problem(
                f"`max_length` {training.max_length} exceeds model_config.max_position_embeddings {limit}; "
                "lower max_length or raise max_position_embeddings",
                "max_length",
            )
        )
    return problems


def _grpo_problems(training, architecture: dict | None, check_inputs: bool) -> list[Problem]:
    """The GRPO stage's own settings: rewards and their weights, generation, and lengths against the model (the
    ranges of its numbers are `GRPOStageConfig`'s)."""
    from .grpo import REWARD_NAMES

    problems = []
    names = list(training.reward_funcs or [])
    if not names:
        problems.append(
            usage_problem(f"`reward_funcs` is empty: name at least one of {', '.join(REWARD_NAMES)}", "reward_funcs")
        )
    unknown = [name for name in names if name not in REWARD_NAMES and "." not in name]
    if unknown:
        problems.append(
            usage_problem(
                f"`reward_funcs`: unknown reward(s) {unknown}; choose from {', '.join(REWARD_NAMES)} or give a "
                "dotted import path (package.module.function)",
                "reward_funcs",
            )
        )
    if training.reward_weights is not None and len(training.reward_weights) != len(names):
        problems.append(
            usage_problem(
                f"`reward_weights` has {len(training.reward_weights)} weight(s) for {len(names)} reward(s) "
                f"{names}; give one weight per reward, in the same order",
                "reward_weights",
            )
        )
    verifier = training.reward_model_name_or_path
    if "verifier" in names and not verifier:
        problems.append(
            usage_problem(
                "the `verifier` reward needs `reward_model_name_or_path`: the verifier folder "
                "(<run>/verifier_final; the pipeline sets it)",
                "reward_model_name_or_path",
            )
        )
    elif "verifier" in names and check_inputs and _looks_local(verifier):
        problems += _verifier_folder_problems(verifier)
    positions = (architecture or {}).get("max_position_embeddings")
    if positions and training.max_completion_length and training.max_completion_length >= positions:
        problems.append(
            usage_problem(
                f"`max_completion_length` {training.max_completion_length} leaves no room for the prompt within "
                f"the model's max_position_embeddings {positions}; lower it (prompts longer than the rest are "
                "left out)",
                "max_completion_length",
            )
        )
    if training.use_vllm:
        problems.append(
            usage_problem(
                "`use_vllm: true`: vLLM has no implementation of this remote-code architecture (attention "
                "sinks), so its samples' log-probs would not be this model's; set use_vllm: false (generation "
                "runs through transformers' generate)",
                "use_vllm",
            )
        )
    if training.use_transformers_continuous_batching:
        problems.append(
            usage_problem(
                "`use_transformers_continuous_batching: true` runs transformers' paged attention, which is not "
                "checked against this model's attention sinks; set it to false (plain generate)",
                "use_transformers_continuous_batching",
            )
        )
    return problems


def _verifier_folder_problems(path: str) -> list[Problem]:
    """The verifier reward's folder must hold a saved sequence-classification model with its tokenizer."""
    field = "reward_model_name_or_path"
    problems = _model_folder_problems(path, field)
    if problems:
        return problems
    with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
        architectures = json.load(handle).get("architectures") or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        found = ", ".join(architectures) or "model of unknown class"
        return [
            file_problem(
                f"`{field}` {path} is a {found}, not a verifier (sequence classification): pass <run>/verifier_final",
                field,
            )
        ]
    return []


def _looks_local(path: str) -> bool:
    return os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") != 1


def _model_folder_problems(path: str, field: str = "model_name_or_path") -> list[Problem]:
    """A starting model folder (named by ``field``) must hold a readable config, tokenizer and whole weights
    (checked without loading)."""
    if not os.path.isdir(path):
        return [
            file_problem(
                f"`{field}` {path} does not exist (run the previous stage first, or name a model folder)", field
            )
        ]
    missing = [
        name for name in ("config.json", "tokenizer_config.json") if not os.path.isfile(os.path.join(path, name))
    ]
    if missing:
        return [
            file_problem(
                f"`{field}` {path} is not a saved model with its tokenizer (missing {', '.join(missing)})", field
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
                file_problem(
                    f"`{field}` {path}: {name} is corrupt (not JSON); save the model again or restore it", field
                )
            ]
    problem = weights_problem(path)
    if problem:
        return [
            file_problem(
                f"`{field}` {path}: {problem}; rerun the stage that wrote it (its checkpoints resume it)", field
            )
        ]
    return []


def _precision_problems(training, model_args, accelerate: AccelerateSetup | None) -> list[Problem]:
    problems = []
    if model_args.dtype in ("bfloat16", "float16") and not model_args.use_peft:
        problems.append(
            usage_problem(
                f"`dtype: {model_args.dtype}` loads the weights in half precision and Trainer then trains them without "
                "fp32 master weights (small AdamW updates round away); remove `dtype` and keep `bf16: true`, which is "
                "autocast over fp32 weights",
                "dtype",
            )
        )
    wanted = "bf16" if training.bf16 else "fp16" if training.fp16 else "no"
    if accelerate is not None and accelerate.mixed_precision not in (wanted, "None"):
        problems.append(
            usage_problem(
                f"the accelerate config ({accelerate.source}) sets mixed_precision: {accelerate.mixed_precision} "
                f"but the stage sets bf16: {bool(training.bf16)}, fp16: {bool(training.fp16)}; make them agree",
                "bf16",
            )
        )
    return problems


def _attention_problems(
    stage: str, training, model_args, architecture: dict | None, gpu_available: bool, rehearsal: bool
) -> list[Problem]:
    implementation = model_args.attn_implementation or (architecture or {}).get("_attn_implementation") or "sdpa"
    sinks = bool((architecture or {}).get("attention_sinks", True))
    problems = []
    problem = check_attention_implementation(implementation, sinks, training=True)
    if problem:
        problems.append(usage_problem(problem, "attn_implementation"))
    if padding_free(stage, training):
        if training.padding_free and not training.packing and training.max_length is not None:
            problems.append(
                usage_problem(
                    "`padding_free: true` without packing does not enforce `max_length` (TRL refuses it); set "
                    "`padding_free: false`, or `packing: true`",
                    "padding_free",
                )
            )
        elif not attention_capabilities(implementation)["varlen"]:
            why = (
                ("`packing_strategy: " + training.packing_strategy + "`")
                if training.packing
                else "`padding_free: true`"
            )
            problems.append(
                usage_problem(
                    f"{why} flattens each batch into one row, and `attn_implementation: {implementation}` has no "
                    f"varlen kernel, so it attends over a ({training.per_device_train_batch_size}x"
                    f"{training.max_length})^2 mask; use `packing_strategy: wrapped` (fixed rows) or "
                    "`padding_free: false`, or a varlen kernel (flash_attention_4)",
                    "packing_strategy" if training.packing else "padding_free",
                )
            )
    package = kernel_package_problem(implementation)
    if package and not rehearsal and (gpu_available or implementation.startswith("flash")):
        problems.append(
            usage_problem(
                f"`attn_implementation: {implementation}` {package}; `pip install -e \".[gpu]\"` or use sdpa",
                "attn_implementation",
            )
        )
    return problems


def _accelerate_problems(training, architecture: dict | None, accelerate: AccelerateSetup | None) -> list[Problem]:
    if accelerate is None:
        return []
    problems, source = [], accelerate.source
    experts = int((architecture or {}).get("num_experts", 0) or 0)
    if accelerate.distributed_type == "DEEPSPEED":
        if importlib.util.find_spec("deepspeed") is None:
            problems.append(
                usage_problem(f"{source} uses DeepSpeed, which is not installed: `pip install -e \".[gpu]\"`")
            )
        if accelerate.zero_stage == 3 and not accelerate.zero3_save_16bit_model:
            problems.append(
                usage_problem(
                    f"{source}: ZeRO-3 without `zero3_save_16bit_model: true` saves no weights into "
                    "<stage>_final, so the next stage cannot load it; set it to true"
                )
            )
        if accelerate.zero_stage == 3 and experts and MOE_LAYER_CLASS not in accelerate.moe_layer_classes:
            problems.append(
                usage_problem(
                    f"{source}: a mixture-of-experts model under ZeRO-3 needs `deepspeed_moe_layer_cls_names: "
                    f"{MOE_LAYER_CLASS}` (experts a batch skips would otherwise stall the parameter gather)"
                )
            )
    if (
        accelerate.distributed_type == "FSDP"
        and accelerate.fsdp_layer_classes
        and DECODER_LAYER_CLASS not in accelerate.fsdp_layer_classes
    ):
        problems.append(
            usage_problem(
                f"{source}: `fsdp_transformer_layer_cls_to_wrap` must name {DECODER_LAYER_CLASS}, got "
                f"{', '.join(accelerate.fsdp_layer_classes)}"
            )
        )
    if (
        accelerate.distributed_type in ("MULTI_GPU", "MULTI_CPU")
        and accelerate.num_processes > 1
        and training.ddp_find_unused_parameters is None
    ):
        problems.append(
            usage_problem(
                "`ddp_find_unused_parameters` is unset, so DDP may search the autograd graph every step; set it "
                "to false (every parameter of this model gets a gradient each step, unrouted experts included)",
                "ddp_find_unused_parameters",
            )
        )
    return problems


def _output_problems(
    stage: str, training, script, architecture: dict | None, model_args, finished_ok: bool
) -> list[Problem]:
    problems = []
    output_dir = os.path.abspath(training.output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        return [file_problem(f"`output_dir` {training.output_dir} is a file, not a folder", "output_dir")]
    existing = existing_parent(output_dir)
    if not os.access(existing, os.W_OK | os.X_OK):
        return [
            file_problem(
                f"`output_dir` {training.output_dir}: {existing} is not writable; choose another output_dir",
                "output_dir",
            )
        ]
    needed = bytes_to_save(architecture, model_args)
    free = shutil.disk_usage(existing).free
    if needed and free < needed:
        problems.append(
            file_problem(
                f"`output_dir` {training.output_dir}: {free / 2**30:.1f} GiB free on its disk, a "
                f"checkpoint and the final model need about {needed / 2**30:.1f} GiB; free space "
                "or choose another output_dir",
                "output_dir",
            )
        )
    final = final_folder(output_dir)
    if not (script.overwrite_final or finished_ok) and final_model_problem(final) is None:
        problems.append(
            usage_problem(
                f"{final} already holds a finished model; pass --overwrite_final true to replace it (it is "
                "replaced only once the new one is complete), or choose another output_dir",
                "overwrite_final",
            )
        )
    resume = resume_request(training.resume_from_checkpoint)
    if resume not in ("auto", "fresh"):
        problem = named_checkpoint_problem(resume)
        if problem:
            problems.append(
                file_problem(
                    f"`resume_from_checkpoint` {resume} cannot be resumed from: {problem}", "resume_from_checkpoint"
                )
            )
    return problems


def _adapter_problems(
    model_args, accelerate: AccelerateSetup | None, gpu_available: bool, rehearsal: bool
) -> list[Problem]:
    """LoRA and QLoRA (`modeling_modern_llm.training.adapters`): 4/8-bit weights need bitsandbytes on a CUDA GPU."""
    problems = []
    quantized = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit" if model_args.load_in_8bit else None
    if quantized and not model_args.use_peft:
        problems.append(
            usage_problem(
                f"`{quantized}: true` quantizes weights that cannot then be trained; QLoRA needs `use_peft: true`",
                quantized,
            )
        )
    if quantized and not rehearsal:  # a rehearsal runs it as LoRA over full-precision weights, and says so
        if not gpu_available:
            problems.append(
                usage_problem(
                    f"`{quantized}: true` (QLoRA) needs bitsandbytes and a CUDA GPU, and this machine has no "
                    "GPU; remove it (LoRA over full-precision weights runs on a CPU)",
                    quantized,
                )
            )
        elif importlib.util.find_spec("bitsandbytes") is None:
            problems.append(
                usage_problem(
                    f"`{quantized}: true` (QLoRA) needs the bitsandbytes package: `pip install bitsandbytes`",
                    quantized,
                )
            )
    sharded = accelerate is not None and (accelerate.distributed_type == "FSDP" or accelerate.zero_stage == 3)
    if model_args.use_peft and sharded:
        problems.append(
            usage_problem(
                f"`use_peft: true` under {accelerate.source}, which shards the weights: the merged "
                "<stage>_final needs the whole model in one process; run LoRA under DDP "
                "(accelerate_configs/multi_gpu.yaml) or ZeRO-2 (its weights are small anyway)",
                "use_peft",
            )
        )
    return problems


def _report_problems(training) -> list[Problem]:
    problems = []
    for name in training.report_to or []:
        modules = REPORT_MODULES.get(name)
        if modules and not any(importlib.util.find_spec(module) for module in modules):
            problems.append(
                usage_problem(
                    f"`report_to: {name}` needs the `{modules[0]}` package, which is not installed; "
                    f"`pip install {modules[0]}` or set report_to: none",
                    "report_to",
                )
            )
    return problems


def _vllm_problems(training, rehearsal: bool) -> list[Problem]:
    if getattr(training, "use_vllm", False) and not rehearsal and importlib.util.find_spec("vllm") is None:
        return [
            usage_problem(
                "`use_vllm: true` needs the vllm package, which is not installed: `pip install vllm` (a CUDA "
                "machine), or set use_vllm: false",
                "use_vllm",
            )
        ]
    return []


def evaluation_problems() -> list[Problem]:
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
        Problem(
            stage="evaluation",
            field="skip_eval",
            message=f"the evaluation step runs lm-evaluation-harness >= {minimum} and {found}: "
            f"`pip install 'lm-eval>={minimum}'` (modern-llm's own install brings it), or set skip_eval: true",
        )
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
) -> list[Problem]:
    """Every problem of one stage's configuration (empty when it can run), each naming ``stage``.

    ``architecture``: the model's config fields when known (by default from ``model_config`` or the starting folder);
    ``check_inputs``: whether the starting folder must exist already (False when the pipeline validates a stage
    whose input an earlier stage will write); ``rehearsal``: kernels missing here are swapped for sdpa later;
    ``finished_ok``: a finished ``<stage>_final`` is no problem (the pipeline skips such stages).
    """
    architecture = architecture if architecture is not None else architecture_of(model_args)
    gpu_available = torch.cuda.is_available()
    push = [usage_problem(line) for line in stage_push_problems(training, check_machine=not rehearsal)]
    problems = [
        *_data_problems(stage, script, training),
        *_model_problems(stage, model_args, training, architecture, check_inputs),
        *_precision_problems(training, model_args, accelerate),
        *_attention_problems(stage, training, model_args, architecture, gpu_available, rehearsal),
        *_accelerate_problems(training, architecture, accelerate),
        *_adapter_problems(model_args, accelerate, gpu_available, rehearsal),
        *_output_problems(stage, training, script, architecture, model_args, finished_ok),
        *_report_problems(training),
        *(_vllm_problems(training, rehearsal) if stage != "grpo" else []),  # GRPO refuses vLLM outright (below)
        *push,
        *(_grpo_problems(training, architecture, check_inputs) if stage == "grpo" else []),
    ]
    return [problem.at(stage) for problem in problems]


def validate_stage(stage: str, script, training, model_args) -> None:
    """The recipe's own check before it loads anything: a `UsageError` (an `InputFileError` when every problem is a
    file problem) listing every problem, one per line."""
    problems = stage_problems(
        stage,
        script,
        training,
        model_args,
        accelerate=AccelerateSetup.from_environment(),
        rehearsal=os.environ.get("MODERN_LLM_REHEARSAL") == "1",
    )
    if problems:
        raise problems_error(problems)


def stage_main(stage: str, main) -> None:
    """A recipe's entry point: parse its command line, run ``main``; input errors are one line and an exit status."""
    die_with_parent_if_asked()
    run_command(lambda: main(*parse_stage_args(stage, sys.argv[1:])))


__all__ = [
    "STAGE_ARGUMENTS",
    "AccelerateSetup",
    "Problem",
    "accelerate_config_of",
    "architecture_of",
    "evaluation_problems",
    "kernel_package_problem",
    "padding_free",
    "parse_stage_args",
    "problems_error",
    "read_config",
    "stage_main",
    "stage_problems",
    "validate_stage",
]
