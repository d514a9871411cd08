"""Rehearse a run on a small machine: each stage's own config, shrunk so the whole pipeline takes minutes on a CPU.

`python recipes/pipeline.py --config <scale>/pipeline.yaml --rehearse` runs every stage with its own trainer,
data path, packing, collator, precision, `torch_compile`, gradient checkpointing and checkpointing, and changes
only what makes it long or needs a GPU:

- the model keeps its architecture flags (sinks, QK-norm, experts, RoPE) at tiny widths;
- a few steps of tiny batches on the first rows of each dataset (read as configured: from `local_data_dir`, from
  the Hub where it is reachable, else from stand-ins: embedded-corpus rows written in each Hub dataset's exact
  schema, so the Hub normalisers still run);
- the verifier counts the reference solution as a correct candidate (`include_reference`), since a tiny policy
  trained for a few steps solves no problem;
- a kernel this machine cannot run (a flash kernel without a GPU) is first checked against the model, then swapped
  for sdpa; bf16 runs as autocast on a CPU; QLoRA runs as LoRA without a GPU; a multi-process launcher becomes
  one process. Each swap is said.
- nothing is pushed to the Hub (`push_to_hub` off in every stage, the pipeline's pushes skipped), said plainly.

Every stage is interrupted once (a real SIGTERM at `STOP_STEP`, as SLURM sends before the time limit) and resumed.
"""

from __future__ import annotations

import json
import os

import torch

from .. import check_attention_implementation
from .validation import kernel_package_problem

STOP_STEP, STEPS = 2, 4  # every stage saves at STOP_STEP when interrupted, resumes, and finishes at STEPS
TINY_MODEL = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,  # the GSM8K prompts (GRPO's with their chat template) in the tiny vocabulary
}
MAX_LENGTH, VOCAB_SIZE = 128, 512
TRAIN_ROWS, EVAL_ROWS, STANDIN_ROWS = 64, 8, 64
# The embedded dataset whose rows stand in for each Hub dataset (same Hub schema, normalised by the same code).
STANDIN_SOURCE = {
    "text": "embedded-text",
    "sft": "embedded-alpaca",
    "preference": "embedded-hh-rlhf",
    "gsm8k": "embedded-gsm8k",
    "sst2": "embedded-sst2",
}


