"""The reporting library against independent references: attention statistics, GSM8K curves, loaders, model cards."""

from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub import ModelCard

from modeling_modern_llm.reporting import (
    ResultsFileError,
    exact_match_curve,
    fmt,
    fmt_percent,
    fmt_signed,
    head_statistics,
    layer_statistics,
    load_loss_history,
    load_results_file,
    sample_sizes,
    update_model_card_results,
)


def _rows_with_sink(heads: int, length: int, sink_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal softmax with one extra sink column per head, as gpt-oss computes it; returns (maps without the sink, full probs)."""
    scores = torch.randn(heads, length, length).tril() + torch.triu(torch.full((length, length), float("-inf")), 1)
    full = torch.cat([scores, sink_logits.view(heads, 1, 1).expand(heads, length, 1)], dim=-1).softmax(-1)
    return full[..., :-1], full


def test_head_statistics_match_a_categorical_reference():
    maps, full = _rows_with_sink(heads=3, length=6, sink_logits=torch.tensor([-20.0, 0.0, 1.5]))
    stats = head_statistics(maps)
    reference_entropy = torch.distributions.Categorical(probs=full[:, 1:, :]).entropy() / torch.log(torch.tensor(2.0))
    torch.testing.assert_close(
        torch.tensor(stats["entropy_bits"], dtype=torch.float64),
        reference_entropy.mean(-1).double(),
        rtol=1e-5,
        atol=1e-6,
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


def test_exact_match_curve_reproduces_the_evaluation_at_full_n(results_fixture):
    from modeling_modern_llm.evaluation.gsm8k import majority_answer

    results, _ = results_fixture
    analysis = load_results_file(results, "gsm8k_analysis.json")
    problems, n = analysis["problems"], analysis["n_samples"]
    curve = exact_match_curve(problems, sample_sizes(n))
    # At the full N the curve must equal what the evaluation computed from the same candidates.
    assert curve["verifier_best_of_n"][-1] * 100 == pytest.approx(analysis["em_verifier"])
    assert curve["greedy"][-1] * 100 == pytest.approx(analysis["em_greedy"])
    majority = sum(majority_answer([c["answer"] for c in p["candidates"]]) == p["reference"] for p in problems) / len(
        problems
    )
    assert curve["majority_vote"][-1] == pytest.approx(majority)
    assert curve["oracle_pass_at_n"] == sorted(curve["oracle_pass_at_n"])  # pass@N can only grow with N
    assert all(o >= v for o, v in zip(curve["oracle_pass_at_n"], curve["verifier_best_of_n"]))
    assert len(set(curve["verifier_best_of_n"])) > 1  # the fixture separates the N values
    without_scores = [{**p, "candidates": [{**c, "verifier_score": None} for c in p["candidates"]]} for p in problems]
    assert "verifier_best_of_n" not in exact_match_curve(without_scores, [1, n])


def test_sample_sizes_and_formatting():
    assert sample_sizes(8) == [1, 2, 4, 8] and sample_sizes(6) == [1, 2, 4, 6] and sample_sizes(1) == [1]
    assert [fmt(0.41372), fmt(812.3417), fmt(3e-5), fmt(1.1187e10), fmt(0.5), fmt(7), fmt(None), fmt(True)] == [
        "0.4137",
        "812.3",
        "3e-05",
        "1.119e+10",
        "0.5",
        "7",
        "n/a",
        "yes",
    ]
    assert (fmt_signed(0.0359), fmt_signed(-1.25), fmt_signed(0.0), fmt_percent(0.41372)) == (
        "+0.0359",
        "-1.25",
        "0",
        "41.4%",
    )


def test_loaders_name_the_command_that_makes_a_missing_file(tmp_path):
    with pytest.raises(ResultsFileError, match=r"task_metrics.json not found: run `python eval/evaluate_tasks.py"):
        load_results_file(tmp_path, "task_metrics.json")
    with pytest.raises(
        ResultsFileError, match=r"gsm8k_analysis.json not found: run `python eval/evaluate_tasks.py .*--verifier"
    ):
        load_results_file(tmp_path, "gsm8k_analysis.json")
    (tmp_path / "task_metrics.json").write_text("{not json")
    with pytest.raises(ResultsFileError, match="is not valid JSON"):
        load_results_file(tmp_path, "task_metrics.json")
    (tmp_path / "task_metrics.json").write_text(
        json.dumps({"command": "x", "environment": {}, "records": [{"model": "m"}]})
    )
    with pytest.raises(ResultsFileError, match=r"record 0 lacks \['task', 'dataset', 'status', 'metrics'\]"):
        load_results_file(tmp_path, "task_metrics.json")
    (tmp_path / "stage_gains.csv").write_text("stage,value\npretrain,1\n")
    with pytest.raises(ResultsFileError, match="has columns"):
        load_results_file(tmp_path, "stage_gains.csv")


def test_loss_history_falls_back_to_the_newest_checkpoint(tmp_path):
    for step in (5, 10, 9):
        folder = tmp_path / "sft" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text(
            json.dumps({"log_history": [{"step": step, "loss": step / 10}, {"step": step}]})
        )
    assert load_loss_history(tmp_path, "sft") == [(10, 1.0)]
    assert load_loss_history(tmp_path, "dpo") == []
    (tmp_path / "sft" / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 12, "loss": 0.25}]}))
    assert load_loss_history(tmp_path, "sft") == [(12, 0.25)]


def test_model_card_section_is_refreshed_not_duplicated(results_fixture):
    results, run = results_fixture
    folder = run / "sft_final"
    original = (folder / "README.md").read_text()
    records = [r for r in load_results_file(results, "task_metrics.json")["records"] if r["model"] == "demo-sft"]
    update_model_card_results(folder, records)
    records[1]["metrics"]["accuracy"] = 0.7071  # a re-evaluation changes a number
    update_model_card_results(folder, records)
    text = (folder / "README.md").read_text()
    assert text.count("## Evaluation results") == 1 and "| 0.7071 |" in text and "0.6419" not in text
    assert "## Intended use and limitations" in text and "# modern-llm sft" in original and "# modern-llm sft" in text
    card = ModelCard.load(folder / "README.md")
    values = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert values[("embedded-sst2", "accuracy")] == 0.7071 and values[("embedded-text", "bits_per_byte")] == 1.9685
    assert card.data.license == "apache-2.0"  # the recipe's front matter survives
    with pytest.raises(ResultsFileError, match="README.md not found"):
        update_model_card_results(results, records)


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
    assert max(off) < 1e-6
    assert all(0.0 < a < b < 1.0 for a, b in zip(low, high))
