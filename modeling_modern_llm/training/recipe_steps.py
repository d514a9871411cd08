"""The steps every recipe shares: data, tokenizer, model config, training with resume, and the final save."""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import resource
import shutil
import sys
import time

import datasets
import torch
import transformers

from ..errors import InputFileError, UsageError
from ..files import existing_parent, replace_folder
from ..stages import final_folder
from .callbacks import (
    GracefulStopCallback,
    InjectedLossScaleCallback,
    NonFiniteLossCallback,
    NonFiniteLossError,
    PerplexityCallback,
    ThroughputCallback,
)
from .checkpoints import (
    checkpoint_step,
    last_valid_checkpoint,
    named_checkpoint_problem,
    resume_request,
    set_aside_checkpoints,
)
from .adapters import ADAPTER_DIR, peft_summary, quantization_kwargs, save_adapter_and_merge
from .hub import PushTarget, push_folder
from .model_card import write_model_card, write_training_summary
from .optimization import excludes_sinks_and_norms

logger = logging.getLogger(__name__)
STOPPED_EXIT_CODE = 143  # 128 + SIGTERM: the stage saved a checkpoint and stopped; rerunning resumes it
# What the pipeline tells each stage process about how it was launched (recorded in training_summary.json).
LAUNCHER_ENV, ACCELERATE_CONFIG_ENV, REHEARSAL_ENV = (
    "MODERN_LLM_LAUNCHER",
    "MODERN_LLM_ACCELERATE_CONFIG",
    "MODERN_LLM_REHEARSAL",
)


def setup_stage(training_args) -> float:
    """Logging (alignment-handbook style) and token counting; returns the start time."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()  # transformers' own verbosity unless `log_level` is set
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    # The stage's own messages (resume, saves, world size) always show on the main process.
    logging.getLogger("modeling_modern_llm").setLevel(logging.INFO if training_args.should_log else level)
    if training_args.include_num_input_tokens_seen == "no":
        training_args.include_num_input_tokens_seen = "non_padding"  # feeds tokens_per_s
    logger.info("world_size=%d, device=%s, bf16=%s", training_args.world_size, training_args.device, training_args.bf16)
    return time.time()


def load_split(script_args, split: str, limit: int | None, seed: int):
    """The stage's dataset (one registry name or a weighted mixture), normalised per the data contract.

    ``seed`` shuffles a mixture; the embedded corpus is generated from ``script_args.embedded_corpus_seed``.
    """
    from modeling_modern_llm.data import build_mixture, load_dataset_by_name

    mixture = script_args.mixture()
    corpus_seed = script_args.embedded_corpus_seed
    if len(mixture) == 1:
        return load_dataset_by_name(
            mixture[0][0],
            split,
            local_dir=script_args.local_data_dir,
            streaming=script_args.dataset_streaming,
            limit=limit,
            seed=corpus_seed,
        )
    dataset = build_mixture(
        mixture,
        split,
        seed=seed,
        corpus_seed=corpus_seed,
        local_dir=script_args.local_data_dir,
        streaming=script_args.dataset_streaming,
    )
    if limit is None:
        return dataset
    return dataset.take(limit) if script_args.dataset_streaming else dataset.select(range(min(limit, len(dataset))))


def build_tokenizer(model_args, texts, save_dir: str):
    """A named tokenizer, or one trained on ``texts`` and kept in ``save_dir`` so a resumed run reuses it."""
    from modeling_modern_llm.tokenizer import load_tokenizer, train_tokenizer

    if model_args.tokenizer_name_or_path:
        return load_tokenizer(model_args.tokenizer_name_or_path)
    if os.path.isfile(os.path.join(save_dir, "tokenizer_config.json")):
        return load_tokenizer(save_dir)
    texts = itertools.islice(texts, model_args.tokenizer_train_samples)  # stops a streaming corpus early
    return train_tokenizer(texts, model_args.tokenizer_vocab_size, model_args.tokenizer_min_frequency, save_dir)


def build_model_config(model_args, tokenizer):
    """A ModernLLMConfig from the YAML's ``model_config`` (checked by `validate_stage` before anything loaded)."""
    from modeling_modern_llm import ModernLLMConfig

    fields = dict(model_args.model_config)
    if fields.setdefault("vocab_size", len(tokenizer)) < len(tokenizer):
        raise UsageError(
            f"model_config: vocab_size {fields['vocab_size']} < the tokenizer's {len(tokenizer)} tokens; "
            "remove vocab_size (it then comes from the tokenizer)"
        )
    if model_args.attn_implementation:
        fields["attn_implementation"] = model_args.attn_implementation
    return ModernLLMConfig(
        **fields,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def model_load_kwargs(model_args, quantized: bool = True) -> dict:
    """from_pretrained kwargs of a stage that starts from a saved model (QLoRA's 4/8-bit loading unless
    ``quantized`` is False)."""
    kwargs = {"dtype": model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return {**kwargs, **(quantization_kwargs(model_args) if quantized else {})}


def load_train_and_eval(script_args, training_args):
    """The stage's train split and, unless evaluation is off, its eval split (None then)."""
    train = load_split(script_args, script_args.dataset_train_split, script_args.max_train_samples, training_args.seed)
    if training_args.eval_strategy == "no":
        return train, None
    return train, load_split(
        script_args, script_args.dataset_test_split, script_args.max_eval_samples, training_args.seed
    )


def stage_callbacks(language_modelling: bool) -> list:
    # The graceful stop asks for a save before the non-finite guard looks, so a NaN run still never saves.
    return [
        GracefulStopCallback(),
        NonFiniteLossCallback(),
        ThroughputCallback(),
        *([PerplexityCallback()] if language_modelling else []),
    ]


def _callback(trainer, kind):
    return next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, kind))


