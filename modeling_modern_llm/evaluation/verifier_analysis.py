"""What the verifier changes on GSM8K, and why the wrong answers are wrong.

From the per-problem records of ``gsm8k.evaluate_gsm8k``: exact match before (greedy) and after verifier
reranking, an error taxonomy of the wrong final answers, and the verifier's false positives (its top
pick is wrong) and false negatives (a correct candidate it ranked low), as JSON and as markdown.

Taxonomy of a wrong final answer:
- ``extraction``: no parsable number at all;
- ``arithmetic``: some written step's result is wrong when recomputed (GSM8K's ``<<a*b=c>>`` or "a * b = c" in the text);
- ``reasoning``: every step that can be checked computes correctly, yet the answer is wrong.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Optional, Sequence

from .gsm8k_format import calculator_annotations, extract_answer, truncate_at_stop

_NUMBER = r"\$?-?\d[\d,]*(?:\.\d+)?"
# "12 * 3 = 36", "5 + 2 - 1 = 6" in running text (operators include x and ×).
_TEXT_EQUATION = re.compile(rf"((?:{_NUMBER}\s*[-+*/x×]\s*)+{_NUMBER})\s*=\s*({_NUMBER})")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Mod: operator.mod,
              ast.FloorDiv: operator.floordiv}


def evaluate_expression(expression: str) -> Optional[float]:
    """The value of an arithmetic expression (numbers, + - * / // % ** and parentheses), None if it is not one."""
    cleaned = expression.replace(",", "").replace("$", "").replace("×", "*").replace("x", "*").replace("%", "/100")
    try:
        tree = ast.parse(cleaned, mode="eval")
    except SyntaxError:
        return None

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:  # keep hostile exponents cheap
                raise ValueError("exponent too large")
            return _OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))
        raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")

    try:
        return walk(tree)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


def _agrees(written: str, value: float) -> bool:
    """Whether a written result matches the recomputed value, to the precision it was written with."""
    cleaned = written.replace(",", "").replace("$", "").rstrip(".")
    try:
        number = float(cleaned)
    except ValueError:
        return True  # not a number (e.g. a unit): nothing to check
    decimals = len(cleaned.split(".")[1]) if "." in cleaned else 0
    return abs(round(value, decimals) - number) <= 10 ** -decimals / 2 + 1e-9 or abs(value - number) < 1e-6


def arithmetic_errors(solution: str) -> list[dict]:
    """The steps of a solution whose written result disagrees with the recomputed one."""
    steps = calculator_annotations(solution) + [(m.group(1), m.group(2)) for m in _TEXT_EQUATION.finditer(solution)]
    errors = []
    for expression, written in steps:
        value = evaluate_expression(expression)
        if value is not None and not _agrees(written, value):
            errors.append({"expression": expression, "written": written, "recomputed": value})
    return errors


def classify_error(solution: str) -> str:
    """``extraction``, ``arithmetic`` or ``reasoning`` for a solution whose final answer is wrong."""
    text = truncate_at_stop(solution)
    if extract_answer(text) is None:
        return "extraction"
    return "arithmetic" if arithmetic_errors(text) else "reasoning"


def _candidate_view(problem: dict, index: int, rank: int) -> dict:
    candidate = problem["candidates"][index]
    return {"question": problem["question"], "reference": problem["reference"], "solution": candidate["text"],
            "answer": candidate["answer"], "verifier_score": candidate["verifier_score"],
            "verifier_rank": rank, "n_candidates": len(problem["candidates"])}


def verifier_analysis(problems: Sequence[dict], n_samples: int, model: str = "", n_examples: int = 3) -> dict:
    """The ``gsm8k_analysis.json`` content (without ``command``) for one model's problem records."""
    n = len(problems)
    if n == 0:
        raise ValueError("no GSM8K problems to analyse")
    reranked = all("verifier_choice" in p for p in problems)
    em_greedy = 100 * sum(p["greedy_answer"] == p["reference"] for p in problems) / n
    final = [p["candidates"][p["verifier_choice"]]["text"] if reranked else p["greedy"] for p in problems]
    final_correct = [extract_answer(text) == p["reference"] for text, p in zip(final, problems)]
    em_final = 100 * sum(final_correct) / n
    taxonomy = {"extraction": 0, "arithmetic": 0, "reasoning": 0}
    for text, correct in zip(final, final_correct):
        if not correct:
            taxonomy[classify_error(text)] += 1

    false_positives, false_negatives = [], []
    if reranked:
        for p in problems:
            order = sorted(range(len(p["candidates"])), key=lambda i: -p["candidates"][i]["verifier_score"])
            ranks = {index: rank + 1 for rank, index in enumerate(order)}
            if not p["candidates"][order[0]]["correct"]:
                false_positives.append(_candidate_view(p, order[0], 1))
            correct = [i for i in order[1:] if p["candidates"][i]["correct"]]
            if correct:
                false_negatives.append(_candidate_view(p, correct[-1], ranks[correct[-1]]))
        false_positives.sort(key=lambda c: -c["verifier_score"])  # the most confident mistakes first
        false_negatives.sort(key=lambda c: (-c["verifier_rank"], c["verifier_score"]))  # the lowest-ranked first

    return {
        "model": model,
        "n_problems": n,
        "n_samples": n_samples,
        "em_greedy": em_greedy,
        "em_verifier": em_final if reranked else None,
        "gain_points": em_final - em_greedy if reranked else None,
        "taxonomy_of": "verifier_best_of_n" if reranked else "greedy",
        "taxonomy": taxonomy,
        "false_positives": false_positives[:n_examples],
        "false_negatives": false_negatives[:n_examples],
        "problems": list(problems),
    }


def _quote(text: str, width: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def analysis_markdown(analysis: dict) -> str:
    """A markdown section for the report: the gain, the taxonomy and the example errors."""
    lines = [f"## GSM8K verifier impact ({analysis['model']})", ""]
    if analysis["em_verifier"] is None:
        lines += [f"No verifier reranking was run; greedy exact match {analysis['em_greedy']:.1f}% on {analysis['n_problems']} problems.", ""]
    else:
        lines += [f"Exact match {analysis['em_greedy']:.1f}% greedy -> {analysis['em_verifier']:.1f}% with verifier best-of-{analysis['n_samples']} "
                  f"({analysis['gain_points']:+.1f} points) on {analysis['n_problems']} problems.", ""]
    lines += [f"Error taxonomy of the wrong final answers ({analysis['taxonomy_of']}):", "", "| error | count |", "| --- | --- |"]
    lines += [f"| {kind} | {count} |" for kind, count in analysis["taxonomy"].items()]
    for title, examples in (("False positives (ranked first by the verifier, wrong)", analysis["false_positives"]),
                            ("False negatives (correct, ranked low by the verifier)", analysis["false_negatives"])):
        lines += ["", f"### {title}", ""]
        if not examples:
            lines.append("None.")
        for example in examples:
            lines.append(f"- rank {example['verifier_rank']}/{example['n_candidates']}, score {example['verifier_score']:.3f}, "
                         f"answer {example['answer']} (gold {example['reference']}): {_quote(example['question'], 160)} "
                         f"— *{_quote(example['solution'])}*")
    return "\n".join(lines) + "\n"
