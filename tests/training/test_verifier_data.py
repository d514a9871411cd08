"""The verifier's pairs: correct vs incorrect solutions of the same problem (the reference only when asked)."""

import os
from types import SimpleNamespace

from modeling_modern_llm.task_formats import format_verifier_input
from modeling_modern_llm.training.verifier_data import cached_samples, preference_pairs, samples_path

ANSWER = "2 + 3 = <<2+3=5>>5\n#### 5"


def _record(question, solution, correct):
    return {"question": question, "answer": ANSWER, "solution": solution, "correct": correct}


def test_pairs_come_from_the_policys_own_samples_of_one_problem():
    records = [_record("A?", "so #### 5", True), _record("A?", "so #### 6", False), _record("B?", "#### 7", False)]
    pairs = preference_pairs(records, max_pairs_per_problem=10, seed=0)
    # B has no correct sample, so without the reference it gives no pair
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        (format_verifier_input("A?", "so #### 5"), format_verifier_input("A?", "so #### 6"))
    ]


def test_include_reference_counts_the_reference_as_correct():
    records = [_record("A?", "so #### 5", True), _record("A?", "so #### 6", False), _record("B?", "#### 7", False)]
    pairs = preference_pairs(records, max_pairs_per_problem=10, seed=0, include_reference=True)
    expected = {
        (format_verifier_input("A?", ANSWER), format_verifier_input("A?", "so #### 6")),
        (format_verifier_input("A?", "so #### 5"), format_verifier_input("A?", "so #### 6")),
        (format_verifier_input("B?", ANSWER), format_verifier_input("B?", "#### 7")),
    }
    assert {(p["chosen"], p["rejected"]) for p in pairs} == expected


def test_a_problem_solved_every_time_gives_no_pair_and_the_cap_holds():
    solved = [_record("A?", "#### 5", True)] * 3
    assert preference_pairs(solved, max_pairs_per_problem=10, seed=0, include_reference=True) == []
    mixed = [_record("B?", "#### 5", True), _record("B?", "so, #### 5", True)] + [
        _record("B?", f"#### {n}", False) for n in range(6, 12)
    ]
    assert len(preference_pairs(mixed, max_pairs_per_problem=4, seed=0)) == 4
    assert len(preference_pairs(mixed, max_pairs_per_problem=100, seed=0)) == 2 * 6


def test_cached_samples_are_reused(tmp_path):
    path = str(tmp_path / "samples.jsonl")
    problems = [{"question": "A?"}]
    first = cached_samples(path, problems, lambda rows: [_record(row["question"], "#### 5", True) for row in rows])
    again = cached_samples(path, problems, lambda rows: (_ for _ in ()).throw(AssertionError("must not resample")))
    assert first == again


def test_each_process_samples_its_share_and_the_shards_join_in_order(tmp_path):
    """Rank 0 of two samples only its contiguous share and, past the barrier, joins it with rank 1's shard in order."""
    path = str(tmp_path / "samples.jsonl")
    problems = [{"question": f"Q{index}?"} for index in range(5)]
    sampled = []

    def sample(rows):
        sampled.append([row["question"] for row in rows])
        return [_record(row["question"], "#### 5", True) for row in rows]

    shard_of_rank_1 = f"{path}.shard1-of-2"
    barrier_calls = []
    with open(shard_of_rank_1, "w") as handle:  # what rank 1 writes before the barrier
        handle.writelines(f'{{"question": "Q{i}?", "answer": "x", "solution": "s", "correct": true}}\n' for i in (3, 4))
    records = cached_samples(path, problems, sample, 0, 2, lambda: barrier_calls.append(1))
    assert sampled == [["Q0?", "Q1?", "Q2?"]]
    assert [r["question"] for r in records] == [f"Q{i}?" for i in range(5)]
    assert len(barrier_calls) == 2 and not os.path.exists(shard_of_rank_1)


