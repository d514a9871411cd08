"""Export a ModernLLM checkpoint as a plain `LlamaForCausalLM`, so vLLM, llama.cpp and every Llama tool serve it.

    python -m modeling_modern_llm.export_llama experiments/runs/demo/sft_final exports/demo-llama [--dtype bfloat16]

Only a ModernLLM built without the extras Llama lacks can be exported: attention sinks, QK-norm and
mixture-of-experts layers have no Llama equivalent, and the export refuses them rather than drop weights.
The parameter names are Llama's by construction, so the weights move over unchanged (checked by a strict
load). Before anything is written, both models run the same input and their logits must agree within
`tolerance` in float32. The tokenizer and the generation config travel along when the source has them. The
export is written into `<dst>.partial` and renamed into place once complete; a non-empty `dst` is replaced only
with `--overwrite`.
"""

from __future__ import annotations

import argparse
import os
import shutil

import torch
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.cli import InputFileError, UsageError, check_new_output, replace_folder, run_command
from modeling_modern_llm.training.checkpoints import weights_problem

# Config fields that mean the same thing in both models, copied as they are.
SHARED_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "initializer_range",
    "attention_dropout",
    "tie_word_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def unsupported_features(config: ModernLLMConfig) -> list[str]:
    """The fields of `config` that switch on something a Llama checkpoint cannot represent."""
    problems = []
    if getattr(config, "attention_sinks", False):
        problems.append("attention_sinks=True (learned per-head sink logits)")
    if getattr(config, "qk_norm", False):
        problems.append("qk_norm=True (RMSNorm on queries and keys)")
    if getattr(config, "num_experts", 0):
        problems.append(f"num_experts={config.num_experts} (mixture-of-experts MLP)")
    return problems


def to_llama_config(config: ModernLLMConfig) -> LlamaConfig:
    """The LlamaConfig of the same architecture; raises InputFileError (a ValueError) when there is none."""
    problems = unsupported_features(config)
    if problems:
        raise InputFileError(
            "This ModernLLM cannot be exported to Llama, which has no equivalent of: "
            + "; ".join(problems)
            + ". Only models trained with attention_sinks=False, qk_norm=False and num_experts=0 are exportable."
        )
    rope_parameters = getattr(config, "rope_parameters", None) or {
        "rope_type": "default",
        "rope_theta": config.rope_theta,
    }
    return LlamaConfig(
        **{name: getattr(config, name) for name in SHARED_CONFIG_FIELDS},
        rope_parameters=dict(rope_parameters),
        attention_bias=False,
        mlp_bias=False,
    )


def _max_logit_difference(source: torch.nn.Module, target: torch.nn.Module, vocab_size: int, max_length: int) -> float:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab_size, (2, min(16, max_length)), generator=generator)
    with torch.no_grad():
        return (source(input_ids).logits - target(input_ids).logits).abs().max().item()


def export_to_llama(
    src: str, dst: str, *, dtype: torch.dtype | str | None = None, tolerance: float = 1e-4, overwrite: bool = False
) -> str:
    """Write `src` (a saved ModernLLMForCausalLM folder) to `dst` as a LlamaForCausalLM checkpoint; return `dst`.

    `dtype` is the dtype of the written weights (default: the dtype `src` was saved in). The exported
    model's float32 logits must match the source's within `tolerance`, else nothing is written. A `dst` that
    already holds something is replaced only with `overwrite`, and only once the export is complete.
    """
    if not os.path.isfile(os.path.join(src, "config.json")):
        raise InputFileError(f"{src} is not a saved model folder (no config.json): pass a save_pretrained folder")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise UsageError(f"the destination {dst} is the source itself; choose another folder")
    check_new_output(dst, overwrite)
    problem = weights_problem(src)
    if problem:
        raise InputFileError(f"{src}: {problem}; save the model again or restore the folder")
    try:
        config = AutoConfig.from_pretrained(src)
    except (ValueError, OSError) as error:
        raise InputFileError(f"{src}/config.json cannot be read: {' '.join(str(error).split())[:300]}") from None
    if not isinstance(config, ModernLLMConfig):
        raise InputFileError(f"{src} holds a {config.model_type!r} model, not a {ModernLLMConfig.model_type!r} one")
    llama_config = to_llama_config(config)
    if dtype is None:
        dtype = config.dtype or torch.float32
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise UsageError(f"dtype={dtype!r} is not a torch dtype: use e.g. 'float32', 'bfloat16' or 'float16'.")
        dtype = getattr(torch, dtype)

    source = ModernLLMForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    llama = LlamaForCausalLM(llama_config).eval()
    missing, unexpected = llama.load_state_dict(source.state_dict(), strict=False)
    if missing or unexpected:  # a bug of the mapping, not of the input: keep the traceback
        raise ValueError(
            f"The weights of {src!r} do not map one-to-one onto Llama's: missing {missing}, unexpected {unexpected}. "
            "The ModernLLM parameter names must follow Llama's (docs/DESIGN.md)."
        )
    difference = _max_logit_difference(source, llama, config.vocab_size, config.max_position_embeddings)
    if difference > tolerance:  # likewise
        raise ValueError(
            f"The exported Llama's logits differ from the source's by up to {difference:.3g} (> {tolerance}): "
            "the source uses an architecture feature this export does not map. Nothing was written."
        )

    if os.path.isfile(os.path.join(src, "generation_config.json")):
        llama.generation_config = GenerationConfig.from_pretrained(src)
    staging = dst.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    llama.to(dtype).save_pretrained(staging)
    if any(os.path.isfile(os.path.join(src, name)) for name in TOKENIZER_FILES):
        AutoTokenizer.from_pretrained(src).save_pretrained(staging)
    replace_folder(staging, dst)
    return dst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder of a saved ModernLLMForCausalLM (save_pretrained)")
    parser.add_argument("dst", help="folder to write the LlamaForCausalLM checkpoint to")
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default=None, help="default: the dtype of src"
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed float32 logit difference")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty dst (once the export is done)")
    args = parser.parse_args(argv)
    run_command(export_to_llama, args.src, args.dst, dtype=args.dtype, tolerance=args.tolerance,
                overwrite=args.overwrite)
    print(f"Exported {args.src} to {args.dst} as LlamaForCausalLM")


if __name__ == "__main__":
    main()
