"""Each stage runs a few steps on the embedded data with a tiny ModernLLM and leaves a loadable final folder."""

import glob
import json
import math
import os

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.training import final_model_problem

from training_helpers import log_history

pytestmark = pytest.mark.slow
SUMMARY_FIELDS = {
    "stage",
    "config_path",
    "command",
    "wall_time_s",
    "steps",
    "train_tokens",
    "tokens_per_s",
    "final_loss",
    "datasets",
    "per_device_batch_size",
    "learning_rate",
    "hardware",
}


def _summary(folder):
    with open(os.path.join(folder, "training_summary.json")) as handle:
        return json.load(handle)


def test_every_stage_writes_a_complete_final_folder(tiny_run):
    for stage, folder in tiny_run.items():
        assert final_model_problem(folder) is None, stage
        summary = _summary(folder)
        assert SUMMARY_FIELDS <= set(summary), SUMMARY_FIELDS - set(summary)
        assert summary["stage"] == stage and summary["world_size"] == 1
        assert summary["steps"] > 0 and summary["train_tokens"] > 0 and summary["tokens_per_s"] > 0
        assert math.isfinite(summary["final_loss"])


def test_model_card_has_hub_front_matter(tiny_run):
    with open(os.path.join(tiny_run["sft"], "README.md")) as handle:
        text = handle.read()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["license"]
    # a local base is not a Hub id, so it stays out of the front matter and is named, run-relative, in the body
    assert meta["datasets"] == ["embedded-alpaca"] and "base_model" not in meta
    assert "- trained from: `<run>/pretrain_final`" in body and tiny_run["pretrain"] not in text
    assert "sft" in meta["tags"]
    for section in ("## Model", "## Training data", "## Results", "## Intended use and limitations"):
        assert section in body


def test_pretrain_logs_throughput_and_perplexity(tiny_run):
    history = log_history(os.path.join(os.path.dirname(tiny_run["pretrain"]), "pretrain"))
    steps = [entry for entry in history if "loss" in entry]
    assert all(entry["tokens_per_s"] > 0 and entry["step_time_s"] > 0 for entry in steps[1:])
    evals = [entry for entry in history if "eval_loss" in entry]
    assert evals and all(math.isclose(e["eval_perplexity"], math.exp(e["eval_loss"]), rel_tol=1e-6) for e in evals)
    assert steps[-1]["loss"] < steps[0]["loss"]  # 8 steps at lr 3e-3 from a uniform start must lower the loss


def test_causal_lm_stages_load_and_generate(tiny_run):
    for stage in ("pretrain", "sft", "dpo", "grpo"):
        model = AutoModelForCausalLM.from_pretrained(tiny_run[stage])
        tokenizer = AutoTokenizer.from_pretrained(tiny_run[stage])
        assert type(model).__name__ == "ModernLLMForCausalLM" and model.config.attention_sinks
        assert model.config.use_cache and model.generation_config.pad_token_id == tokenizer.pad_token_id
        inputs = tokenizer("Once upon a time", return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        assert output.shape[1] <= inputs["input_ids"].shape[1] + 4


def test_sft_stops_at_im_end(tiny_run):
    tokenizer = AutoTokenizer.from_pretrained(tiny_run["sft"])
    model = AutoModelForCausalLM.from_pretrained(tiny_run["sft"])
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == model.generation_config.eos_token_id[0]


def test_sft_and_dpo_change_the_weights(tiny_run):
    def weights(stage):
        return AutoModelForCausalLM.from_pretrained(tiny_run[stage]).state_dict()

    before, after_sft, after_dpo = weights("pretrain"), weights("sft"), weights("dpo")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[name], after_sft[name]) and not torch.equal(after_sft[name], after_dpo[name])


