"""Export a ModernLLM checkpoint as a plain `LlamaForCausalLM`, so vLLM, llama.cpp and every Llama tool serve it.

    python -m modeling_modern_llm.export_llama experiments/runs/llama/pretrain_final exports/llama [--dtype bfloat16]
    python -m modeling_modern_llm.export_llama SRC DST --gguf     # also DST/model.gguf, which llama.cpp loads as is

Only a ModernLLM built without the extras Llama lacks can be exported: attention sinks, QK-norm and
mixture-of-experts layers have no Llama equivalent, and the export refuses them rather than drop weights.
The parameter names are Llama's by construction, so the weights move over unchanged (checked by a strict
load). Before anything is written, both models run the same input and their logits must agree within
`tolerance` in float32. The tokenizer and the generation config travel along when the source has them. The
export is written into `<dst>.partial` and renamed into place once complete; a non-empty `dst` is replaced only
with `--overwrite`.

The tokenizer is saved so that transformers 4.x loads it too (`PreTrainedTokenizerFast`, an
`additional_special_tokens` list), as llama.cpp's own tools pin 4.x. `--gguf` also writes `<dst>/model.gguf`
through the `gguf` package, in llama.cpp's format: the `llama` architecture's metadata and tensor names, q/k rows
permuted into llama.cpp's rotary layout, and the byte-level BPE vocabulary as `gpt2` with the llama.cpp
pre-tokenizer its split regex names: `llama-bpe` for Llama 3's (what `train_tokenizer` builds), `gpt-2` for GPT-2's,
its merges, special tokens and chat template. llama.cpp's own converter cannot name the pre-tokenizer: it recognises
tokenizers by a hash of what known ones produce, and every tokenizer trained here is new to it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil

import torch
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.errors import InputFileError, UsageError, run_command
from modeling_modern_llm.files import check_new_output, replace_folder
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
GGUF_FILE = "model.gguf"


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
            + ". Only models trained with attention_sinks=False, qk_norm=False and num_experts=0 are exportable "
            "(e.g. recipes/configs/cpu-demo/pretrain_llama.yaml)."
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
    src: str,
    dst: str,
    *,
    dtype: torch.dtype | str | None = None,
    tolerance: float = 1e-4,
    overwrite: bool = False,
    gguf: bool = False,
) -> str:
    """Write `src` (a saved ModernLLMForCausalLM folder) to `dst` as a LlamaForCausalLM checkpoint; return `dst`.

    `dtype` is the dtype of the written weights (default: the dtype `src` was saved in). The exported
    model's float32 logits must match the source's within `tolerance`, else nothing is written. A `dst` that
    already holds something is replaced only with `overwrite`, and only once the export is complete. With
    `gguf`, `dst/model.gguf` is written too (`write_gguf`).
    """
    if not os.path.isfile(os.path.join(src, "config.json")):
        raise InputFileError(f"{src} is not a saved model folder (no config.json): pass a save_pretrained folder")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise UsageError(f"the destination {dst} is the source itself; choose another folder")
    check_new_output(dst, overwrite)
    if gguf:
        _import_gguf()
        gguf_pre_tokenizer(src)  # a tokenizer llama.cpp would split differently is refused before any work
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
        portable_tokenizer_config(staging)
    if gguf:
        write_gguf(staging, os.path.join(staging, GGUF_FILE))
    replace_folder(staging, dst)
    return dst


def portable_tokenizer_config(folder: str) -> None:
    """Make `folder/tokenizer_config.json` loadable by transformers 4.x as well as 5.x: 5.x names its class
    `TokenizersBackend` and lists extra special tokens as `extra_special_tokens`, which 4.x reads as a mapping;
    both versions read `PreTrainedTokenizerFast` and an `additional_special_tokens` list."""
    path = os.path.join(folder, "tokenizer_config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(config.get("extra_special_tokens"), list):
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _import_gguf():
    try:
        import gguf
    except ImportError:
        raise UsageError(
            "--gguf writes llama.cpp's file through the gguf package, which is not installed: `pip install gguf`"
        ) from None
    return gguf


def gguf_pre_tokenizer(folder: str) -> str:
    """llama.cpp's name of the pre-tokenizer of the byte-level BPE tokenizer in `folder`: `llama-bpe` for Llama 3's
    split regex before a byte-level step (what `train_tokenizer` builds), `gpt-2` for GPT-2's byte-level regex (no
    prefix space). InputFileError for any other tokenizer, which llama.cpp would split differently."""
    from .tokenizer import PRETOKENIZE_PATTERN

    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        raise InputFileError(
            f"--gguf: {folder} has no tokenizer.json, and a GGUF file carries its vocabulary; "
            "save the tokenizer with the model"
        )
    with open(path, encoding="utf-8") as handle:
        tokenizer = json.load(handle)
    model, pre = tokenizer.get("model") or {}, tokenizer.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    byte_level = steps[-1].get("type") == "ByteLevel" and not steps[-1].get("add_prefix_space", False)
    if model.get("type") == "BPE" and byte_level and len(steps) == 1 and steps[0].get("use_regex", True):
        return "gpt-2"
    split = steps[0] if len(steps) == 2 else {}
    if (
        model.get("type") == "BPE"
        and byte_level
        and not steps[-1].get("use_regex", True)
        and split.get("type") == "Split"
        and (split.get("pattern") or {}).get("Regex") == PRETOKENIZE_PATTERN
        and split.get("behavior") == "Isolated"
    ):
        return "llama-bpe"
    raise InputFileError(
        f"--gguf: {path} is a {model.get('type')} model with a {pre.get('type')} pre-tokenizer, "
        "neither Llama 3's nor GPT-2's byte-level BPE that this export names for llama.cpp; "
        "export without --gguf and convert with llama.cpp's convert_hf_to_gguf.py"
    )


def serving_chat_template(template: str) -> str:
    """The chat template without transformers' `{% generation %}` markers, which only mark the assistant's tokens
    for training (`assistant_only_loss`) and which plain Jinja, as llama.cpp's tools run it, does not know; it renders
    the same text."""
    return re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", template)


def _rotary_rows_for_llama_cpp(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """q/k projection rows from transformers' rotary layout (each head's first half of dimensions paired with its
    second half) to llama.cpp's (pairs of neighbouring dimensions), as its convert_hf_to_gguf.py permutes them."""
    pairs = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])  # (heads, half, d/2, ...)
    return pairs.swapaxes(1, 2).reshape(weight.shape)


