"""Tiny ModernLLM configurations shared by the model tests (hidden 64, 2 layers, vocab 128: seconds on a CPU), and
a command's `main` run in this process as its command line would run it."""

import contextlib
import io
import subprocess

import pytest
import torch

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM

VOCAB_SIZE = 128
PAD_ID = 0


def tiny_config(**overrides) -> ModernLLMConfig:
    settings = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention
        max_position_embeddings=64,
        pad_token_id=PAD_ID,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    return ModernLLMConfig(**{**settings, **overrides})


def tiny_model(attn_implementation="sdpa", randomize_sinks=True, **overrides) -> ModernLLMForCausalLM:
    """A tiny causal LM in eval mode; sinks drawn away from their zero init so that they matter."""
    model = ModernLLMForCausalLM(tiny_config(attn_implementation=attn_implementation, **overrides)).eval()
    if randomize_sinks:
        with torch.no_grad():
            for layer in model.model.layers:
                if layer.self_attn.sinks is not None:
                    layer.self_attn.sinks.normal_(0.0, 1.0)
    return model


def left_padded_batch(lengths, total=None, seed=0):
    """Random prompts of the given lengths, left-padded with PAD_ID, and their attention mask."""
    generator = torch.Generator().manual_seed(seed)
    total = total or max(lengths)
    input_ids = torch.full((len(lengths), total), PAD_ID)
    attention_mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, total - length :] = torch.randint(3, VOCAB_SIZE, (length,), generator=generator)
        attention_mask[row, total - length :] = 1
    return input_ids, attention_mask


@pytest.fixture
def model_factory():
    return tiny_model


def run_main(main, *args: str) -> subprocess.CompletedProcess:
    """`main(args)` of a command in this process: its exit status and what it printed, as a subprocess would give them
    (without starting an interpreter and importing torch again)."""
    stdout, stderr, returncode = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(list(args))
        except SystemExit as exit_info:
            returncode = exit_info.code
    return subprocess.CompletedProcess(args, returncode, stdout.getvalue(), stderr.getvalue())
