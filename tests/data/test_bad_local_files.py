"""A local copy that is empty, not UTF-8 or malformed is one line naming the file and the fix, streamed or not
(`datasets` alone says StopIteration, UnicodeDecodeError or "An error occurred while generating the dataset")."""

import os
import runpy
import sys

import pytest

from modeling_modern_llm.errors import InputFileError
from modeling_modern_llm.data import DatasetUnavailableError, load_dataset_by_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BAD_FILES = {
    "empty": (b"", "is empty"),
    "latin-1": (b'{"instruction": "caf\xe9", "input": "", "output": "x"}\n' * 3, "is not UTF-8 (byte 20)"),
    "cut": (b'{"instruction": "a", "inp', "cannot be read (Unmatched"),
}


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_local_file_names_the_file(kind, streaming, tmp_path):
    content, words = BAD_FILES[kind]
    (tmp_path / "alpaca").mkdir()
    path = tmp_path / "alpaca" / "train.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetUnavailableError) as raised:
        dataset = load_dataset_by_name("alpaca", "train", local_dir=tmp_path, streaming=streaming)
        list(dataset)
    assert str(path) in str(raised.value) and words in str(raised.value) and "Fix:" in str(raised.value)
    assert isinstance(raised.value, InputFileError)  # a command prints it as one line, exit status 1


def test_a_recipe_on_an_empty_local_file_fails_in_one_line(tmp_path, monkeypatch, capsys):
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
    from modeling_modern_llm.tokenizer import train_tokenizer

    model = tmp_path / "pretrain_final"
    tokenizer = train_tokenizer(["some words to learn"] * 30, vocab_size=300, min_frequency=1, save_dir=str(model))
    ModernLLMForCausalLM(
        ModernLLMConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4
        )
    ).save_pretrained(model)
    (tmp_path / "data" / "alpaca").mkdir(parents=True)
    (tmp_path / "data" / "alpaca" / "train.jsonl").write_bytes(b"")
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "recipes/sft.py",
            "--config",
            os.path.join(REPO, "tests", "training", "configs", "sft.yaml"),
            "--dataset_name",
            "alpaca",
            "--eval_strategy",
            "no",
            "--local_data_dir",
            str(tmp_path / "data"),
            "--output_dir",
            str(tmp_path / "sft"),
            "--model_name_or_path",
            str(model),
        ],
    )
    with pytest.raises(SystemExit) as exit_info:  # the recipe as `python recipes/sft.py` runs it, in this process
        runpy.run_path(os.path.join(REPO, "recipes", "sft.py"), run_name="__main__")
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert "train.jsonl is empty" in stderr.strip().splitlines()[-1]
