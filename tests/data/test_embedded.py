"""The embedded corpus: deterministic by seed, in the Hub schemas, correct answers, and eval splits disjoint from train."""

import re

import pytest

from modeling_modern_llm.data import REGISTRY, CorpusSizes, generate_embedded_corpus, load_dataset_by_name, split_of
from modeling_modern_llm.task_formats import calculator_annotations, gsm8k_reference

SMALL = CorpusSizes(text_train_chars=60_000, text_eval_chars=10_000, train_rows=400, eval_rows=80, math_eval_rows=100)
EVAL_SPLITS = ("validation", "test")
HUB_SCHEMA = {
    "embedded-text": {"text"},
    "embedded-alpaca": {"instruction", "input", "output", "text"},
    "embedded-hh-rlhf": {"chosen", "rejected"},
    "embedded-gsm8k": {"question", "answer"},
    "embedded-sst2": {"sentence", "label", "idx"},
}


@pytest.fixture(scope="module")
def corpus():
    return generate_embedded_corpus(seed=0, sizes=SMALL)


def test_same_seed_same_rows_other_seed_other_rows(corpus):
    assert generate_embedded_corpus(seed=0, sizes=SMALL) == corpus
    other = generate_embedded_corpus(seed=1, sizes=SMALL)
    for name in corpus:
        assert other[name]["train"] != corpus[name]["train"], name


def test_rows_follow_the_hub_schemas_and_sizes(corpus):
    for name, splits in corpus.items():
        for split, rows in splits.items():
            assert all(set(row) == HUB_SCHEMA[name] for row in rows), (name, split)
            if name != "embedded-text":
                assert len(rows) == SMALL.rows(split, math=name == "embedded-gsm8k")
    assert sum(len(r["text"]) for r in corpus["embedded-text"]["train"]) >= SMALL.text_train_chars


def test_math_solutions_are_correct_gsm8k_answers(corpus):
    for split in ("train", "validation", "test"):
        for row in corpus["embedded-gsm8k"][split]:
            steps = calculator_annotations(row["answer"])
            assert steps, row
            for expression, written in steps:
                assert re.fullmatch(r"[0-9+\-*/]+", expression) and eval(expression) == int(written), row
            assert gsm8k_reference(row["answer"]) == steps[-1][1]
            assert int(gsm8k_reference(row["answer"])) >= 0


def test_sst2_labels_are_balanced_and_binary(corpus):
    labels = [row["label"] for row in corpus["embedded-sst2"]["train"]]
    assert set(labels) == {0, 1} and 0.35 < sum(labels) / len(labels) < 0.65
    assert [row["idx"] for row in corpus["embedded-sst2"]["validation"]] == list(range(SMALL.eval_rows))


def test_preference_pairs_disagree_and_normalise_without_drops(corpus):
    rows = corpus["embedded-hh-rlhf"]["train"]
    assert all(row["chosen"] != row["rejected"] and row["chosen"].startswith("\n\nHuman: ") for row in rows)
    assert any(row["chosen"].count("\n\nHuman: ") > 1 for row in rows)  # some have several turns


def _training_text(corpus) -> str:
    """Everything a model is trained on, across every stage's training split."""
    parts = [row["text"] for row in corpus["embedded-text"]["train"]]
    parts += [row["text"] for row in corpus["embedded-alpaca"]["train"]]
    parts += [row["chosen"] + row["rejected"] for row in corpus["embedded-hh-rlhf"]["train"]]
    parts += [row["question"] for row in corpus["embedded-gsm8k"]["train"]]
    parts += [row["sentence"] for row in corpus["embedded-sst2"]["train"]]
    return "\n".join(parts)


def test_eval_problems_and_sentences_never_appear_in_training_data(corpus):
    seen_in_training = _training_text(corpus)
    for split in EVAL_SPLITS:
        questions = [row["question"] for row in corpus["embedded-gsm8k"][split]]
        sentences = [row["sentence"] for row in corpus["embedded-sst2"][split]]
        assert questions and sentences
        assert not [q for q in questions if q in seen_in_training], split
        # A sentence may be a substring of a longer training sentence; compare whole SST sentences.
        training_sentences = {row["sentence"] for row in corpus["embedded-sst2"]["train"]}
        training_lines = set(seen_in_training.splitlines())
        assert not [s for s in sentences if s in training_sentences or s in training_lines], split
    validation = {row["question"] for row in corpus["embedded-gsm8k"]["validation"]}
    assert validation.isdisjoint(row["question"] for row in corpus["embedded-gsm8k"]["test"])


def test_eval_instructions_are_held_out_but_their_facts_are_in_pretraining(corpus):
    train_instructions = {(r["instruction"], r["input"]) for r in corpus["embedded-alpaca"]["train"]}
    eval_rows = corpus["embedded-alpaca"]["validation"] + corpus["embedded-alpaca"]["test"]
    assert not [r for r in eval_rows if (r["instruction"], r["input"]) in train_instructions]
    pretraining = "\n".join(row["text"] for row in corpus["embedded-text"]["train"])
    capital_questions = [r for r in eval_rows if r["instruction"].startswith("What is the capital of")]
    assert capital_questions and all(r["output"] in pretraining for r in capital_questions)


