"""The steps every recipe shares: data, tokenizer, model config, training with resume, and the final save."""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import sys
import time

import datasets
import torch
import transformers

from .callbacks import NonFiniteLossCallback, NonFiniteLossError, PerplexityCallback, ThroughputCallback
from .checkpoints import last_valid_checkpoint
from .model_card import write_model_card, write_training_summary

logger = logging.getLogger(__name__)

# Fields a from-scratch model must state explicitly; the rest keep ModernLLMConfig's defaults.
REQUIRED_MODEL_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                         "num_key_value_heads", "max_position_embeddings")


def setup_stage(training_args) -> float:
    """Logging (alignment-handbook style) and token counting; returns the start time."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
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
        return load_dataset_by_name(mixture[0][0], split, local_dir=script_args.local_data_dir,
                                    streaming=script_args.dataset_streaming, limit=limit, seed=corpus_seed)
    dataset = build_mixture(mixture, split, seed=seed, corpus_seed=corpus_seed, local_dir=script_args.local_data_dir,
                            streaming=script_args.dataset_streaming)
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
    """A ModernLLMConfig from the YAML's ``model_config``; unknown or missing fields fail here, by name."""
    from modeling_modern_llm import ModernLLMConfig

    fields = dict(model_args.model_config)
    known = set(inspect.signature(ModernLLMConfig.__init__).parameters) | set(ModernLLMConfig().to_dict())
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"model_config: unknown field(s) {unknown}; ModernLLMConfig has no such field.")
    missing = [name for name in REQUIRED_MODEL_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"model_config: missing field(s) {missing}.")
    if fields.setdefault("vocab_size", len(tokenizer)) < len(tokenizer):
        raise ValueError(f"model_config: vocab_size {fields['vocab_size']} < the tokenizer's {len(tokenizer)} tokens.")
    if model_args.attn_implementation:
        fields["attn_implementation"] = model_args.attn_implementation
    return ModernLLMConfig(**fields, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)


def model_load_kwargs(model_args) -> dict:
    """from_pretrained kwargs of a stage that starts from a saved model."""
    kwargs = {"dtype": model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return kwargs


def load_train_and_eval(script_args, training_args):
    """The stage's train split and, unless evaluation is off, its eval split (None then)."""
    train = load_split(script_args, script_args.dataset_train_split, script_args.max_train_samples, training_args.seed)
    if training_args.eval_strategy == "no":
        return train, None
    return train, load_split(script_args, script_args.dataset_test_split, script_args.max_eval_samples,
                             training_args.seed)


def stage_callbacks(language_modelling: bool) -> list:
    return [NonFiniteLossCallback(), ThroughputCallback(), *([PerplexityCallback()] if language_modelling else [])]


def train_with_resume(trainer):
    """Train, resuming from the last *valid* checkpoint (optimizer, scheduler, RNG and data position)."""
    args = trainer.args
    checkpoint = last_valid_checkpoint(args.output_dir, move_aside=trainer.is_world_process_zero())
    if args.world_size > 1:
        trainer.accelerator.wait_for_everyone()  # every rank sees the same folders once rank 0 moved broken ones
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    guard = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, NonFiniteLossCallback))
    if guard.failure:
        kept = last_valid_checkpoint(args.output_dir, move_aside=False)
        raise NonFiniteLossError(
            f"Training stopped: {guard.failure}. Nothing was saved after it; the last good checkpoint is "
            f"{kept or '(none yet)'}. Lower learning_rate, raise warmup, or check the data, then rerun to resume.")
    return result


def final_dir(training_args) -> str:
    """Where a stage's finished model goes: ``<output_dir>_final`` (runs contract: ``<run>/<stage>_final``)."""
    return training_args.output_dir.rstrip("/") + "_final"


def _hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def _command() -> str:
    return " ".join(["python", *sys.argv])


def save_final(trainer, tokenizer, stage: str, script_args, model_args, start_time: float,
               eval_metrics: dict | None = None, extra_summary: dict | None = None) -> str:
    """Save model + tokenizer + generation config + model card + training_summary.json into ``<output_dir>_final``."""
    args, model, folder = trainer.args, trainer.model, final_dir(trainer.args)
    eval_metrics = {key: value for key, value in (eval_metrics or {}).items()
                    if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second"))}
    if getattr(model, "generation_config", None) is not None:
        eos = tokenizer.convert_tokens_to_ids([tokenizer.eos_token, "<|endoftext|>"])
        model.generation_config.eos_token_id = list(dict.fromkeys(t for t in eos if t is not None))
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = True
    trainer.save_model(folder)
    if not trainer.is_world_process_zero():
        return folder
    tokenizer.save_pretrained(folder)
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
        "world_size": args.world_size,
        "num_parameters": sum(p.numel() for p in trainer.accelerator.unwrap_model(model).parameters()),
        "eval_metrics": eval_metrics,
        **(extra_summary or {}),
    }
    write_training_summary(folder, summary)
    write_model_card(folder, summary, model.config.to_dict(), model_args.model_name_or_path, eval_metrics)
    logger.info("Saved the %s model to %s", stage, folder)
    return folder