def shrink_model_config(fields: dict) -> dict:
    """The same architecture at tiny widths: flags kept, GQA ratio kept where it divides, experts capped at 4."""
    heads, kv_heads = (
        fields.get("num_attention_heads", 4),
        fields.get("num_key_value_heads") or fields.get("num_attention_heads", 4),
    )
    group = heads // kv_heads if heads % kv_heads == 0 else 1
    shrunk = {key: value for key, value in fields.items() if key != "head_dim"}
    shrunk.update(
        TINY_MODEL,
        num_key_value_heads=max(1, TINY_MODEL["num_attention_heads"] // group)
        if TINY_MODEL["num_attention_heads"] % group == 0
        else TINY_MODEL["num_attention_heads"],
    )
    if fields.get("num_experts"):
        shrunk["num_experts"] = min(4, fields["num_experts"])
        shrunk["num_experts_per_tok"] = min(fields.get("num_experts_per_tok", 2), shrunk["num_experts"])
    return shrunk


def runnable_kernel(implementation: str | None, attention_sinks: bool) -> tuple[str | None, str | None]:
    """The kernel to rehearse with and, when it had to be swapped, why (said in the rehearsal's output)."""
    implementation = implementation or "sdpa"
    if implementation in ("sdpa", "eager"):
        return implementation, None
    problem = check_attention_implementation(implementation, attention_sinks, training=True)
    if problem:  # a real problem of the config: validation reports it; do not hide it behind a swap
        return implementation, None
    missing = kernel_package_problem(implementation)
    if torch.cuda.is_available() and not missing and implementation != "flex_attention":
        return implementation, None
    reason = missing or "this machine has no GPU"
    return "sdpa", f"attn_implementation {implementation} -> sdpa ({reason}; it was checked against the model first)"


def write_standins(folder: str, names: list[str], corpus_seed: int = 0) -> list[str]:
    """``folder/<name>/<split>.jsonl`` for each Hub dataset ``name``: the first rows of the embedded dataset of its
    kind, in its Hub schema. Returns the names written."""
    from modeling_modern_llm.data import REGISTRY
    from modeling_modern_llm.data.embedded import embedded_corpus_dir

    corpus = embedded_corpus_dir(corpus_seed)
    written = []
    for name in names:
        spec = REGISTRY[name]
        if spec.embedded:
            continue
        for split in spec.splits:
            source = (
                corpus
                / STANDIN_SOURCE[spec.kind]
                / f"{split if split in ('train', 'validation', 'test') else 'train'}.jsonl"
            )
            with open(source, encoding="utf-8") as handle:
                rows = [json.loads(line) for _, line in zip(range(STANDIN_ROWS), handle)]
            os.makedirs(os.path.join(folder, name), exist_ok=True)
            with open(os.path.join(folder, name, f"{split}.jsonl"), "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps({field: row[field] for field in spec.fields}) + "\n" for row in rows)
        written.append(name)
    return written


def stage_overrides(stage: str, training, model_args, architecture: dict | None) -> tuple[list[str], list[str]]:
    """The command-line overrides that shrink one stage, and the plain-words notes of what was swapped."""
    overrides = {
        "max_steps": STEPS,
        "save_steps": STOP_STEP,
        "logging_steps": 1,
        "warmup_steps": min(int(training.warmup_steps or 0), 1),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": min(training.gradient_accumulation_steps, 2),
        "max_train_samples": TRAIN_ROWS,
        "max_eval_samples": EVAL_ROWS,
    }
    notes = []
    if training.eval_strategy == "steps":
        overrides["eval_steps"] = STOP_STEP
    if getattr(training, "max_length", None):
        overrides["max_length"] = min(training.max_length, MAX_LENGTH)
    if stage == "pretrain" and model_args.model_config:  # (continued pretraining keeps its saved model)
        overrides.update(
            model_config=json.dumps(shrink_model_config(dict(model_args.model_config))),
            tokenizer_vocab_size=VOCAB_SIZE,
            tokenizer_train_samples=400,
        )
    if stage == "verifier":  # problems to sample, not rows to train on
        overrides.update(
            samples_per_problem=2,
            max_new_tokens=16,
            generation_batch_size=4,
            max_train_samples=8,
            max_eval_samples=4,
            num_fewshot=min(training.num_fewshot, 1),
        )
        if not training.include_reference:  # a few steps of a tiny policy solve nothing: no pair of its own samples
            overrides["include_reference"] = "true"
            notes.append(
                "verifier: the reference solution counted as a correct candidate beside the policy's samples "
                "(include_reference: a rehearsal's tiny policy solves no problem, so its own samples alone "
                "have nothing to tell apart)"
            )
    if stage == "grpo":  # 2 completions of a few tokens per prompt, the groups whole in a batch of 2
        overrides.update(
            num_generations=2, max_completion_length=min(training.max_completion_length, 16), verifier_batch_size=4
        )
        if training.num_generations_eval:
            overrides["num_generations_eval"] = 2
    kernel, swapped = runnable_kernel(
        model_args.attn_implementation, bool((architecture or {}).get("attention_sinks", True))
    )
    if swapped:
        overrides["attn_implementation"] = kernel
        notes.append(f"{stage}: {swapped}")
    if training.push_to_hub:
        overrides["push_to_hub"] = "false"
        notes.append(f"{stage}: not pushed to {training.hub_model_id} (a rehearsal never pushes to the Hub)")
    quantized = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit" if model_args.load_in_8bit else None
    if quantized and not torch.cuda.is_available():
        overrides[quantized] = "false"
        notes.append(f"{stage}: QLoRA ({quantized}) runs as LoRA over full-precision weights (no GPU for bitsandbytes)")
    if (training.bf16 or training.fp16) and not torch.cuda.is_available():
        overrides["use_cpu"] = "true"
        notes.append(f"{stage}: {'bf16' if training.bf16 else 'fp16'} runs as autocast on the CPU")
    return [word for key, value in overrides.items() for word in (f"--{key}", str(value))], notes


__all__ = ["STEPS", "STOP_STEP", "runnable_kernel", "shrink_model_config", "stage_overrides", "write_standins"]
