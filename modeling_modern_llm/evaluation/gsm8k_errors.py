"""Why a GSM8K answer is wrong: an error taxonomy that needs no model.

- ``extraction``: the solution has no number to answer with;
- ``arithmetic``: a written step computes differently when recomputed (GSM8K's ``<<a*b=c>>`` or ``a * b = c``);
- ``reasoning``: every checkable step computes, yet the answer is wrong (a wrong operand, a wrong plan).
"""

from __future__ import annotations

import ast
import operator
import re

from modeling_modern_llm.task_formats import calculator_annotations, extract_flexible

TAXONOMY = ("extraction", "arithmetic", "reasoning")
_NUMBER = r"\$?-?\d[\d,]*(?:\.\d+)?"
_TEXT_EQUATION = re.compile(rf"((?:{_NUMBER}\s*[-+*/x×]\s*)+{_NUMBER})\s*=\s*({_NUMBER})")  # "12 * 3 = 36" in prose
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv}


def evaluate_expression(expression: str) -> float | None:
    """The value of an arithmetic expression (numbers, + - * / // % and parentheses); None if it is not one."""
    cleaned = expression.replace(",", "").replace("$", "").replace("×", "*").replace("x", "*")

    def walk(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))
        raise ValueError("not arithmetic")

    try:
        return walk(ast.parse(cleaned, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


def arithmetic_errors(solution: str) -> list[dict]:
    """The steps whose written result differs from the recomputed one (to the precision it is written with)."""
    steps = calculator_annotations(solution) + [(m.group(1), m.group(2)) for m in _TEXT_EQUATION.finditer(solution)]
    errors = []
    for expression, written in steps:
        value, cleaned = evaluate_expression(expression), written.replace(",", "").replace("$", "").rstrip(".")
        try:
            number = float(cleaned)
        except ValueError:
            continue  # a unit or a word: nothing to check
        decimals = len(cleaned.partition(".")[2])
        if value is not None and abs(round(value, decimals) - number) > 10**-decimals / 2 + 1e-9:
            errors.append({"expression": expression, "written": written, "recomputed": value})
    return errors


def classify_error(solution: str) -> str:
    """``extraction``, ``arithmetic`` or ``reasoning`` for a solution whose answer is wrong."""
    if extract_flexible(solution) is None:
        return "extraction"
    return "arithmetic" if arithmetic_errors(solution) else "reasoning"
