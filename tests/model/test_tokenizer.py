"""Tests of the byte-level BPE tokenizer: round trips, special tokens, reload, chat template, GPT-2-style loading."""

import json
import os
import random
import subprocess
import sys

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer
from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

from modeling_modern_llm.tokenizer import (
    EOS_TOKEN,
    IM_END_TOKEN,
    IM_START_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    load_tokenizer,
    train_tokenizer,
)

from .conftest import run_main

VOCAB_SIZE = 400
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "away", "über", "naïve", "日本語", "😀", "3.14", "\n"]
# Text unlike the training corpus: every latin-1 character, control bytes, astral-plane emoji, combining marks, RTL.
UNSEEN_TEXT = bytes(range(256)).decode("latin-1") + " 🦙\u200d🔥 e\u0301 עברית \x00\x7f\t\r\n  double  spaces "
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What sat on the mat?"},
    {"role": "assistant", "content": "The cat sat."},
    {"role": "user", "content": "And then?"},
    {"role": "assistant", "content": " It ran away 😀"},
]


SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "zé", "yu", "ße", "語", "ho", "ve"]


def make_corpus(n_docs=300, seed=0):
    """Frequent real words plus made-up ones, rich enough in pairs to fill a 400-token vocabulary."""
    rng = random.Random(seed)

    def word():
        if rng.random() < 0.5:
            return rng.choice(WORDS)
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))

    return [" ".join(word() for _ in range(rng.randint(5, 40))) for _ in range(n_docs)]


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def saved_tokenizer(tmp_path_factory, corpus):
    save_dir = tmp_path_factory.mktemp("tokenizer")
    return train_tokenizer(corpus, vocab_size=VOCAB_SIZE, save_dir=str(save_dir)), str(save_dir)


def test_round_trip_of_unseen_unicode_and_bytes(saved_tokenizer, corpus):
    tokenizer, _ = saved_tokenizer
    for text in [UNSEEN_TEXT, *corpus[:20], ""]:
        ids = tokenizer.encode(text)
        assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text


def test_vocabulary_holds_bytes_specials_and_merges(saved_tokenizer):
    tokenizer, _ = saved_tokenizer
    assert len(tokenizer) == VOCAB_SIZE
    vocab = tokenizer.get_vocab()
    assert all(symbol in vocab for symbol in pre_tokenizers.ByteLevel.alphabet())
    # Frequent words of the corpus became single tokens.
    assert len(tokenizer.encode(" the")) == 1 and len(tokenizer.encode(" cat")) == 1


def test_special_tokens_are_single_ids_never_split(saved_tokenizer):
    tokenizer, _ = saved_tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    assert len(set(ids.values())) == len(SPECIAL_TOKENS)
    for token, token_id in ids.items():
        encoded = tokenizer.encode(f"the{token}cat {token}{token}x")
        assert encoded.count(token_id) == 3
        assert token not in tokenizer.decode(encoded, skip_special_tokens=True)
    assert tokenizer.all_special_tokens == SPECIAL_TOKENS


def test_pad_eos_bos_roles(saved_tokenizer):
    tokenizer, _ = saved_tokenizer
    assert tokenizer.eos_token == tokenizer.bos_token == EOS_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    # Nothing is prepended or appended silently: documents are separated explicitly by the data pipeline.
    assert tokenizer("the cat")["input_ids"] == tokenizer.encode("the cat", add_special_tokens=False)


def test_auto_tokenizer_reloads_the_same_ids(saved_tokenizer, corpus):
    tokenizer, save_dir = saved_tokenizer
    reloaded = AutoTokenizer.from_pretrained(save_dir)
    for text in [UNSEEN_TEXT, *corpus[:20]]:
        assert reloaded.encode(text) == tokenizer.encode(text)
    for attribute in ("eos_token_id", "bos_token_id", "pad_token_id", "all_special_ids", "chat_template"):
        assert getattr(reloaded, attribute) == getattr(tokenizer, attribute), attribute
    assert reloaded.get_vocab() == tokenizer.get_vocab()


def test_chat_template_renders_chatml(saved_tokenizer):
    _, save_dir = saved_tokenizer
    tokenizer = AutoTokenizer.from_pretrained(save_dir)
    rendered = tokenizer.apply_chat_template(CONVERSATION[:3], tokenize=False)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat sat on the mat?<|im_end|>\n"
        "<|im_start|>assistant\nThe cat sat.<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nWhat sat on the mat?<|im_end|>\n<|im_start|>assistant\n")
    # A prompt plus the assistant's completion is exactly the rendered conversation (prefix preservation).
    assert rendered == prompt + "The cat sat.<|im_end|>\n"