def resume_checkpoint(trainer) -> str | None:
    """The checkpoint to resume from.

    - a path in ``resume_from_checkpoint`` wins (checked whole first); the checkpoints of ``output_dir`` saved after
      its step are set aside, since the run would save over them;
    - ``false``: step 0, every checkpoint of ``output_dir`` set aside (moved, not deleted);
    - otherwise the newest valid one in ``output_dir``.

    The main process moves and sets broken ones aside first, then the other ranks look, so no rank scans a folder
    while it is being renamed.
    """
    args = trainer.args
    request = resume_request(args.resume_from_checkpoint)
    if request not in ("auto", "fresh"):
        problem = named_checkpoint_problem(request)
        if problem:
            raise InputFileError(f"resume_from_checkpoint {request}: cannot resume from it ({problem})")
    with args.main_process_first(desc="choosing the checkpoint to resume from"):
        if request == "fresh":
            if trainer.is_world_process_zero():
                set_aside_checkpoints(args.output_dir)
            logger.info("resume_from_checkpoint is false: training from step 0")
            return None
        if request != "auto":
            if trainer.is_world_process_zero() and os.path.isdir(args.output_dir):
                set_aside_checkpoints(args.output_dir, after_step=checkpoint_step(request))
            return request
        return last_valid_checkpoint(args.output_dir, move_aside=trainer.is_world_process_zero())


def _disk_full(error: BaseException, folder: str) -> bool:
    """Whether an exception raised while saving means the disk is full (torch's zip writer hides ENOSPC)."""
    chain = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    if any(getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e) for e in chain):
        return True
    writer_failed = any("file write failed" in str(e) or "unexpected pos" in str(e) for e in chain)
    return writer_failed and shutil.disk_usage(existing_parent(folder)).free < 64 * 2**20


@contextlib.contextmanager
def disk_full_is_one_line(output_dir: str):
    """A full disk while training or saving becomes one line naming the folder and how the rerun resumes; the
    half-written checkpoint is set aside by the next run's check."""
    try:
        yield
    except Exception as error:  # safetensors, torch and the OS each raise their own type for ENOSPC
        if not _disk_full(error, output_dir):
            raise
        kept = last_valid_checkpoint(output_dir, move_aside=False)
        raise InputFileError(
            f"disk full while writing {output_dir}: free space there (or choose another output_dir) and rerun the "
            f"same command; it resumes from {kept or 'step 0'}"
        ) from None


