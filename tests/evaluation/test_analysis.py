"""The GSM8K analysis on hand-written results: which policy it analyses, one decoding for greedy and candidates, and
every number (selectors, paired differences, the verifier's ranking, false positives and negatives, the taxonomy, the
calculator's effect) against a direct computation on the planted solutions."""

import json

import pytest
from fake_results import write_fake_run  # tests/evaluation/fake_results.py

from modeling_modern_llm.evaluation import results, selectors

QUESTIONS = [  # (question, reference answer field)
    ("Ava has 3 boxes with 5 stickers in each box. How many stickers does she have?", "3*5 = <<3*5=15>>15\n#### 15"),
    ("Tom has 4 apples and buys 6 more. How many apples does he have?", "4+6 = <<4+6=10>>10\n#### 10"),
    ("Lily has 8 shells, gives 3 away, then finds 2. How many shells does she have?", "8-3+2 = <<8-3+2=7>>7\n#### 7"),
    ("Sam has 2 bags with 6 coins in each and finds 5 more. How many coins?", "2*6+5 = <<2*6+5=17>>17\n#### 17"),
]
DOCS = [{"question": q, "answer": a} for q, a in QUESTIONS]
GREEDY = [
    "3*5 = <<3*5=15>>15\n#### 15",  # right
    "4+5 = <<4+5=9>>9\n#### 9",  # 5 is not in the question: unsupported_quantity
    "8-3 = <<8-3=5>>5\n#### 5",  # the finding was not done: missing_step
    "2*6 = <<2*6=12>>12\n12+5 = <<12+5=17>>17 coins\n#### 12",
]  # answer_not_last_result
CANDIDATES = [
    ["<<3*5=15>>15\n#### 15", "<<3*5=16>>16\n#### 16", "<<3*5=15>>15\n#### 15", "no idea"],
    ["#### 10", "#### 9", "#### 9", "#### 10"],
    ["#### 5", "#### 5", "#### 9", "#### 5"],  # no correct candidate
    ["#### 17", "#### 12", "#### 17", "#### 12"],
]
SCORES = [[0.1, 2.0, 0.5, -1.0], [1.0, 0.0, 0.2, 0.9], [0.0, 0.1, 0.3, 0.2], [-0.5, 1.5, -0.2, 0.3]]
# Per problem, worked out by hand from the lists above (ties: the first sampled; weights sigmoid(score))
EXPECTED = {
    "greedy": [1, 0, 0, 0],
    "random_of_n": [0.5, 0.5, 0, 0.5],
    "majority_vote": [1, 1, 0, 1],
    "verifier_best_of_n": [0, 1, 0, 0],
    "verifier_weighted_vote": [1, 1, 0, 0],
    "verifier_top_k_vote": [1, 1, 0, 0],
    "oracle_pass_at_n": [1, 1, 0, 1],
}


def tasks(greedy, candidates, scores, calculator: bool) -> dict:
    suffix = "_calculator" if calculator else ""
    greedy_name = f"embedded_gsm8k{suffix}_chat"
    return {
        greedy_name: {"docs": DOCS, "resps": [[g] for g in greedy], "calculator": calculator},
        f"embedded_gsm8k_sampled{suffix}_chat": {
            "docs": DOCS,
            "resps": candidates,
            "scores": scores,
            "calculator": calculator,
            "greedy_task": greedy_name,
        },
    }


def model(name, stage, **task_sets):
    return {
        "name": name,
        "stage": stage,
        "path": f"runs/demo/{name}",
        "tasks": {k: v for t in task_sets.values() for k, v in t.items()},
    }


WRONG = (["#### 1"] * 4, [["#### 1"] * 4] * 4, [[0.0] * 4] * 4)  # every answer wrong


@pytest.fixture
def analysis(tmp_path):
    run = write_fake_run(
        tmp_path,
        [
            model("sft_final", "sft", plain=tasks(*WRONG, calculator=False)),
            model(
                "dpo_final", "dpo", plain=tasks(*WRONG, calculator=False), calc=tasks(GREEDY, CANDIDATES, SCORES, True)
            ),
            model(
                "grpo_final", "grpo", calc=tasks(["#### 15", "#### 10", "#### 7", "#### 17"], CANDIDATES, SCORES, True)
            ),
        ],
    )
    return results.gsm8k_analysis(results.load_run(run)), run


