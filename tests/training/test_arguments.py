"""A wrong or missing config field fails before any training starts, naming the field (tests/training/test_validation.py
has the combinations across fields)."""

import os

import pytest
import torch
from training_helpers import CONFIGS, run_recipe
from trl import TrlParser

from modeling_modern_llm.tokenizer import train_tokenizer
from modeling_modern_llm.training import (
    ModelArguments,
    PretrainConfig,
    ScriptArguments,
    SFTStageConfig,
    build_model_config,
    stage_problems,
)

TINY_MODEL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["a small corpus of words", "more words here"] * 20, vocab_size=300, min_frequency=1)


def _parse(tmp_path, yaml_text, config_cls=PretrainConfig):
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    return TrlParser((ScriptArguments, config_cls, ModelArguments)).parse_args_and_config(
        ["--config", str(path), "--output_dir", str(tmp_path / "out")]
    )


def test_unknown_yaml_key_is_named(tmp_path):
    with pytest.raises(ValueError, match="learning_rat"):
        _parse(tmp_path, "dataset_name: embedded-text\nlearning_rat: 0.1\n")


def test_unknown_and_missing_model_fields_are_named(tmp_path):
    _, training, _ = _parse(tmp_path, "dataset_name: embedded-text\n")
    script = ScriptArguments(dataset_name="embedded-text")
    unknown = stage_problems(
        "pretrain", script, training, ModelArguments(model_config={**TINY_MODEL, "hiden_size": 64})
    )
    assert any("hiden_size" in problem.message for problem in unknown)
    fields = {key: value for key, value in TINY_MODEL.items() if key != "num_hidden_layers"}
    missing = stage_problems("pretrain", script, training, ModelArguments(model_config=fields))
    assert any("num_hidden_layers" in problem.message for problem in missing)


def test_model_config_takes_vocab_and_special_ids_from_the_tokenizer(tokenizer):
    config = build_model_config(ModelArguments(model_config=dict(TINY_MODEL)), tokenizer)
    assert config.vocab_size == len(tokenizer) and config.pad_token_id == tokenizer.pad_token_id
    with pytest.raises(ValueError, match="vocab_size"):
        build_model_config(ModelArguments(model_config={**TINY_MODEL, "vocab_size": 10}), tokenizer)


def test_stage_requirements_are_named(tmp_path):
    script, training, model = _parse(tmp_path, "dataset_name: embedded-alpaca\n", SFTStageConfig)
    assert any(p.field == "model_name_or_path" for p in stage_problems("sft", script, training, model))
    script, training, model = _parse(tmp_path, "max_length: 64\nmodel_config: {hidden_size: 8}\n")
    assert any("dataset_name" in p.message for p in stage_problems("pretrain", script, training, model))


def test_mixture_weights_parse_and_bad_weights_are_named():
    assert ScriptArguments(dataset_mixture=["wikitext-103-raw-v1:0.7", "tinystories:0.3"]).mixture() == [
        ("wikitext-103-raw-v1", 0.7),
        ("tinystories", 0.3),
    ]
    with pytest.raises(ValueError, match="tinystories:lots"):
        ScriptArguments(dataset_mixture=["tinystories:lots"]).mixture()


def test_bf16_defaults_to_the_hardware(tmp_path):
    _, training, _ = _parse(tmp_path, "dataset_name: embedded-text\n")
    assert training.bf16 is torch.cuda.is_available()  # TRL alone would say True
    _, training, _ = _parse(tmp_path, "dataset_name: embedded-text\nbf16: false\n")
    assert training.bf16 is False


def test_recipe_fails_before_training_on_a_bad_model_field(tmp_path):
    result = run_recipe(
        "pretrain", tmp_path / "pretrain", "--model_config", '{"hidden_size": 32, "n_layers": 2}', check=False
    )
    assert result.returncode == 2 and "n_layers" in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "pretrain")  # nothing trained, not even the tokenizer
    assert os.path.isfile(os.path.join(CONFIGS, "pretrain.yaml"))