def train_with_resume(trainer):
    """Train, resuming from the last *valid* checkpoint (optimizer, scheduler, RNG and data position).

    A SIGTERM/SIGUSR1 saves a checkpoint and exits with `STOPPED_EXIT_CODE`; a full disk is one line naming the
    folder (the half-written checkpoint is set aside at the next run, which resumes from the one before). The
    router-loss gradients the model injects are scaled like the loss under gradient accumulation
    (`InjectedLossScaleCallback`). The trainer must already keep the sinks and norm weights out of weight decay
    (`exclude_sinks_and_norms_from_weight_decay`, called by the recipe where it builds the trainer): every stage
    trains so, and a trainer without it is refused rather than fixed here.
    """
    if not excludes_sinks_and_norms(trainer):
        raise RuntimeError(
            "train_with_resume: the trainer decays the attention sinks; call "
            "exclude_sinks_and_norms_from_weight_decay(trainer) after building it"
        )
    args = trainer.args
    trainer.add_callback(InjectedLossScaleCallback(trainer))
    checkpoint = resume_checkpoint(trainer)
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)
    trainer.resumed_from = checkpoint
    with disk_full_is_one_line(args.output_dir):
        result = trainer.train(resume_from_checkpoint=checkpoint)
    guard = _callback(trainer, NonFiniteLossCallback)
    if guard.failure:
        kept = last_valid_checkpoint(args.output_dir, move_aside=False)
        raise NonFiniteLossError(
            f"Training stopped: {guard.failure}. Nothing was saved after it; the last good checkpoint is "
            f"{kept or '(none yet)'}. Lower learning_rate, raise warmup, or check the data, then rerun to resume."
        )
    if _callback(trainer, GracefulStopCallback).stopped:
        logger.warning(
            "Stopped at step %d on a signal; checkpoint-%d is saved. Rerun the same command to resume.",
            trainer.state.global_step,
            trainer.state.global_step,
        )
        raise SystemExit(STOPPED_EXIT_CODE)
    return result


def final_dir(training_args) -> str:
    """Where a stage's finished model goes: ``<output_dir>_final`` (runs contract: ``<run>/<stage>_final``)."""
    return final_folder(training_args.output_dir)


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def _command() -> str:
    return " ".join(["python", *sys.argv])


def how_it_ran(trainer) -> dict:
    """What actually ran (not what was asked): precision, the dtype the optimizer trains, kernel, batching, engine."""
    args, accelerator = trainer.args, trainer.accelerator
    model = accelerator.unwrap_model(trainer.model)
    trainable = next((p for p in model.parameters() if p.requires_grad), None)
    return {
        "mixed_precision": str(accelerator.mixed_precision),
        "param_dtype": str(trainable.dtype).removeprefix("torch.") if trainable is not None else None,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "packing": getattr(args, "packing", None),
        "packing_strategy": getattr(args, "packing_strategy", None) if getattr(args, "packing", False) else None,
        "padding_free": bool(getattr(trainer, "padding_free", False)),
        "torch_compile": bool(args.torch_compile),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
        "world_size": args.world_size,
        "distributed_type": str(accelerator.distributed_type.value),
        "accelerate_config": os.environ.get(ACCELERATE_CONFIG_ENV),
        "launcher": os.environ.get(LAUNCHER_ENV),
        "python": sys.executable,
        "rehearsal": os.environ.get(REHEARSAL_ENV) == "1",
        "resumed_from": getattr(trainer, "resumed_from", None),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "peak_host_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),  # ru_maxrss: KiB
    }