def test_split_assignment_is_a_fixed_partition():
    keys = [f"math:item {i}" for i in range(5000)]
    shares = {split: sum(split_of(k) == split for k in keys) / len(keys) for split in ("train", "validation", "test")}
    assert 0.75 < shares["train"] < 0.85 and 0.07 < shares["validation"] < 0.13
    assert [split_of(k) for k in keys] == [split_of(k) for k in keys]


def test_registry_loads_embedded_sets_through_the_hub_normalisers():
    for name in ("embedded-gsm8k", "embedded-hh-rlhf", "embedded-alpaca"):
        rows = load_dataset_by_name(name, "validation", limit=5)
        kind = REGISTRY[name].kind
        assert len(rows) == 5 and REGISTRY[name.removeprefix("embedded-")].kind == kind
    pair = load_dataset_by_name("embedded-hh-rlhf", "validation", limit=1)[0]
    assert pair["prompt"][-1]["role"] == "user" and pair["chosen"][0]["role"] == "assistant"
    assert len(load_dataset_by_name("embedded-sst2", "test")) == CorpusSizes().eval_rows
    assert len(load_dataset_by_name("embedded-gsm8k", "test")) == CorpusSizes().math_eval_rows >= 500


def test_the_difficulty_dial_sets_steps_and_distractors():
    """A problem takes the dial's number of steps (each an `<<expr=value>>`), and a distractor is a sentence whose
    number no step uses."""
    import random

    from modeling_modern_llm.data.embedded import MathDifficulty, make_math_problem

    for steps in range(2, 9):
        dial = MathDifficulty(min_steps=steps, max_steps=steps, step_weights=(1,), distractor_rate=0.0)
        problems = [make_math_problem(random.Random(f"{steps}-{i}"), dial) for i in range(40)]
        assert {len(calculator_annotations(p.answer)) for p in problems} == {steps}
    rng, always = random.Random(0), MathDifficulty(distractor_rate=1.0)
    for _ in range(60):
        problem = make_math_problem(rng, always)
        used = {n for expression, _ in calculator_annotations(problem.answer) for n in re.findall(r"\d+", expression)}
        sentences = re.split(r"(?<=[.?])\s", problem.question)
        assert any(set(re.findall(r"\d+", s)) and not set(re.findall(r"\d+", s)) & used for s in sentences), problem
    for wrong in (
        dict(step_weights=(1, 1)),
        dict(min_steps=1),
        dict(max_steps=9),
        dict(max_start=5),
        dict(distractor_rate=1.5),
    ):
        with pytest.raises(ValueError, match="MathDifficulty"):
            MathDifficulty(**wrong)


def test_default_problems_span_two_to_eight_steps_fewer_likelier(corpus):
    counts = [len(calculator_annotations(row["answer"])) for row in corpus["embedded-gsm8k"]["train"]]
    assert min(counts) == 2 and max(counts) == 8
    assert counts.count(2) > counts.count(3) > counts.count(4) > counts.count(8)


def test_every_number_a_step_uses_is_in_the_question_or_an_earlier_result(corpus):
    """No step needs a number the problem does not give (but "half", "twice", a percent's 100 and a bill)."""
    for row in corpus["embedded-gsm8k"]["test"]:
        known = set(re.findall(r"\d+", row["question"])) | {"2", "3", "4", "100"}
        for expression, value in calculator_annotations(row["answer"]):
            assert set(re.findall(r"\d+", expression)) <= known, (expression, row["question"])
            known.add(value)


def test_rejected_math_answers_carry_one_slip_in_the_last_step(corpus):
    """Preference pairs on math differ only in the last step, by a wrong result or a wrong number copied into it, so
    DPO rewards the right numbers in the GSM8K format."""
    math_rows = [
        row for row in corpus["embedded-hh-rlhf"]["train"] if "####" in row["chosen"] and "####" in row["rejected"]
    ]
    assert len(math_rows) > 20
    kinds = set()
    for row in math_rows:
        chosen = calculator_annotations(row["chosen"].rpartition("\n\nAssistant: ")[2])
        rejected = calculator_annotations(row["rejected"].rpartition("\n\nAssistant: ")[2])
        assert all(eval(expression) == int(value) for expression, value in chosen), row
        assert chosen[:-1] == rejected[:-1] and chosen[-1] != rejected[-1], row
        expression, value = rejected[-1]
        kinds.add("arithmetic" if eval(expression) != int(value) else "operand")
        assert gsm8k_reference(row["rejected"].rpartition("\n\nAssistant: ")[2]) == value
    assert kinds == {"arithmetic", "operand"}


def test_chat_transcripts_in_the_pretraining_text_are_the_tokenizers_chat_format(corpus):
    from modeling_modern_llm.task_formats import chat_transcript
    from modeling_modern_llm.tokenizer import train_tokenizer

    transcripts = [row["text"] for row in corpus["embedded-text"]["train"] if "<|im_start|>" in row["text"]]
    assert len(transcripts) > 10
    tokenizer = train_tokenizer(transcripts, vocab_size=400, min_frequency=2)
    messages = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "2+2 = <<2+2=4>>4\n#### 4"},
    ]
    assert chat_transcript("What is 2+2?", "2+2 = <<2+2=4>>4\n#### 4") == tokenizer.apply_chat_template(
        messages, tokenize=False
    )
    # and the chat tokens stay single special tokens when the pretraining text is tokenised
    ids = tokenizer(transcripts[0])["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == transcripts[0].count("<|im_start|>")