def test_selectors_and_their_paired_differences_equal_the_hand_computation(analysis):
    found, _ = analysis
    assert (
        found["model"] == "dpo_final" and found["n_problems"] == 4 and found["n_samples"] == 4 and found["top_k"] == 3
    )
    for selector, flags in EXPECTED.items():
        assert found["selectors"][selector]["value"] == pytest.approx(sum(flags) / 4), selector
        assert found["selectors"][selector]["stderr"] == pytest.approx(selectors.standard_error(flags)), selector
    pairs = {(c["treatment"], c["baseline"]): c for c in found["comparisons"]}
    for treatment in selectors.VERIFIER_SELECTORS:
        for baseline in ("random_of_n", "greedy", "majority_vote"):
            expected = (sum(EXPECTED[treatment]) - sum(EXPECTED[baseline])) / 4
            assert pairs[treatment, baseline]["difference"] == pytest.approx(expected), (treatment, baseline)
            assert pairs[treatment, baseline]["low"] <= expected <= pairs[treatment, baseline]["high"]
    assert pairs["oracle_pass_at_n", "greedy"]["difference"] == pytest.approx(0.5)
    assert found["em_greedy"] == pytest.approx(25.0) and found["em_verifier"] == pytest.approx(25.0)
    assert {s: v[-1] for s, v in found["em_vs_n"]["exact_match"].items()} == pytest.approx(
        {s: sum(f) / 4 for s, f in EXPECTED.items()}
    )


def test_the_verifiers_ranking_and_its_false_positives_and_negatives(analysis):
    found, _ = analysis
    ranking = found["verifier_ranking"]
    # within-problem pairs (correct vs wrong): problem 1 wins 2 of 4 (0.1 and 0.5 beat -1.0, not 2.0), problem 2 4 of 4,
    # problem 4 0 of 4; problem 3 has no correct candidate. Parsed only: problem 1 loses "no idea" (-1.0): 0 of 2.
    assert (ranking["all"]["pair_accuracy"], ranking["all"]["n_pairs"], ranking["all"]["n_problems"]) == (0.5, 12, 3)
    assert (ranking["parsed"]["pair_accuracy"], ranking["parsed"]["n_pairs"]) == (0.4, 10)
    assert ranking["all"]["n"] == 16 and ranking["parsed"]["n"] == 15 and ranking["all"]["n_correct"] == 6
    # false positives: problems 1 and 4 (top pick wrong, a correct candidate exists); not problem 3 (none correct)
    assert found["verifier_errors"] == {
        "false_positives": 2,
        "problems_with_a_correct_candidate": 3,
        "problems_without_a_correct_candidate": 1,
        "false_negatives": 4,
    }
    assert [(e["question"][:3], e["rank"], e["verifier_score"], e["correct"]) for e in found["false_positives"]] == [
        ("Ava", 1, 2.0, False),
        ("Sam", 1, 1.5, False),
    ]  # the most confident first
    # false negatives: the best-ranked correct candidate of each, with its rank and score; the lowest-ranked first
    assert [(e["question"][:3], e["rank"], e["verifier_score"], e["top_score"]) for e in found["false_negatives"]] == [
        ("Sam", 3, -0.2, 1.5),
        ("Ava", 2, 0.5, 2.0),
    ]


def test_the_taxonomy_covers_greedys_errors_beside_the_verifiers_picks(analysis):
    found, _ = analysis
    by = found["error_taxonomy"]["by_selector"]
    assert by["greedy"] == {
        "n_wrong": 3,
        "counts": {
            "extraction": 0,
            "arithmetic": 0,
            "unsupported_quantity": 1,
            "answer_not_last_result": 1,
            "missing_step": 1,
        },
    }
    # the verifier's wrong picks: "<<3*5=16>>16" (arithmetic), "#### 9" and "#### 12" with no steps and numbers that
    # are not the question's (unsupported_quantity)
    assert by["verifier_best_of_n"]["counts"] == {
        "extraction": 0,
        "arithmetic": 1,
        "unsupported_quantity": 2,
        "answer_not_last_result": 0,
        "missing_step": 0,
    }
    assert by["majority_vote"]["n_wrong"] == 1
    assert found["taxonomy_of"] == "verifier_best_of_n" and found["taxonomy"] == {
        "extraction": 0,
        "arithmetic": 1,
        "reasoning": 2,
    }
    assert found["error_taxonomy"]["examples"]["missing_step"]["text"] == GREEDY[2]


def test_one_decoding_for_greedy_and_candidates_and_the_calculators_own_rows(analysis):
    found, _ = analysis
    assert found["task"] == "embedded_gsm8k_sampled_calculator_chat" and found["calculator"] is True
    assert found["greedy_task"] == found["selectors"]["greedy"]["task"] == "embedded_gsm8k_calculator_chat"
    assert [p["greedy"] for p in found["problems"]] == GREEDY  # the calculator's greedy, not the plain one
    effect = found["calculator_effect"]
    assert effect["tasks"] == {
        "without": "embedded_gsm8k_sampled_chat",
        "with": "embedded_gsm8k_sampled_calculator_chat",
    }
    rows = {row["selector"]: row for row in effect["rows"]}
    assert set(rows) == set(EXPECTED) and effect["n_problems"] == 4
    for selector, flags in EXPECTED.items():  # without the calculator every answer was wrong
        assert (rows[selector]["without"], rows[selector]["with"]) == (0.0, pytest.approx(sum(flags) / 4))
        assert rows[selector]["difference"] == pytest.approx(sum(flags) / 4)


