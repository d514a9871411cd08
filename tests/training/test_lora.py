"""LoRA in every stage (`use_peft: true`, TRL's `get_peft_config`): only the adapter trains, `<stage>_final` holds the
merged model with the adapter beside it, DPO and GRPO need no reference copy, the verifier trains its score head in
full."""

import json
import os

import pytest
import torch
from peft import PeftModel
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
from training_helpers import run_recipe

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.training import final_model_problem

pytestmark = pytest.mark.slow
LORA = ("--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0")
SCALE = 8 / 4  # lora_alpha / lora_r


def _summary(folder):
    with open(os.path.join(folder, "training_summary.json")) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def lora_sft(tiny_run, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("lora") / "sft"
    run_recipe("sft", output_dir, "--model_name_or_path", tiny_run["pretrain"], *LORA)
    return output_dir


def test_lora_sft_trains_only_the_adapter(tiny_run, lora_sft):
    # The checkpoints hold only the adapter: nothing else was trainable.
    checkpoint = lora_sft / "checkpoint-4"
    assert not (checkpoint / "model.safetensors").exists()
    with safe_open(checkpoint / "adapter_model.safetensors", "pt") as handle:
        assert all(".lora_A." in key or ".lora_B." in key for key in handle.keys())
    # The merged final differs from the starting model by exactly scale * B @ A on the adapted projections, and
    # not at all anywhere else (embeddings, norms, sinks, the LM head).
    base = load_file(os.path.join(tiny_run["pretrain"], "model.safetensors"))
    final = lora_sft.parent / "sft_final"
    merged = load_file(final / "model.safetensors")
    adapter = load_file(final / "adapter" / "adapter_model.safetensors")
    adapted = 0
    for name, weight in base.items():
        lora_a = adapter.get("base_model.model." + name.replace(".weight", ".lora_A.weight"))
        if lora_a is None:
            assert torch.equal(merged[name], weight), name
            continue
        lora_b = adapter["base_model.model." + name.replace(".weight", ".lora_B.weight")]
        assert lora_b.abs().max() > 0, name  # B starts at zero: a trained adapter has moved it
        torch.testing.assert_close(merged[name], weight + SCALE * lora_b @ lora_a, rtol=0, atol=1e-6)
        adapted += 1
    layers = AutoModelForCausalLM.from_pretrained(tiny_run["pretrain"]).config.num_hidden_layers
    assert adapted == 7 * layers  # q/k/v/o and gate/up/down in every layer
    summary = _summary(final)
    assert summary["peft"]["target_modules"] == sorted(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    )
    assert summary["peft"]["trainable_parameters"] == sum(t.numel() for t in adapter.values())
    assert "LoRA (r 4, alpha 8" in (final / "README.md").read_text()


def test_merged_final_equals_the_model_with_its_adapter(tiny_run, lora_sft):
    final = lora_sft.parent / "sft_final"
    assert final_model_problem(str(final), "sft") is None
    merged = AutoModelForCausalLM.from_pretrained(final).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())  # loads as a plain model
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_run["pretrain"]), final / "adapter"
    ).eval()
    input_ids = torch.randint(4, merged.config.vocab_size, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids).logits, with_adapter(input_ids).logits, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(merged(input_ids).logits, with_adapter.get_base_model()(input_ids).logits)


def test_lora_dpo_uses_the_adapter_disabled_policy_as_its_reference(tiny_run, lora_sft):
    output_dir = lora_sft.parent / "dpo"
    run_recipe("dpo", output_dir, "--model_name_or_path", str(lora_sft.parent / "sft_final"), *LORA)
    summary = _summary(lora_sft.parent / "dpo_final")
    assert summary["reference_model_parameters"] == 0 and "adapter disabled" in summary["reference_model"]
    assert summary["peft"]["method"] == "lora"
    # Full DPO keeps a second, frozen copy of the whole model
    full = _summary(tiny_run["dpo"])
    assert full["reference_model_parameters"] == full["num_parameters"] and full["peft"] is None


def test_lora_grpo_uses_the_adapter_disabled_policy_as_its_reference(tiny_run, tmp_path):
    run_recipe(
        "grpo",
        tmp_path / "grpo",
        "--model_name_or_path",
        tiny_run["dpo"],
        "--reward_model_name_or_path",
        tiny_run["verifier"],
        *LORA,
    )
    summary = _summary(tmp_path / "grpo_final")
    assert summary["beta"] > 0 and "adapter disabled" in summary["reference_model"]
    assert summary["peft"]["method"] == "lora" and summary["steps"] == 4
    assert (tmp_path / "grpo_final" / "adapter" / "adapter_config.json").is_file()
    assert final_model_problem(str(tmp_path / "grpo_final"), "grpo") is None


def test_lora_verifier_trains_its_new_score_head_in_full(tiny_run, tmp_path):
    run_recipe("verifier", tmp_path / "verifier", "--model_name_or_path", tiny_run["dpo"], *LORA)
    final = tmp_path / "verifier_final"
    summary = _summary(final)
    assert "score" in summary["peft"]["modules_to_save"]
    adapter = load_file(final / "adapter" / "adapter_model.safetensors")
    score = adapter["base_model.model.score.weight"]  # saved whole with the adapter
    lora = sum(t.numel() for name, t in adapter.items() if "lora_" in name)
    assert summary["peft"]["trainable_parameters"] == lora + score.numel()
    model = AutoModelForSequenceClassification.from_pretrained(final)
    assert torch.equal(model.score.weight, score)


def test_continued_pretraining_with_lora(tiny_run, tmp_path):
    run_recipe(
        "pretrain",
        tmp_path / "pretrain",
        "--model_name_or_path",
        tiny_run["pretrain"],
        "--model_config",
        "{}",
        "--max_steps",
        "2",
        "--eval_strategy",
        "no",
        *LORA,
    )
    summary = _summary(tmp_path / "pretrain_final")
    assert summary["peft"]["method"] == "lora" and summary["steps"] == 2
    assert (tmp_path / "pretrain_final" / "adapter" / "adapter_config.json").is_file()