def test_assistant_mask_marks_exactly_the_assistant_tokens(saved_tokenizer):
    _, save_dir = saved_tokenizer
    tokenizer = AutoTokenizer.from_pretrained(save_dir)
    output = tokenizer.apply_chat_template(CONVERSATION, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = output["input_ids"], output["assistant_masks"]
    assert len(ids) == len(mask)
    spans, start = [], None
    for position, flag in enumerate([*mask, 0]):
        if flag and start is None:
            start = position
        elif not flag and start is not None:
            spans.append(ids[start:position])
            start = None
    expected = [m["content"] + IM_END_TOKEN for m in CONVERSATION if m["role"] == "assistant"]
    assert [tokenizer.decode(span) for span in spans] == expected
    # TRL's own checks behind assistant_only_loss: markers present, the stop token <|im_end|> is trained.
    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_training_is_deterministic(corpus, saved_tokenizer):
    first, _ = saved_tokenizer
    second = train_tokenizer(iter(corpus), vocab_size=VOCAB_SIZE)
    assert second.backend_tokenizer.to_str() == first.backend_tokenizer.to_str()
    different = train_tokenizer(make_corpus(seed=1), vocab_size=VOCAB_SIZE)
    assert different.backend_tokenizer.to_str() != first.backend_tokenizer.to_str()


def test_small_corpus_stops_below_vocab_size_and_min_frequency_matters():
    texts = ["abc xyz abd"]  # the most frequent pair, "ab", occurs twice
    assert len(train_tokenizer(texts, vocab_size=VOCAB_SIZE, min_frequency=1)) > len(
        train_tokenizer(texts, vocab_size=VOCAB_SIZE, min_frequency=3)
    )
    assert len(train_tokenizer(texts, vocab_size=VOCAB_SIZE, min_frequency=3)) == 256 + len(SPECIAL_TOKENS)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"texts": ["a b"], "vocab_size": 100}, ValueError, "vocab_size=100 is too small"),
        ({"texts": []}, ValueError, "no texts"),
        ({"texts": ["ok", b"bytes"]}, TypeError, "iterable of str"),
        ({"texts": "one long string"}, TypeError, "not one string"),
        ({"texts": ["a"], "min_frequency": 0}, ValueError, "min_frequency"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, error, message):
    with pytest.raises(error, match=message):
        train_tokenizer(**kwargs)