def test_the_kept_fields_other_tools_read(analysis):
    found, run = analysis
    assert {"model", "n_problems", "n_samples", "selectors", "problems"} <= set(found)
    problem = found["problems"][0]
    assert problem["reference"] == "15" and problem["greedy_answer"] == "15" and problem["majority_answer"] == "15"
    assert [(c["answer"], c["correct"], c["verifier_score"]) for c in problem["candidates"]] == [
        ("15", True, 0.1),
        ("16", False, 2.0),
        ("15", True, 0.5),
        (None, False, -1.0),
    ]
    json.dumps(found)  # a JSON file's content
    rows = {row["model"]: row for row in results.headline(results.load_run(run))}
    assert rows["grpo_final"]["cells"]["GSM8K greedy"]["value"] == 1.0  # a later stage has its own headline row
    assert rows["dpo_final"]["cells"]["random pick"]["value"] == pytest.approx(0.375)


def test_which_policy_is_analysed(tmp_path):
    def analysed(names_and_stages, policy=None, folder="run"):
        run = write_fake_run(
            tmp_path / folder,
            [model(n, s, calc=tasks(*WRONG, calculator=True)) for n, s in names_and_stages],
            verifier_policy=policy,
        )
        return results.analysed_policy(results.load_run(run))[0].name

    stages = [("pretrain_final", "pretrain"), ("sft_final", "sft"), ("dpo_final", "dpo"), ("grpo_final", "grpo")]
    assert analysed(stages, folder="a") == "dpo_final"  # a later stage never takes it over
    assert analysed(stages, policy=str(tmp_path / "elsewhere" / "sft_final"), folder="b") == "sft_final"  # by stage
    assert analysed([("policy", "other"), *stages], policy="runs/demo/policy", folder="c") == "policy"  # by path
    assert analysed([s for s in stages if s[1] != "dpo"], folder="d") == "sft_final"  # the most trained before DPO
    assert analysed([("grpo_final", "grpo")], folder="e") == "grpo_final"  # nothing else ran


def test_the_verifiers_policy_is_read_from_its_training_summary(tmp_path):
    from modeling_modern_llm.evaluation.verifier import trained_policy

    def policy(summary, config=None):
        folder = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        if config is not None:
            (folder / "verifier.yaml").write_text(config)
            summary["config_path"] = str(folder / "verifier.yaml")
        (folder / "training_summary.json").write_text(json.dumps(summary))
        return trained_policy(str(folder))

    pipeline = (
        "python recipes/verifier.py --config c.yaml --output_dir runs/demo/verifier "
        "--model_name_or_path runs/demo/dpo_final"
    )
    assert policy({"policy": "runs/x/sft_final", "command": pipeline}) == "runs/x/sft_final"  # its own field first
    assert policy({"command": pipeline}) == "runs/demo/dpo_final"
    assert policy({"command": "python recipes/verifier.py --model_name_or_path=runs/y/dpo_final"}) == "runs/y/dpo_final"
    assert (
        policy({"command": "python recipes/verifier.py --config v.yaml"}, "model_name_or_path: runs/z/dpo_final\n")
        == "runs/z/dpo_final"
    )
    assert policy({"command": "python recipes/verifier.py"}) is None
    assert trained_policy(str(tmp_path / "no_such_folder")) is None


def test_the_calculators_greedy_row_alone_when_only_its_greedy_task_ran(tmp_path):
    calculator_greedy = {
        "embedded_gsm8k_calculator_chat": {"docs": DOCS, "resps": [[g] for g in GREEDY], "calculator": True}
    }
    run = write_fake_run(
        tmp_path, [model("dpo_final", "dpo", plain=tasks(*WRONG, calculator=False), calc=calculator_greedy)]
    )
    found = results.gsm8k_analysis(results.load_run(run))
    assert found["task"] == "embedded_gsm8k_sampled_chat" and found["calculator"] is False  # the decoding with samples
    effect = found["calculator_effect"]
    assert effect["tasks"] == {"without": "embedded_gsm8k_chat", "with": "embedded_gsm8k_calculator_chat"}
    assert [(r["selector"], r["without"], r["with"]) for r in effect["rows"]] == [("greedy", 0.0, 0.25)]
