"""The normalisers on files in the exact Hub schemas, loaded through the same ``datasets`` calls as the Hub path."""

import json
import logging

import pytest
from datasets.exceptions import DatasetNotFoundError

from modeling_modern_llm.data import REGISTRY, DatasetUnavailableError, load_dataset_by_name
from modeling_modern_llm.data.normalizers import normalize_hh_rlhf, parse_hh_transcript
from modeling_modern_llm.data.registry import DatasetSpec, explain_hub_error
from modeling_modern_llm.task_formats import calculator_annotations, gsm8k_reference


def msg(role, content):
    return {"role": role, "content": content}


def test_hh_rlhf_multi_turn_prompt_is_shared_prefix(fixtures_dir):
    rows = load_dataset_by_name("hh-rlhf", "train", local_dir=fixtures_dir)
    assert len(rows) == 3
    tea = rows[0]
    assert tea["prompt"] == [
        msg("user", "How do I make a cup of tea?"),
        msg(
            "assistant", "Boil some water, pour it over a tea bag in a cup, and let it steep for three to five minutes."
        ),
        msg("user", "Should I add milk first?"),
    ]
    assert tea["chosen"][0]["content"].startswith("It is up to you.")
    assert tea["rejected"] == [msg("assistant", "Why would you care about that?")]
    # An assistant turn keeps its own blank lines (a numbered list), only "\n\nHuman:"/"\n\nAssistant:" split turns.
    assert rows[1]["chosen"][0]["content"].startswith("Here are a few:\n\n1. Walking")
    # Diverging at the first answer: the prompt is the first question, both sides keep their later turns.
    book = rows[2]
    assert book["prompt"] == [msg("user", "Can you recommend a book?")]
    assert [m["role"] for m in book["chosen"]] == ["assistant", "user", "assistant"]
    assert book["rejected"][-1] == msg("assistant", "I don't feel like it.")


def test_hh_rlhf_malformed_rows_are_dropped_and_counted(tmp_path, caplog):
    good = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}
    malformed = [
        {"chosen": "Human: no leading blank line\n\nAssistant: a", "rejected": "\n\nHuman: x\n\nAssistant: b"},
        {"chosen": "\n\nHuman: same\n\nAssistant: same", "rejected": "\n\nHuman: same\n\nAssistant: same"},
        {"chosen": "\n\nHuman: empty answer\n\nAssistant:", "rejected": "\n\nHuman: empty answer\n\nAssistant: b"},
        {"chosen": "\n\nHuman: a\n\nHuman: b\n\nAssistant: c", "rejected": "\n\nHuman: a\n\nHuman: b\n\nAssistant: d"},
    ]
    (tmp_path / "hh-rlhf").mkdir()
    (tmp_path / "hh-rlhf" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [good, *malformed]))
    with caplog.at_level(logging.WARNING):
        rows = load_dataset_by_name("hh-rlhf", "test", local_dir=tmp_path)
    assert len(rows) == 1 and rows[0]["rejected"] == [msg("assistant", "Go away.")]
    assert "dropped 4 of 5" in caplog.text


def test_hh_parser_rejects_text_before_first_turn():
    assert parse_hh_transcript("preamble\n\nHuman: a\n\nAssistant: b") is None
    assert normalize_hh_rlhf({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "garbage"}) is None


def test_alpaca_to_chat_messages(fixtures_dir):
    rows = load_dataset_by_name("alpaca", "train", local_dir=fixtures_dir)
    assert rows[0]["messages"][0] == msg("user", "Give three tips for staying healthy.")
    assert rows[1]["messages"] == [
        msg("user", "Identify the odd one out.\n\nTwitter, Instagram, Telegram"),
        msg("assistant", "Telegram"),
    ]


def test_gsm8k_keeps_worked_steps_and_reference(fixtures_dir):
    rows = load_dataset_by_name("gsm8k", "train", local_dir=fixtures_dir)
    assert [gsm8k_reference(r["answer"]) for r in rows] == ["72", "10"]
    assert calculator_annotations(rows[0]["answer"]) == [("48/2", "24"), ("48+24", "72")]
    assert rows.column_names == ["question", "answer"]


