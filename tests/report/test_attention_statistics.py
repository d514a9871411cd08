"""Attention statistics against independent references, and visualize_attention's bad input."""

from __future__ import annotations

import pytest
import torch

import visualize_attention  # noqa: E402  (report/ is on sys.path: conftest)
from visualize_attention import head_statistics, layer_statistics


def _rows_with_sink(heads: int, length: int, sink_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal softmax with one extra sink column per head, as gpt-oss computes it: (maps without the sink, full probs)."""
    scores = torch.randn(heads, length, length).tril() + torch.triu(torch.full((length, length), float("-inf")), 1)
    full = torch.cat([scores, sink_logits.view(heads, 1, 1).expand(heads, length, 1)], dim=-1).softmax(-1)
    return full[..., :-1], full


def test_head_statistics_match_a_categorical_reference():
    maps, full = _rows_with_sink(heads=3, length=6, sink_logits=torch.tensor([-20.0, 0.0, 1.5]))
    stats = head_statistics(maps)
    entropy = torch.distributions.Categorical(probs=full[:, 1:, :]).entropy() / torch.log(torch.tensor(2.0))
    torch.testing.assert_close(
        torch.tensor(stats["entropy_bits"], dtype=torch.float64), entropy.mean(-1).double(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        torch.tensor(stats["sink_mass"], dtype=torch.float64), full[:, 1:, -1].mean(-1).double(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        torch.tensor(stats["first_token_mass"], dtype=torch.float64), full[:, 1:, 0].mean(-1).double()
    )
    assert stats["sink_mass"][0] < 1e-6 < stats["sink_mass"][1] < stats["sink_mass"][2]


def test_layer_statistics_average_examples_and_heads():
    a, _ = _rows_with_sink(2, 5, torch.tensor([0.0, 1.0]))
    b, _ = _rows_with_sink(2, 7, torch.tensor([0.0, 1.0]))
    layers = layer_statistics([[a, b], [b, a]])  # two examples, two layers
    expected = (sum(head_statistics(a)["entropy_bits"]) + sum(head_statistics(b)["entropy_bits"])) / 4
    assert [entry["layer"] for entry in layers] == [0, 1]
    assert layers[0]["entropy_bits"] == pytest.approx(expected) == pytest.approx(layers[1]["entropy_bits"])
    with pytest.raises(ValueError, match=r"\[heads, T, T\]"):
        head_statistics(torch.ones(2, 3, 4))


def test_sink_mass_follows_the_models_learned_sink_logits():
    """Through our model's eager attention: rows sum to 1 - sink mass, and the sink mass moves with the sink logit."""
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM

    config = ModernLLMConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        attention_sinks=True,
        attn_implementation="eager",
    )
    model = ModernLLMForCausalLM(config).eval()
    input_ids = torch.randint(0, 64, (1, 9))

    def sink_mass(logit: float) -> list[float]:
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.sinks.fill_(logit)
            attentions = model(input_ids, output_attentions=True).attentions
        return [entry["sink_mass"] for entry in layer_statistics([[a[0] for a in attentions]])]

    off, low, high = sink_mass(-1e4), sink_mass(0.0), sink_mass(3.0)
    assert max(off) < 1e-6 and all(0.0 < a < b < 1.0 for a, b in zip(low, high))


@pytest.mark.slow  # an lm-eval run of the tiny run (report_inputs)
def test_visualize_attention_rejects_bad_input(report_inputs, tmp_path, capsys):
    _, run = report_inputs
    assert visualize_attention.main(["--model_path", str(tmp_path), "--stats_path", str(tmp_path / "s.json")]) == 1
    assert "is not a saved model (no config.json)" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")
    assert visualize_attention.main(["--model_path", str(tmp_path), "--stats_path", str(tmp_path / "s.json")]) == 1
    assert f"cannot load {tmp_path} as a causal LM" in capsys.readouterr().err
    args = [
        "--model_path",
        str(run / "sft_final"),
        "--output_dir",
        str(tmp_path / "f"),
        "--stats_path",
        str(tmp_path / "s.json"),
    ]
    assert visualize_attention.main([*args, "--layers", "2"]) == 1
    assert "the model has 2 layers" in capsys.readouterr().err and not (tmp_path / "s.json").exists()