def _save_weights(trainer, folder: str) -> None:
    """The full model into ``folder`` whatever the engine: FSDP with sharded checkpoints gathers it here (Trainer's
    ``save_model`` would write no weights then), DeepSpeed and DDP go through ``save_model``."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        state_dict = trainer.accelerator.get_state_dict(trainer.model)  # a collective: every rank takes part
        if trainer.is_world_process_zero():
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(folder, state_dict=state_dict)
        return
    trainer.save_model(folder)


def _ready_for_inference(model, tokenizer) -> None:
    """Generation stops at the tokenizer's eos (and <|endoftext|>) and pads with its pad; the cache is back on."""
    if getattr(model, "generation_config", None) is not None:
        eos = tokenizer.convert_tokens_to_ids([tokenizer.eos_token, "<|endoftext|>"])
        model.generation_config.eos_token_id = list(dict.fromkeys(t for t in eos if t is not None))
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = True


def save_final(
    trainer,
    tokenizer,
    stage: str,
    script_args,
    model_args,
    start_time: float,
    eval_metrics: dict | None = None,
    extra_summary: dict | None = None,
    push: PushTarget | None = None,
) -> str:
    """Save model + tokenizer + generation config + model card + training_summary.json into ``<output_dir>_final``.

    Everything is written into ``<output_dir>_final.partial`` first and renamed into place once complete, so an
    interruption never leaves a final folder that looks finished, nor destroys an earlier one. After a LoRA run the
    folder holds the merged model and the adapter in ``adapter/`` (the trainer's model is merged in place: call
    this last). With ``push``, the finished folder is then uploaded to the Hub (`hub.push_folder`); a failed push is
    one line, and the folder stays.
    """
    args, folder = trainer.args, final_dir(trainer.args)
    staging = folder + ".partial"
    eval_metrics = {
        key: value
        for key, value in (eval_metrics or {}).items()
        if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second"))
    }
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    adapter = peft_summary(unwrapped)
    how = how_it_ran(trainer)  # before a merge unwraps the adapter
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    with disk_full_is_one_line(args.output_dir):
        if adapter is None:
            _ready_for_inference(trainer.model, tokenizer)
            _save_weights(trainer, staging)
            model = unwrapped
        elif trainer.is_world_process_zero():  # LoRA runs keep a whole model per process (validation)
            model = save_adapter_and_merge(unwrapped, staging, model_args.model_name_or_path)
            _ready_for_inference(model, tokenizer)
            model.save_pretrained(staging)
        if trainer.is_world_process_zero():
            tokenizer.save_pretrained(staging)
    if not trainer.is_world_process_zero():
        return folder
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    speeds = [entry["tokens_per_s"] for entry in history if "tokens_per_s" in entry]
    config_path = sys.argv[sys.argv.index("--config") + 1] if "--config" in sys.argv else None
    summary = {
        "stage": stage,
        "config_path": config_path,
        "command": _command(),
        "wall_time_s": round(time.time() - start_time, 1),
        "steps": trainer.state.global_step,
        "train_tokens": trainer.state.num_input_tokens_seen,
        "tokens_per_s": round(sum(speeds) / len(speeds), 1) if speeds else None,
        "final_loss": losses[-1] if losses else None,
        "datasets": [name for name, _ in script_args.mixture()],
        "per_device_batch_size": args.per_device_train_batch_size,
        "learning_rate": args.learning_rate,
        "hardware": _hardware(),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        **how,
        "peft": adapter,
        "eval_metrics": eval_metrics,
        **(extra_summary or {}),
    }
    write_training_summary(staging, summary)
    write_model_card(staging, summary, model.config.to_dict(), model_args.model_name_or_path, eval_metrics)
    replace_folder(staging, folder)
    logger.info(
        "Saved the %s model to %s%s",
        stage,
        folder,
        f" (merged; the LoRA adapter is in {folder}/{ADAPTER_DIR})" if adapter else "",
    )
    if push is not None:
        push_folder(folder, push.repo_id, private=push.private, revision=push.revision)
    return folder


__all__ = [
    "STOPPED_EXIT_CODE",
    "build_model_config",
    "build_tokenizer",
    "final_dir",
    "how_it_ran",
    "load_split",
    "load_train_and_eval",
    "model_load_kwargs",
    "resume_checkpoint",
    "save_final",
    "setup_stage",
    "stage_callbacks",
    "train_with_resume",
]