def write_gguf(folder: str, path: str) -> str:
    """Write the Llama checkpoint and tokenizer in `folder` to `path` as a GGUF file llama.cpp loads; return `path`.

    Float32 weights are written as F32, float16 as F16, bfloat16 as BF16; norms are always F32, as llama.cpp
    wants them."""
    gguf = _import_gguf()
    pre_tokenizer = gguf_pre_tokenizer(folder)
    config = LlamaConfig.from_pretrained(folder)
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") != "default":
        raise InputFileError(
            f"--gguf: {folder} uses {rope['rope_type']!r} rotary scaling, which this GGUF export "
            "does not map; export without --gguf"
        )
    model = LlamaForCausalLM.from_pretrained(folder, dtype="auto")
    dtype = next(model.parameters()).dtype
    tokenizer = AutoTokenizer.from_pretrained(folder)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    file_type, tensor_type = {
        torch.float32: (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
        torch.float16: (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
        torch.bfloat16: (gguf.LlamaFileType.MOSTLY_BF16, gguf.GGMLQuantizationType.BF16),
    }[dtype]

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(os.path.basename(os.path.normpath(folder)))
    writer.add_file_type(file_type)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)

    # The vocabulary by id, padded to the embedding's rows; added tokens are control tokens when special.
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(config.vocab_size):
        if index in added:
            tokens.append(added[index].content)
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        elif index in by_id:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))  # merges, special ids, chat template
    plain, marked = tokenizer("a", add_special_tokens=False)["input_ids"], tokenizer("a")["input_ids"]
    special.add_special_token = {"bos": marked[:1] != plain[:1], "eos": marked[-1:] != plain[-1:]}  # as transformers
    if isinstance(tokenizer.chat_template, str):
        special.chat_template = serving_chat_template(tokenizer.chat_template)
    special.add_to_gguf(writer, quiet=True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads the output projection from token_embd when `output` is absent
        tensor = tensor.float()
        if name.endswith("q_proj.weight"):
            tensor = _rotary_rows_for_llama_cpp(tensor, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            tensor = _rotary_rows_for_llama_cpp(tensor, config.num_key_value_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:  # a bug of the mapping, not of the input: keep the traceback
            raise ValueError(f"no llama.cpp name for the Llama tensor {name}")
        data = tensor.numpy()
        if tensor.ndim == 1 or tensor_type == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name, data)
        else:
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, tensor_type), raw_dtype=tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="folder of a saved ModernLLMForCausalLM (save_pretrained)")
    parser.add_argument("dst", help="folder to write the LlamaForCausalLM checkpoint to")
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default=None, help="default: the dtype of src"
    )
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed float32 logit difference")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty dst (once the export is done)")
    parser.add_argument("--gguf", action="store_true", help=f"also write dst/{GGUF_FILE} for llama.cpp (needs gguf)")
    args = parser.parse_args(argv)
    run_command(
        export_to_llama,
        args.src,
        args.dst,
        dtype=args.dtype,
        tolerance=args.tolerance,
        overwrite=args.overwrite,
        gguf=args.gguf,
    )
    also = f" and {args.dst}/{GGUF_FILE}" if args.gguf else ""
    print(f"Exported {args.src} to {args.dst} as LlamaForCausalLM{also}")


if __name__ == "__main__":
    main()
