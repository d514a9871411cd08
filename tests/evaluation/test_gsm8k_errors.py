"""The error taxonomy on hand-written wrong solutions: each kind where its definition says, and its precedence."""

import pytest

from modeling_modern_llm.evaluation.gsm8k_errors import (
    TAXONOMY,
    arithmetic_errors,
    classify_error,
    coarse_kind,
    failed_checks,
    question_quantities,
    solution_steps,
    unsupported_quantities,
)

QUESTION = (
    "Ava buys 3 boxes with 5 stickers in each box. Hugo gives Ava 7 more stickers, and Ava gives twice as many "
    "to Ivy as Hugo gave her. How many stickers does Ava have now?"
)  # answer: 15 + 7 - 14 = 8
CASES = [  # (solution, kind, why)
    ("I am not sure.", "extraction", "no number at all"),
    (
        "3*5 = <<3*5=16>>16 stickers.\n16+7 = <<16+7=23>>23\n23-14 = <<23-14=9>>9\n#### 9",
        "arithmetic",
        "3*5 is not 16, though what follows is right",
    ),
    ("3 * 5 = 16 stickers, so #### 16", "arithmetic", "a prose equation that recomputes differently"),
    (
        "3*5 = <<3*5=15>>15\n15+7 = <<15+7=22>>22\n22-4 = <<22-4=18>>18\n#### 18",
        "unsupported_quantity",
        "4 is neither in the question nor an earlier result",
    ),
    ("#### 11", "unsupported_quantity", "no steps, and 11 is no quantity of the question"),
    (
        "3*5 = <<3*5=15>>15\n15+7 = <<15+7=22>>22\n7*2 = <<7*2=14>>14\n22-14 = <<22-14=8>>8 stickers; she had 22.\n#### 22",
        "answer_not_last_result",
        "every step right, yet the answer is an earlier result",
    ),
    (
        "3*5 = <<3*5=15>>15\n15+7 = <<15+7=22>>22\n#### 22",
        "missing_step",
        "the steps check and use the question's numbers, but the giving away was not done",
    ),
    ("#### 7", "missing_step", "no steps: a quantity of the question copied as the answer"),
    (
        "3*5 = <<3*5=15>>15\n15+7 = <<15+7=22>>22\n22-2 = <<22-2=20>>20\n#### 20",
        "missing_step",
        "2 is the question's 'twice': supported; 7 * 2 was not computed",
    ),
]


@pytest.mark.parametrize("solution, kind, why", CASES, ids=[f"{c[1]}:{c[2][:30]}" for c in CASES])
def test_each_kind_where_its_definition_says(solution, kind, why):
    assert classify_error(solution, QUESTION) == kind, why


def test_precedence_and_the_coarse_kinds():
    # an invented quantity and an answer that is not the last result: the steps are judged first
    both = "3*5 = <<3*5=15>>15\n15*4 = <<15*4=60>>60\n#### 15"
    assert unsupported_quantities(both, QUESTION) == [4.0] and classify_error(both, QUESTION) == "unsupported_quantity"
    # an arithmetic slip outranks an invented quantity
    assert classify_error("15*4 = <<15*4=61>>61\n#### 61", QUESTION) == "arithmetic"
    # without the question, a quantity's source cannot be judged
    assert classify_error("3*5 = <<3*5=15>>15\n15+7 = <<15+7=22>>22\n22-4 = <<22-4=18>>18\n#### 18") == "missing_step"
    assert [coarse_kind(kind) for kind in TAXONOMY] == [
        "extraction",
        "arithmetic",
        "reasoning",
        "reasoning",
        "reasoning",
    ]


def test_steps_quantities_and_arithmetic_checks():
    solution = "The boxes hold 3*5 = <<3*5=15>>15 stickers, then 15 + 7 = 22 and <<100/3=33.33>>33.33 each.\n#### 22"
    steps = solution_steps(solution)  # the annotation's inner "3*5=15" is not counted twice
    assert [(s.expression, s.written, s.operands, s.result) for s in steps] == [
        ("3*5", "15", [3.0, 5.0], 15.0),
        ("15 + 7", "22", [15.0, 7.0], 22.0),
        ("100/3", "33.33", [100.0, 3.0], 33.33),
    ]
    assert arithmetic_errors(solution) == []  # 33.33 is 100/3 to the precision written
    assert arithmetic_errors("<<100/3=33.4>>33.4") == [
        {"expression": "100/3", "written": "33.4", "recomputed": 100 / 3}
    ]
    quantities = question_quantities("Half of the $1,200 goes to three friends, a dozen eggs cost 10 percent more.")
    assert {0.5, 2.0, 1200.0, 3.0, 12.0, 10.0, 100.0} <= set(quantities)


def test_failed_checks_count_what_the_taxonomy_can_see_without_the_reference():
    question = "Ben has 2 bags with 3 cookies in each bag. Anna has 4 cookies. How many more cookies does Ben have?"
    right = "Ben has 2*3 = <<2*3=6>>6 cookies. 6-4 = <<6-4=2>>2 more. #### 2"
    assert failed_checks(right, question) == 0
    assert failed_checks("Ben has 2*3 = <<2*3=6>>6 cookies. 6-6 = <<6-6=0>>0 more. #### 0", question) == 0
    copied = "Ben has 2*5 = <<2*5=10>>10 cookies. 10-7 = <<10-7=3>>3 more. #### 3"  # 5 and 7: from nowhere
    assert failed_checks(copied, question) == 2
    assert failed_checks("Ben has 2*3 = <<2*3=7>>7 cookies. 7-4 = <<7-4=3>>3 more. #### 2", question) == 2
    assert failed_checks("Ben has many cookies.", question) == 1