def write_gpt2_style_tokenizer(folder, corpus):
    """A tiny tokenizer in the files and schema of the Hub's `gpt2` repo (the Hub is offline here)."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS_TOKEN], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    backend.model.save(str(folder))  # vocab.json, merges.txt
    backend.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))
    eos_id = backend.token_to_id(EOS_TOKEN)
    config = {"model_type": "gpt2", "vocab_size": 300, "bos_token_id": eos_id, "eos_token_id": eos_id}
    (folder / "config.json").write_text(json.dumps(config))


def test_load_tokenizer_adds_pad_and_chat_template_without_changing_ids(tmp_path, corpus):
    write_gpt2_style_tokenizer(tmp_path, corpus)
    original = AutoTokenizer.from_pretrained(str(tmp_path))
    assert original.pad_token is None and original.chat_template is None

    tokenizer = load_tokenizer(str(tmp_path))
    assert type(tokenizer) is type(original)
    for text in [UNSEEN_TEXT, *corpus[:10]]:
        assert tokenizer.encode(text) == original.encode(text)
    assert original.get_vocab().items() <= tokenizer.get_vocab().items()
    for attribute in ("eos_token", "bos_token", "unk_token", "eos_token_id", "bos_token_id", "unk_token_id"):
        assert getattr(tokenizer, attribute) == getattr(original, attribute), attribute
    # Three tokens appended after the existing vocabulary: pad, <|im_start|>, <|im_end|>.
    assert len(tokenizer) == len(original) + 3
    new_ids = {tokenizer.convert_tokens_to_ids(t) for t in (PAD_TOKEN, IM_START_TOKEN, IM_END_TOKEN)}
    assert new_ids == set(range(len(original), len(original) + 3))
    assert tokenizer.pad_token == PAD_TOKEN and tokenizer.pad_token_id != tokenizer.eos_token_id

    output = tokenizer.apply_chat_template(CONVERSATION[:3], return_assistant_tokens_mask=True, return_dict=True)
    assistant_ids = [i for i, m in zip(output["input_ids"], output["assistant_masks"]) if m]
    assert tokenizer.decode(assistant_ids) == "The cat sat.<|im_end|>"

    tokenizer.save_pretrained(str(tmp_path / "ready"))
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path / "ready"))
    assert reloaded.get_vocab() == tokenizer.get_vocab() and reloaded.pad_token_id == tokenizer.pad_token_id
    assert reloaded.chat_template == tokenizer.chat_template


def test_load_tokenizer_leaves_a_complete_tokenizer_alone(saved_tokenizer):
    tokenizer, save_dir = saved_tokenizer
    loaded = load_tokenizer(save_dir)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert loaded.chat_template == tokenizer.chat_template
    assert loaded.pad_token_id == tokenizer.pad_token_id


def run_cli_process(*args):
    env = {**os.environ, "PYTHONHASHSEED": "123"}  # a different hash seed than this process, on purpose
    return subprocess.run(
        [sys.executable, "-m", "modeling_modern_llm.tokenizer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def run_cli(*args):
    """`python -m modeling_modern_llm.tokenizer ARGS`, in this process."""
    from modeling_modern_llm.tokenizer import main

    return run_main(main, *args)


@pytest.mark.slow  # another interpreter process, with another hash seed
def test_cli_on_a_text_file_matches_the_function(tmp_path, corpus):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text("\n".join(corpus), encoding="utf-8")
    result = run_cli_process(
        "--output_dir", str(tmp_path / "tok"), "--vocab_size", str(VOCAB_SIZE), "--text_file", str(text_file)
    )
    assert result.returncode == 0, result.stderr
    from_cli = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    # Same lines in another process give the same vocabulary: training does not depend on hash seeds.
    with open(text_file, encoding="utf-8") as handle:
        in_process = train_tokenizer(list(handle), vocab_size=VOCAB_SIZE)
    assert from_cli.backend_tokenizer.to_str() == in_process.backend_tokenizer.to_str()


def test_cli_without_text_fails_with_a_hint(tmp_path):
    result = run_cli("--output_dir", str(tmp_path / "tok"))
    assert result.returncode != 0
    assert "--dataset NAME and/or --text_file" in result.stderr
    missing = run_cli("--output_dir", str(tmp_path / "tok"), "--text_file", str(tmp_path / "nope.txt"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    "make_args, status, words",
    [
        (lambda d: ["--text_file", str(_written(d / "latin.txt", b"caf\xe9\n" * 50))], 1, "is not UTF-8"),
        (lambda d: ["--dataset", "wikitext-3"], 2, "unknown dataset 'wikitext-3'"),
        (lambda d: ["--dataset", "embedded-alpaca"], 2, "not a `text` column"),
        (
            lambda d: ["--text_file", str(_written(d / "ok.txt", b"words\n" * 50)), "--vocab_size", "100"],
            2,
            "too small",
        ),
    ],
)
def test_cli_bad_input_is_one_line(make_args, status, words, tmp_path):
    result = run_cli("--output_dir", str(tmp_path / "tok"), *make_args(tmp_path))
    assert result.returncode == status and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert words in result.stderr.strip().splitlines()[-1]


def test_cli_keeps_an_existing_tokenizer_unless_overwrite(tmp_path, corpus):
    text_file = _written(tmp_path / "corpus.txt", "\n".join(corpus).encode())
    first = run_cli(
        "--output_dir", str(tmp_path / "tok"), "--vocab_size", str(VOCAB_SIZE), "--text_file", str(text_file)
    )
    assert first.returncode == 0
    before = (tmp_path / "tok" / "tokenizer.json").read_bytes()
    again = run_cli("--output_dir", str(tmp_path / "tok"), "--vocab_size", "300", "--text_file", str(text_file))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert (tmp_path / "tok" / "tokenizer.json").read_bytes() == before


def _written(path, data: bytes):
    path.write_bytes(data)
    return path


def test_cli_on_a_registry_dataset(tmp_path):
    result = run_cli(
        "--output_dir",
        str(tmp_path / "tok"),
        "--vocab_size",
        str(VOCAB_SIZE),
        "--dataset",
        "embedded-text",
        "--limit",
        "500",
    )
    assert result.returncode == 0, result.stderr
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.decode(tokenizer.encode(UNSEEN_TEXT)) == UNSEEN_TEXT
