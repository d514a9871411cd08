"""ModernLLMConfig: Llama's field names, clear errors for impossible shapes, and TRL-friendly defaults."""

import pytest
from transformers import AutoConfig, LlamaConfig

from modeling_modern_llm import ModernLLMConfig

from .conftest import tiny_config


def test_llama_field_names_mean_the_same_as_in_llama():
    shared = dict(
        vocab_size=100,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=80,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        initializer_range=0.01,
        rope_theta=5000.0,
    )
    ours, llama = ModernLLMConfig(**shared), LlamaConfig(**shared)
    for name in shared:
        if name != "rope_theta":
            assert getattr(ours, name) == getattr(llama, name), name
    assert ours.rope_parameters == llama.rope_parameters == {"rope_type": "default", "rope_theta": 5000.0}
    assert ours.rope_theta == 5000.0 and ours.head_dim == llama.head_dim == 16


def test_defaults_for_trl_and_kv_heads():
    config = ModernLLMConfig()
    assert config.model_type == "modern_llm"
    assert config.auto_map == {}  # TRL reads it on registered models; None breaks SFTTrainer(model=path)
    assert config.num_key_value_heads == config.num_attention_heads
    assert config.num_experts == 0


@pytest.mark.parametrize(
    "overrides, fields",
    [
        (dict(hidden_size=60, num_attention_heads=8), ["hidden_size", "num_attention_heads"]),
        (dict(num_attention_heads=4, num_key_value_heads=3), ["num_key_value_heads", "num_attention_heads"]),
        (dict(num_experts=4, num_experts_per_tok=5), ["num_experts_per_tok", "num_experts"]),
        (dict(num_experts=4, num_experts_per_tok=0), ["num_experts_per_tok"]),
        (dict(num_experts=-1), ["num_experts"]),
        (dict(vocab_size=0), ["vocab_size"]),
        (dict(head_dim=15), ["head_dim"]),
        (dict(router_aux_loss_coef=-0.1), ["router_aux_loss_coef"]),
        (dict(pad_token_id=500), ["pad_token_id", "vocab_size"]),
        (dict(attention_dropout=1.5), ["attention_dropout"]),
    ],
)
def test_impossible_combinations_raise_naming_the_fields(overrides, fields):
    with pytest.raises(ValueError) as error:
        tiny_config(**overrides)
    for field_name in fields:
        assert f"`{field_name}`" in str(error.value)


def test_several_problems_are_reported_together():
    with pytest.raises(ValueError) as error:
        tiny_config(num_key_value_heads=3, num_experts=2, num_experts_per_tok=3)
    assert "`num_key_value_heads`" in str(error.value) and "`num_experts_per_tok`" in str(error.value)


def test_save_and_load_round_trip_through_auto_config(tmp_path):
    config = tiny_config(num_experts=4, num_experts_per_tok=2, qk_norm=False, rope_theta=2500.0)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is ModernLLMConfig
    expected = {key: value for key, value in config.to_dict().items() if key != "_name_or_path"}
    assert {key: value for key, value in loaded.to_dict().items() if key != "_name_or_path"} == expected
    assert loaded.rope_theta == 2500.0
