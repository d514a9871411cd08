"""The building blocks against transformers' Llama modules with the same weights, and the whole dense model against
`LlamaForCausalLM` when the modern extras (sinks, QK-norm, experts) are off."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama import modeling_llama as llama

from modeling_modern_llm import modeling_modern_llm as modern

from .conftest import tiny_config


def llama_twin(config):
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters=dict(config.rope_parameters),
        tie_word_embeddings=config.tie_word_embeddings,
        pad_token_id=config.pad_token_id,
    )


def test_rms_norm_matches_llama():
    ours, reference = modern.ModernLLMRMSNorm(64, eps=1e-5), llama.LlamaRMSNorm(64, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        reference.weight.copy_(ours.weight)
    x = torch.randn(2, 5, 64) * 3
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_rotary_embedding_and_its_application_match_llama():
    config = tiny_config(rope_theta=1234.0)
    ours, reference = modern.ModernLLMRotaryEmbedding(config), llama.LlamaRotaryEmbedding(llama_twin(config))
    x = torch.randn(2, 7, 64)
    position_ids = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]])
    cos, sin = ours(x, position_ids)
    reference_cos, reference_sin = reference(x, position_ids)
    torch.testing.assert_close(cos, reference_cos, rtol=0, atol=0)
    torch.testing.assert_close(sin, reference_sin, rtol=0, atol=0)
    q, k = torch.randn(2, 4, 7, 16), torch.randn(2, 2, 7, 16)
    for got, expected in zip(modern.apply_rotary_pos_emb(q, k, cos, sin), llama.apply_rotary_pos_emb(q, k, cos, sin)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_swiglu_matches_llama_mlp():
    config = tiny_config()
    ours, reference = modern.ModernLLMMLP(config), llama.LlamaMLP(llama_twin(config))
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, 64)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_dense_model_without_extras_is_exactly_llama():
    config = tiny_config(attention_sinks=False, qk_norm=False)
    ours = modern.ModernLLMForCausalLM(config).eval()
    reference = LlamaForCausalLM(llama_twin(config)).eval()
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=True)
    assert not missing and not unexpected  # same parameter names as Llama
    input_ids = torch.randint(3, config.vocab_size, (2, 12))
    torch.testing.assert_close(ours(input_ids).logits, reference(input_ids).logits, rtol=1e-5, atol=1e-5)


def test_parameter_names_follow_the_design_contract():
    model = modern.ModernLLMForCausalLM(tiny_config(num_experts=2, num_experts_per_tok=1))
    names = set(dict(model.named_parameters()))
    for name in (
        "model.embed_tokens.weight",
        "lm_head.weight",
        "model.norm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.self_attn.sinks",
        "model.layers.0.self_attn.q_norm.weight",
        "model.layers.0.self_attn.k_norm.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.1.mlp.router.weight",
        "model.layers.1.mlp.experts.gate_up_proj",
        "model.layers.1.mlp.experts.down_proj",
    ):
        assert name in names, name
