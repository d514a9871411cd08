"""Why a GSM8K answer is wrong: an error taxonomy that needs no model.

A solution's **steps** are its calculator annotations (``<<12*3=36>>``) and its equations in prose (``12 * 3 = 36``), in
the order they appear; a step's **operands** are the numbers of its expression, its **result** the number written after
its "=". The **answer** is lm-eval's flexible-extract (the solution's last number). A wrong answer gets the first of
these kinds that applies:

- ``extraction``: the solution has no number to answer with;
- ``arithmetic``: a step's written result differs from its recomputed value (compared to the precision it is written
  with: "33.33" for 100/3 checks);
- reasoning, in three kinds (every step computes):
  - ``unsupported_quantity``: a step uses an operand that is neither a quantity of the question nor the result of an
    earlier step; in a solution with no steps, the answer is not a quantity of the question. A question's quantities
    are its numbers ("1,200", "$3.50") and number words (``NUMBER_WORDS``: "three", "twice" = 2, "half" = 2 or 0.5,
    "dozen" = 12, "percent" = 100, ...);
  - ``answer_not_last_result``: the solution computes at least one result, and its answer is not the last one;
  - ``missing_step``: the rest. Every operand comes from the question or an earlier step and the answer is the last
    result (or, with no steps, a quantity of the question), yet it is wrong: a step the problem needed was not done
    (or a step used the wrong one of the question's quantities, which no model-free check tells apart).

Numbers are equal when they agree to 1e-6 (relative). Without the question, ``unsupported_quantity`` is never given.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from modeling_modern_llm.calculator import evaluate_expression
from modeling_modern_llm.task_formats import CALCULATOR_ANNOTATION, extract_flexible

REASONING_KINDS = ("unsupported_quantity", "answer_not_last_result", "missing_step")
TAXONOMY = ("extraction", "arithmetic", *REASONING_KINDS)
COARSE_TAXONOMY = ("extraction", "arithmetic", "reasoning")  # the reasoning kinds counted together
_NUMBER = r"\$?-?\d[\d,]*(?:\.\d+)?"
_TEXT_EQUATION = re.compile(rf"((?:{_NUMBER}\s*[-+*/x×]\s*)+{_NUMBER})\s*=\s*({_NUMBER})")  # "12 * 3 = 36" in prose
_OPERAND = re.compile(r"\d[\d,]*(?:\.\d+)?")
_UNITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
)
_TENS = ("thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
NUMBER_WORDS: dict[str, tuple[float, ...]] = {
    **{word: (float(value),) for value, word in enumerate(_UNITS)},
    **{word: (10.0 * tens,) for tens, word in enumerate(_TENS, 3)},
    "hundred": (100.0,),
    "thousand": (1000.0,),
    "twice": (2.0,),
    "double": (2.0,),
    "doubles": (2.0,),
    "half": (2.0, 0.5),
    "halves": (2.0, 0.5),
    "triple": (3.0,),
    "thrice": (3.0,),
    "quarter": (4.0, 0.25),
    "quarters": (4.0, 0.25),
    "dozen": (12.0,),
    "dozens": (12.0,),
    "percent": (100.0,),
    "%": (100.0,),
}
_WORD = re.compile(r"[a-z]+|%")


class Step(NamedTuple):
    expression: str
    written: str  # the result as written
    operands: list[float]
    result: float | None  # the written result as a number (None: a unit or a word)


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").rstrip("."))
    except ValueError:
        return None


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def solution_steps(solution: str) -> list[Step]:
    """The solution's steps in order: calculator annotations, and prose equations outside them."""
    annotations = [
        (m.start(), m.end(), m.group(1).strip(), m.group(2).strip()) for m in CALCULATOR_ANNOTATION.finditer(solution)
    ]
    prose = [
        (m.start(), m.end(), m.group(1), m.group(2))
        for m in _TEXT_EQUATION.finditer(solution)
        if not any(start < m.end() and m.start() < end for start, end, *_ in annotations)
    ]
    return [
        Step(expression, written, [float(n.replace(",", "")) for n in _OPERAND.findall(expression)], _number(written))
        for _, _, expression, written in sorted(annotations + prose)
    ]


def arithmetic_errors(solution: str) -> list[dict]:
    """The steps whose written result differs from the recomputed one (to the precision it is written with)."""
    errors = []
    for step in solution_steps(solution):
        value = evaluate_expression(step.expression)
        if step.result is None or value is None:
            continue  # a unit, a word or no arithmetic: nothing to check
        decimals = len(step.written.replace(",", "").replace("$", "").rstrip(".").partition(".")[2])
        if abs(round(value, decimals) - step.result) > 10**-decimals / 2 + 1e-9:
            errors.append({"expression": step.expression, "written": step.written, "recomputed": value})
    return errors


def question_quantities(question: str) -> list[float]:
    """The quantities a question states: its numbers and its number words (``NUMBER_WORDS``)."""
    numbers = [value for text in re.findall(_NUMBER, question) if (value := _number(text)) is not None]
    numbers = [abs(value) for value in numbers]
    return numbers + [value for word in _WORD.findall(question.lower()) for value in NUMBER_WORDS.get(word, ())]


def unsupported_quantities(solution: str, question: str) -> list[float]:
    """The operands that are neither a quantity of the question nor the result of an earlier step."""
    known, unsupported = question_quantities(question), []
    for step in solution_steps(solution):
        unsupported += [value for value in step.operands if not any(_same(value, k) for k in known)]
        if step.result is not None:
            known.append(abs(step.result))
    return unsupported


def classify_error(solution: str, question: str | None = None) -> str:
    """The kind (one of ``TAXONOMY``) of a solution whose answer is wrong; see the module's definitions."""
    answer = extract_flexible(solution)
    if answer is None:
        return "extraction"
    if arithmetic_errors(solution):
        return "arithmetic"
    results = [step.result for step in solution_steps(solution) if step.result is not None]
    value = _number(answer)
    if question is not None:
        if unsupported_quantities(solution, question):
            return "unsupported_quantity"
        if not results and not (value is not None and any(_same(abs(value), q) for q in question_quantities(question))):
            return "unsupported_quantity"
    if results and (value is None or not _same(value, results[-1])):
        return "answer_not_last_result"
    return "missing_step"


def failed_checks(solution: str, question: str) -> int:
    """How many of the taxonomy's model-free checks a solution fails, right or wrong: no answer to extract, each
    arithmetic slip, each operand neither the question's nor an earlier result, an answer that is not the last result.
    Its negative ranks candidates with no model: how much of the within-problem signal the text itself holds, the
    room a learned verifier has (`benchmarks/verifier_sweep.py` ranks with it beside the verifiers)."""
    answer = extract_flexible(solution)
    results = [step.result for step in solution_steps(solution) if step.result is not None]
    value = None if answer is None else _number(answer)
    return (
        (answer is None)
        + len(arithmetic_errors(solution))
        + len(unsupported_quantities(solution, question))
        + bool(results and (value is None or not _same(value, results[-1])))
    )


def coarse_kind(kind: str) -> str:
    """``extraction``, ``arithmetic`` or ``reasoning`` (the three reasoning kinds together)."""
    return "reasoning" if kind in REASONING_KINDS else kind