def test_samples_path_changes_with_every_sampling_setting_and_nothing_else():
    args = SimpleNamespace(
        samples_per_problem=8,
        temperature=0.7,
        top_p=1.0,
        max_new_tokens=96,
        sample_with_chat_template=True,
        use_calculator=False,
        seed=42,
        learning_rate=5e-4,
    )
    problems, shots = [{"question": "A?"}, {"question": "B?"}], []
    base = samples_path("out", "train", "runs/dpo_final", problems, shots, args)
    assert base.startswith("out/samples-train-") and base.endswith(".jsonl")
    assert samples_path("out", "train", "runs/dpo_final", problems, shots, args) == base  # a resume finds its samples
    assert (
        samples_path(
            "out", "train", "runs/dpo_final", problems, shots, SimpleNamespace(**{**vars(args), "learning_rate": 1e-3})
        )
        == base
    )  # training settings do not matter
    changed = [
        samples_path("out", "train", "runs/sft_final", problems, shots, args),
        samples_path("out", "train", "runs/dpo_final", problems[:1], shots, args),
        samples_path("out", "train", "runs/dpo_final", problems, [{"question": "C?"}], args),
        samples_path("out", "validation", "runs/dpo_final", problems, shots, args),
    ]
    for name, value in (
        ("samples_per_problem", 4),
        ("temperature", 1.0),
        ("top_p", 0.9),
        ("max_new_tokens", 32),
        ("sample_with_chat_template", False),
        ("use_calculator", True),
        ("seed", 0),
    ):
        changed.append(
            samples_path(
                "out", "train", "runs/dpo_final", problems, shots, SimpleNamespace(**{**vars(args), name: value})
            )
        )
    assert base not in changed and len(set(changed)) == len(changed)


def test_samples_path_changes_when_a_local_policy_is_retrained(tmp_path):
    args = SimpleNamespace(
        samples_per_problem=8,
        temperature=0.7,
        top_p=1.0,
        max_new_tokens=96,
        sample_with_chat_template=True,
        use_calculator=False,
        seed=42,
    )
    policy = tmp_path / "dpo_final"
    policy.mkdir()
    (policy / "model.safetensors").write_bytes(b"first weights")
    before = samples_path("out", "train", str(policy), [{"question": "A?"}], [], args)
    assert samples_path("out", "train", str(policy), [{"question": "A?"}], [], args) == before
    (policy / "model.safetensors").write_bytes(b"retrained weights")
    os.utime(policy / "model.safetensors", ns=(1, 1))
    assert samples_path("out", "train", str(policy), [{"question": "A?"}], [], args) != before


def test_pairs_are_tokenised_as_evaluation_scores_them():
    from modeling_modern_llm.tokenizer import train_tokenizer
    from modeling_modern_llm.training.verifier_data import tokenize_pairs

    tokenizer = train_tokenizer(["Question: how many? Answer: 5 #### 5"] * 30, vocab_size=300, min_frequency=1)
    pairs = preference_pairs([_record("A?", "#### 6", False)], max_pairs_per_problem=1, seed=0, include_reference=True)
    ids = tokenize_pairs(pairs, tokenizer)
    assert ids["chosen_ids"][0] == tokenizer(pairs[0]["chosen"])["input_ids"]
    assert ids["rejected_ids"][0][-1] != tokenizer.eos_token_id


def test_with_references_adds_each_problems_reference_once_as_a_correct_sample():
    from modeling_modern_llm.training.verifier_data import with_references

    records = [
        {"question": q, "answer": f"{q} steps\n#### 1 ", "solution": s, "correct": False}
        for q, s in (("A?", "a1"), ("A?", "a2"), ("B?", "b1"))
    ]
    added = with_references(records)[len(records) :]
    assert [(r["question"], r["solution"], r["correct"]) for r in added] == [
        ("A?", "A? steps\n#### 1", True),
        ("B?", "B? steps\n#### 1", True),
    ]
