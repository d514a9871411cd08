"""GSM8K sampling metrics and verifier reranking on scripted candidates, and the error taxonomy."""

import pytest

from modeling_modern_llm.evaluation.gsm8k import Verifier, evaluate_gsm8k, majority_answer
from modeling_modern_llm.evaluation.gsm8k_format import extract_answer
from modeling_modern_llm.evaluation.lm import CausalLM
from modeling_modern_llm.evaluation.verifier_analysis import (
    analysis_markdown,
    arithmetic_errors,
    classify_error,
    evaluate_expression,
    verifier_analysis,
)

ROWS = [
    {"question": "Ava has 9 cookies and gets 2 more. How many?", "answer": "9+2=<<9+2=11>>11\n#### 11"},
    {"question": "Finn has 4 toys, buys 9, gives away 6. How many?", "answer": "4+9=<<4+9=13>>13\n13-6=<<13-6=7>>7\n#### 7"},
    {"question": "Zoe reads 3 books a day for 4 days. How many?", "answer": "3*4=<<3*4=12>>12\n#### 12"},
]
# Per problem: the greedy solution and four samples (wrong greedy, one correct sample in the middle).
SCRIPT = {
    ROWS[0]["question"]: ("9+2=<<9+2=12>>12\n#### 12", ["9+2=12 #### 12", "9+2=<<9+2=11>>11\n#### 11", "I am not sure", "9-2=7 #### 7"]),
    ROWS[1]["question"]: ("4+9=13, 13+6=19 #### 19", ["#### 19", "4+9=13\n13-6=7\n#### 7", "#### 19", "4+9+6=19 #### 19"]),
    ROWS[2]["question"]: ("3*4=12 #### 12", ["3*4=12 #### 12", "3*4=12 #### 12", "#### 7", "3+4=7 #### 7"]),
}


class ScriptedLM(CausalLM):
    """Returns fixed solutions, so the reranking arithmetic is checked exactly (the model code is tested elsewhere)."""

    def __init__(self):  # no model: generation is scripted
        self.calls = []

    def generate_until(self, prompts, *, num_return_sequences=1, do_sample=False, **kwargs):
        self.calls.append((len(prompts), num_return_sequences, do_sample))
        question = lambda prompt: prompt.rsplit("Question: ", 1)[1].split("\nAnswer:")[0]
        return [[SCRIPT[question(p)][0]] if not do_sample else SCRIPT[question(p)][1][:num_return_sequences] for p in prompts]


class GoldVerifier(Verifier):
    """Scores 1 for a solution whose answer is the gold one (optionally inverted), 0 otherwise."""

    def __init__(self, invert=False):
        self.gold = {row["question"]: row["answer"].split("#### ")[-1] for row in ROWS}
        self.invert = invert

    def score(self, questions, solutions):
        return [float((extract_answer(s) == self.gold[q]) != self.invert) - 0.01 * i for i, (q, s) in enumerate(zip(questions, solutions))]


def test_best_of_n_with_a_verifier_that_prefers_correct_answers_raises_exact_match():
    lm = ScriptedLM()
    metrics, problems = evaluate_gsm8k(lm, ROWS, n_samples=4, verifier=GoldVerifier())
    assert lm.calls == [(3, 1, False), (3, 4, True)]  # one greedy batch, one sampled batch of 4 per problem
    assert metrics["exact_match_strict"] == pytest.approx(1 / 3)
    assert metrics["majority_vote"] == pytest.approx(1 / 3)  # 12 (wrong), 19 (wrong), 12 (right)
    assert metrics["oracle_pass_at_n"] == 1.0
    assert metrics["verifier_best_of_n"] == 1.0 > metrics["exact_match_strict"]
    analysis = verifier_analysis(problems, n_samples=4, model="scripted")
    assert analysis["em_greedy"] == pytest.approx(100 / 3) and analysis["em_verifier"] == 100.0
    assert analysis["gain_points"] == pytest.approx(200 / 3)
    assert analysis["false_positives"] == [] and analysis["taxonomy"] == {"extraction": 0, "arithmetic": 0, "reasoning": 0}


def test_a_misleading_verifier_gives_false_positives_and_negatives():
    _, problems = evaluate_gsm8k(ScriptedLM(), ROWS, n_samples=4, verifier=GoldVerifier(invert=True))
    analysis = verifier_analysis(problems, n_samples=4, model="scripted")
    assert analysis["em_verifier"] == 0.0 and analysis["gain_points"] == pytest.approx(-100 / 3)
    assert len(analysis["false_positives"]) == 3 and len(analysis["false_negatives"]) == 3
    assert all(fp["verifier_rank"] == 1 and fp["answer"] != fp["reference"] for fp in analysis["false_positives"])
    assert all(fn["verifier_rank"] > 1 and fn["answer"] == fn["reference"] for fn in analysis["false_negatives"])
    # The chosen (wrong) answers: "9+2=12 #### 12" (arithmetic), "#### 19" (reasoning), "#### 7" (reasoning).
    assert analysis["taxonomy"] == {"extraction": 0, "arithmetic": 1, "reasoning": 2}
    markdown = analysis_markdown(analysis)
    assert "-33.3 points" in markdown and "### False positives" in markdown and "| arithmetic | 1 |" in markdown


def test_error_taxonomy():
    assert classify_error("I cannot solve this.") == "extraction"
    assert classify_error("She has 3*4=<<3*4=13>>13 eggs.\n#### 13") == "arithmetic"
    assert classify_error("So 12 * 3 = 38 dollars. The answer is 38.") == "arithmetic"
    assert classify_error("He pays $1,200 / 4 = $300 each.\n#### 300") == "reasoning"  # correct steps, wrong plan
    assert classify_error("10 / 3 = 3.33 so #### 3.33") == "reasoning"  # rounded as written
    assert arithmetic_errors("2 + 2 = 5 and <<7-1=6>>") == [{"expression": "2 + 2", "written": "5", "recomputed": 4.0}]
    assert evaluate_expression("2**3 + (4 - 1) * 2") == 14.0
    assert evaluate_expression("__import__('os')") is None and evaluate_expression("1/0") is None


def test_greedy_only_and_majority_ties():
    metrics, problems = evaluate_gsm8k(ScriptedLM(), ROWS, n_samples=0)
    assert set(metrics) == {"exact_match_strict", "exact_match_flexible"} and "candidates" not in problems[0]
    assert verifier_analysis(problems, n_samples=0)["em_verifier"] is None
    assert majority_answer(["3", None, "4", "4", "3"]) == "3" and majority_answer([None, None]) is None


def test_real_verifier_scores_do_not_depend_on_batching(modern_llm_run):
    verifier = Verifier.from_pretrained(str(modern_llm_run / "verifier_final"), device="cpu")
    questions = [row["question"] for row in ROWS] * 2
    solutions = ["#### 11", "4+9=13\n13-6=7\n#### 7", "a much longer and wrong solution: 3+4=7 so #### 7", "x", "#### 19", "3*4=12 #### 12"]
    batched = verifier.score(questions, solutions)
    verifier.batch_size = 1
    single = verifier.score(questions, solutions)
    assert batched == pytest.approx(single, abs=1e-4) and len(set(round(s, 4) for s in batched)) > 1
