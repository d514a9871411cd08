"""Mixtures: weights become sampling ratios, and the seed fixes the order."""

import json

import pytest

from modeling_modern_llm.data import build_mixture, parse_mixture


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    """Two text datasets in a local_dir, rows tagged by their source."""
    root = tmp_path_factory.mktemp("mix")
    for name, tag in (("tinystories", "story"), ("openwebtext", "web")):
        (root / name).mkdir()
        rows = [{"text": f"{tag} {i}"} for i in range(2000)]
        (root / name / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _share_of_stories(rows) -> float:
    tags = [row["text"].split()[0] for row in rows]
    return tags.count("story") / len(tags)


@pytest.mark.parametrize(
    "weights, expected", [({"tinystories": 3, "openwebtext": 1}, 0.75), ("tinystories:0.2,openwebtext:0.8", 0.2)]
)
def test_weights_become_ratios(two_corpora, weights, expected):
    mixed = build_mixture(weights, "train", seed=0, local_dir=two_corpora)
    assert len(mixed) > 1000
    assert abs(_share_of_stories(mixed) - expected) < 0.03


def test_seed_fixes_the_order_streaming_too(two_corpora):
    weights = [["tinystories", 1], ["openwebtext", 1]]
    first = build_mixture(weights, "train", seed=3, local_dir=two_corpora)["text"]
    assert build_mixture(weights, "train", seed=3, local_dir=two_corpora)["text"] == first
    assert build_mixture(weights, "train", seed=4, local_dir=two_corpora)["text"] != first

    def streamed(seed):
        mixed = build_mixture(weights, "train", seed=seed, local_dir=two_corpora, streaming=True, shuffle_buffer=100)
        return [row["text"] for row in mixed.take(500)]

    assert streamed(3) == streamed(3) != streamed(4)
    assert abs(_share_of_stories([{"text": t} for t in streamed(3)]) - 0.5) < 0.07


def test_mixture_forms_and_errors():
    assert parse_mixture(["tinystories", "embedded-text"]) == [("tinystories", 1.0), ("embedded-text", 1.0)]
    assert parse_mixture("tinystories:0.7, embedded-text:0.3") == [("tinystories", 0.7), ("embedded-text", 0.3)]
    assert parse_mixture(["tinystories:0.7", "embedded-text"]) == [("tinystories", 0.7), ("embedded-text", 1.0)]
    with pytest.raises(ValueError, match="name:weight"):
        parse_mixture(["tinystories:lots"])
    with pytest.raises(ValueError, match="positive weights"):
        parse_mixture({"tinystories": 0})
    with pytest.raises(ValueError, match="unknown dataset 'tinystory'"):
        parse_mixture({"tinystory": 1})
    with pytest.raises(ValueError, match="one kind"):
        build_mixture({"embedded-text": 1, "embedded-gsm8k": 1}, "train", seed=0)


def test_embedded_pretraining_mixture_is_deterministic():
    mixed = build_mixture({"embedded-text": 1}, "validation", seed=0)
    assert mixed["text"] == build_mixture({"embedded-text": 1}, "validation", seed=0)["text"]
