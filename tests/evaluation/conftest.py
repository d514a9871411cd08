"""Tiny models built locally for the evaluation tests: a byte-level BPE tokenizer and a 1-layer GPT-2."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

CORPUS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: 3+4=<<3+4=7>>7 #### 7",
    "a great movie , full of charm .\nQuestion: Is this sentence positive or negative?\nAnswer: positive",
    "a dull , tedious mess .\nQuestion: Is this sentence positive or negative?\nAnswer: negative",
    "Once upon a time there was a little dog who liked to play in the park with $1,000 and 2.5 cats.",
] * 20


def build_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def build_gpt2(tokenizer, n_positions: int = 128, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny GPT-2 saved like any Hub checkpoint (weights + tokenizer), for the baseline code path."""
    path = tmp_path_factory.mktemp("tiny_gpt2")
    build_gpt2(tiny_tokenizer, n_positions=512).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return str(path)


def build_modern_llm(tokenizer, seed: int = 0, sequence_classification: bool = False):
    """A tiny ModernLLM (hidden 32, 1 layer) on the tiny tokenizer; a 1-label verifier head when asked."""
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM, ModernLLMForSequenceClassification

    torch.manual_seed(seed)
    config = ModernLLMConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                             bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, num_labels=1)
    model_class = ModernLLMForSequenceClassification if sequence_classification else ModernLLMForCausalLM
    return model_class(config).eval()


@pytest.fixture(scope="session")
def modern_llm_run(tmp_path_factory, tiny_tokenizer):
    """experiments/runs/<run>/ as the recipes leave it: pretrain/sft/dpo/verifier ``_final`` folders."""
    run = tmp_path_factory.mktemp("run")
    for seed, stage in enumerate(("pretrain", "sft", "dpo", "verifier")):
        build_modern_llm(tiny_tokenizer, seed, sequence_classification=stage == "verifier").save_pretrained(run / f"{stage}_final")
        tiny_tokenizer.save_pretrained(run / f"{stage}_final")
    return run