def test_verifier_is_a_reward_model_from_the_policy(tiny_run):
    summary = _summary(tiny_run["verifier"])
    assert (
        summary["objective"] == "pairwise" and summary["examples"]["train"] > 0 and summary["samples_per_problem"] == 2
    )
    assert summary["samples"]["train"] == 6 * 2 and summary["problems"]["train"] == 6
    # Its training samples are scored after training, so memorisation shows as a training ranking far above held-out
    assert summary["train_ranking"]["n"] == 12 and summary["held_out_ranking"] is None  # no held-out split here
    model = AutoModelForSequenceClassification.from_pretrained(tiny_run["verifier"])
    policy = AutoModelForCausalLM.from_pretrained(tiny_run["dpo"])
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    # The trunk starts from the policy: 3 Adam steps at lr 1e-3 move a weight by at most ~3e-3, while a fresh
    # initialisation (std 0.02) would differ by ~0.1 somewhere.
    drift = (model.model.embed_tokens.weight - policy.model.embed_tokens.weight).abs().max()
    assert drift < 0.01
    tokenizer = AutoTokenizer.from_pretrained(tiny_run["verifier"])
    batch = tokenizer(
        ["Question: 1+1?\nAnswer: 2\n#### 2", "Question: 1+1?\nAnswer: #### 3 and more text"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        scores = model(**batch).logits
    assert scores.shape == (2, 1) and torch.isfinite(scores).all()
    [samples] = glob.glob(os.path.join(os.path.dirname(tiny_run["verifier"]), "verifier", "samples-train-*.jsonl"))
    with open(samples) as handle:
        records = [json.loads(line) for line in handle]
    assert len(records) == 6 * 2  # max_train_samples problems (after the few-shot one), 2 samples each
    assert all(isinstance(r["correct"], bool) for r in records)


def test_verifier_without_any_correct_sample_says_how_to_get_pairs(tiny_run, tmp_path):
    from training_helpers import run_recipe

    # The tiny policy solves nothing, so without the reference there is no (correct, incorrect) pair
    result = run_recipe(
        "verifier",
        tmp_path / "verifier",
        "--model_name_or_path",
        tiny_run["dpo"],
        "--include_reference",
        "false",
        check=False,
    )
    assert result.returncode != 0
    assert "no (correct, incorrect) pair" in result.stderr and "include_reference: true" in result.stderr
    assert (
        len(list((tmp_path / "verifier").glob("samples-train-*.jsonl"))) == 1
    )  # the samples are kept for the next try


def test_grpo_trains_on_every_reward_and_logs_reward_spread_and_lengths(tiny_run):
    summary = _summary(tiny_run["grpo"])
    assert summary["reward_funcs"] == ["exact_match", "answer_format", "verifier"]
    assert summary["reward_weights"] == [1.0, 0.5, 0.1] and summary["beta"] == 0.02
    assert summary["reference_model"] == "a frozen copy of the starting model"
    assert 0 < summary["train_prompts"] <= 16 and summary["steps"] == 4
    history = log_history(os.path.join(os.path.dirname(tiny_run["grpo"]), "grpo"))
    steps = [entry for entry in history if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2, 3, 4]
    for entry in steps:
        assert {
            "reward_std",
            "completions/mean_length",
            "kl",
            "rewards/exact_match/mean",
            "rewards/answer_format/mean",
            "rewards/verifier/mean",
        } <= set(entry)
        assert 0 < entry["completions/mean_length"] <= 24  # max_completion_length
        # the weighted sum of the rewards' means is the logged reward
        assert math.isclose(
            entry["reward"],
            entry["rewards/exact_match/mean"]
            + 0.5 * entry["rewards/answer_format/mean"]
            + 0.1 * entry["rewards/verifier/mean"],
            rel_tol=1e-4,
            abs_tol=1e-5,
        )
    assert summary["reward_logged"]["last"] == steps[-1]["reward"]
    # It starts from DPO and moves away from it
    name = "model.layers.0.self_attn.q_proj.weight"
    dpo, grpo = (AutoModelForCausalLM.from_pretrained(tiny_run[s]).state_dict()[name] for s in ("dpo", "grpo"))
    assert not torch.equal(dpo, grpo)