def test_sst2_and_text_normalisers(fixtures_dir, tmp_path):
    sst2 = load_dataset_by_name("sst2", "validation", local_dir=fixtures_dir)
    assert sst2[0] == {"sentence": "it 's a charming and often affecting journey .", "label": 1, "idx": 0}
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.jsonl").write_text(
        '{"sentence": "hidden label", "label": -1, "idx": 0}\n{"sentence": "a fine film", "label": 1, "idx": 1}\n'
    )
    assert load_dataset_by_name("sst2", "train", local_dir=tmp_path)["sentence"] == ["a fine film"]
    wiki = load_dataset_by_name("wikitext-2-raw-v1", "test", local_dir=fixtures_dir)
    assert wiki[0]["text"] == " = Robert Boulter = \n" and all(t.strip() for t in wiki["text"])
    assert len(wiki) == 4  # the 5 empty lines are gone


@pytest.mark.parametrize("name, split", [("hh-rlhf", "train"), ("wikitext-2-raw-v1", "test"), ("tinystories", "train")])
def test_streaming_gives_the_same_rows(fixtures_dir, name, split):
    eager = load_dataset_by_name(name, split, local_dir=fixtures_dir)
    streamed = load_dataset_by_name(name, split, local_dir=fixtures_dir, streaming=True)
    assert list(streamed) == list(eager)
    assert list(load_dataset_by_name(name, split, local_dir=fixtures_dir, streaming=True, limit=1)) == [eager[0]]


def test_missing_field_names_dataset_file_and_field(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text('{"question": "1+1?", "solution": "#### 2"}\n')
    with pytest.raises(DatasetUnavailableError, match=r"gsm8k.*train\.jsonl lacks field 'answer'"):
        load_dataset_by_name("gsm8k", "train", local_dir=tmp_path)


def test_bad_names_and_splits_say_what_exists(tmp_path):
    with pytest.raises(ValueError, match="registered names: .*tinystories"):
        load_dataset_by_name("tiny-stories", "train")
    with pytest.raises(ValueError, match="splits: train, validation"):
        load_dataset_by_name("sst2", "test")
    with pytest.raises(DatasetUnavailableError, match="no local file .*alpaca/train.jsonl"):
        load_dataset_by_name("alpaca", "train", local_dir=tmp_path)


def test_hub_path_offline_raises_with_reason_and_fix():
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset_by_name("gsm8k", "test")
    assert info.value.reason.startswith("unreachable: no network")
    assert "prefetch" in info.value.fix and isinstance(info.value, RuntimeError)


def test_hub_errors_are_explained():
    spec = REGISTRY["openwebtext"]
    script = explain_hub_error(spec, RuntimeError("Dataset scripts are no longer supported, but found openwebtext.py"))
    assert "loading-script" in script.reason and "--local_dir" in script.fix
    # datasets' own wording for a gated repo without a token
    gated = explain_hub_error(
        spec,
        DatasetNotFoundError("Dataset 'x/y' is a gated dataset on the Hub. You must be authenticated to access it."),
    )
    assert "needs an HF token" in gated.reason and "hf auth login" in gated.fix
    missing = explain_hub_error(spec, DatasetNotFoundError("Dataset 'x/y' doesn't exist on the Hub"))
    assert "not found on the Hub" in missing.reason
    assert isinstance(spec, DatasetSpec) and spec.kind == "text" and spec.stream_by_default


def test_hub_path_calls_datasets_with_the_registry_ids(fixtures_dir, monkeypatch):
    """The Hub route, with ``datasets.load_dataset`` answering from a fixture instead of the network."""
    import datasets

    calls = []
    real_load = datasets.load_dataset

    def fake_hub(path, name=None, split=None, streaming=False, **kwargs):
        if path in ("json", "parquet"):
            return real_load(path, name, split=split, streaming=streaming, **kwargs)
        calls.append((path, name, split, streaming))
        return real_load("parquet", data_files={split: str(fixtures_dir / "gsm8k" / f"{split}.parquet")}, split=split)

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    eager = load_dataset_by_name("gsm8k", "test")
    # Offline (as in these tests), streaming reads the prepared Arrow copy and iterates over it.
    streamed = load_dataset_by_name("gsm8k", "test", streaming=True)
    assert isinstance(streamed, datasets.IterableDataset) and list(streamed) == list(eager)
    assert calls == [("openai/gsm8k", "main", "test", False)] * 2
    assert [gsm8k_reference(row["answer"]) for row in eager] == ["18", "3"]
