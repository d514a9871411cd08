"""GSM8K's calculator at generation: once a model has written ``<<expression=``, the value is what it writes next.

GSM8K solutions annotate each step as ``<<48/2=24>>24``; Cobbe et al. (2021) sampled with a calculator that fills in
the result after the ``=``. Here it also fills in the number after ``>>`` that repeats the result: a small model
copying it can get it wrong (``<<100-81=19>>9``). Here that is a transformers ``LogitsProcessor``: it reads each
row's last tokens, and while a row is inside a result it allows only the tokens whose text continues the computed
value and the closing ``>>`` (every other score becomes -inf), so the model's own tokens spell the value. It only
masks scores, so it works with the KV cache, batching (each row on its own), greedy decoding and sampling, and with
any tokenizer.

    outputs = model.generate(**inputs, logits_processor=calculator_logits_processor(tokenizer))

The evaluation turns it on with ``calculator: true`` in a task's ``generation_kwargs`` (the ``*_calculator`` tasks).

Results are written as GSM8K's annotations write them (``format_result``): an integer value without a decimal point
(``<<8/2=4>>``), any other value rounded to two decimals with trailing zeros dropped (``<<200/6=33.33>>``,
``<<5/2=2.5>>``). An expression that is not arithmetic (numbers, ``+ - * / // %``, parentheses; ``x`` and ``×`` read
as ``*``; commas and ``$`` ignored), or whose value is not finite, leaves generation free.
"""

from __future__ import annotations

import ast
import math
import operator

import torch
from transformers import LogitsProcessor, LogitsProcessorList

OPEN, CLOSE, EQUALS = "<<", ">>", "="
RESULT_DECIMALS = 2  # GSM8K's annotations round non-integer results to cents: <<200/6=33.33>>
WINDOW_TOKENS = 64  # the tail of each row that is decoded to find an open "<<expression=": longer than any GSM8K step
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
}


def evaluate_expression(expression: str) -> float | None:
    """The value of an arithmetic expression (numbers, + - * / // % and parentheses); None if it is not one."""
    cleaned = expression.strip().replace(",", "").replace("$", "").replace("×", "*").replace("x", "*")

    def walk(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))
        raise ValueError("not arithmetic")

    try:
        return walk(ast.parse(cleaned, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError, RecursionError):
        return None


def format_result(value: float) -> str | None:
    """A value as GSM8K writes a step's result: "4" (no ".0"), "33.33", "2.5", "-3"; None if it is not finite."""
    if not math.isfinite(value):
        return None
    rounded = round(value, RESULT_DECIMALS)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.{RESULT_DECIMALS}f}".rstrip("0")


def calculator_result(expression: str) -> str | None:
    """What the calculator writes after ``<<expression=`` (before ``>>``); None when it leaves generation free."""
    value = evaluate_expression(expression)
    return None if value is None else format_result(value)


def token_texts(tokenizer) -> list[str]:
    """Each vocabulary entry's text as it reads inside a longer text (a SentencePiece "▁7" reads " 7"): decoded after
    an anchor token and with the anchor's text removed; special tokens keep their text."""
    anchor = tokenizer.encode("a", add_special_tokens=False)[:1]
    prefix = tokenizer.decode(anchor, clean_up_tokenization_spaces=False) if anchor else ""
    decoded = tokenizer.batch_decode([anchor + [i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False)
    return [text[len(prefix) :] if text.startswith(prefix) else tokenizer.decode([i]) for i, text in enumerate(decoded)]


def _echo(tail: str) -> tuple[str, str] | None:
    """For a text that ends right after a closed ``<<expression=result>>`` and part of the number that repeats the
    result (``<<9*9=81>>8``), ``(result, written part)``; None elsewhere."""
    start = tail.rfind(OPEN)
    close = tail.find(CLOSE, start) if start >= 0 else -1
    if close < 0:
        return None
    result, after = tail[start + len(OPEN) : close].partition(EQUALS)[2], tail[close + len(CLOSE) :]
    if not result or not all(c.isdigit() or c in ".-" for c in after) or not result.startswith(after):
        return None
    return result, after


def forced_text(tail: str) -> tuple[str, str] | None:
    """For a text that ends inside ``<<expression=written``, ``(what must follow, written)``: the result and ``>>``
    still to write; for one that ends inside the number that repeats a closed annotation's result (GSM8K writes
    ``<<9*9=81>>81``), the rest of that number. None outside an annotation, before its ``=``, or when the expression
    does not evaluate or what is written already differs from the result."""
    start = tail.rfind(OPEN)
    if start < 0:
        return None
    if CLOSE in tail[start:]:
        echo = _echo(tail)
        return (echo[0][len(echo[1]) :], echo[1]) if echo and echo[0] != echo[1] else None
    expression, equals, written = tail[start + len(OPEN) :].partition(EQUALS)
    result = calculator_result(expression) if equals else None
    if result is None or not (result + CLOSE).startswith(written):
        return None
    return (result + CLOSE)[len(written) :], written


class CalculatorLogitsProcessor(LogitsProcessor):
    """Masks every token but those that continue the calculator's result, in each row that is inside one.

    `tokenizer`: the model's (its vocabulary's texts are decoded once, here). `window`: how many of each row's last
    tokens are decoded to find an open ``<<expression=`` (rows with no "<" among them are skipped undecoded).
    """

    def __init__(self, tokenizer, window: int = WINDOW_TOKENS):
        self.tokenizer, self.window = tokenizer, window
        self.texts = token_texts(tokenizer)
        self.ids_by_text: dict[str, list[int]] = {}
        for index, text in enumerate(self.texts):
            if text:  # an empty text never moves a forced result forward
                self.ids_by_text.setdefault(text, []).append(index)
        special = set(tokenizer.all_special_ids)
        # the last entry stands for ids beyond the tokenizer (a model's padded vocabulary)
        self.may_open = torch.tensor([i not in special and "<" in text for i, text in enumerate(self.texts)] + [False])
        self.number_tokens = [i for i, text in enumerate(self.texts) if text[:1].isdigit() or text[:1] == "."]
        # Tokens that end an expression and begin its result at once ("=7" in some vocabularies): checked per step
        self.equals_tokens = [
            (i, *text.partition(EQUALS)[::2])
            for i, text in enumerate(self.texts)
            if EQUALS in text and text.partition(EQUALS)[2]
        ]

    def forced_tokens(self, tail: str) -> list[int]:
        """The ids a row whose text ends with `tail` may write next when it is inside a result; [] when it is free."""
        forced = forced_text(tail)
        if forced is None:
            return []
        remaining = forced[0]
        return [i for k in range(1, len(remaining) + 1) for i in self.ids_by_text.get(remaining[:k], [])]

    def banned_tokens(self, tail: str) -> list[int]:
        """Inside ``<<expression`` before its "=": the tokens that would write "=" and a wrong result at once. Right
        after the whole repeated result (``<<9*9=81>>81``): the tokens that would extend that number."""
        echo = _echo(tail)
        if echo and echo[0] == echo[1]:
            return self.number_tokens
        start = tail.rfind(OPEN)
        if start < 0 or any(mark in tail[start:] for mark in (CLOSE, EQUALS)):
            return []
        expression, banned = tail[start + len(OPEN) :], []
        for index, head, rest in self.equals_tokens:
            result = calculator_result(expression + head)
            if result is not None and not (result + CLOSE).startswith(rest):
                banned.append(index)
        return banned

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tails = input_ids[:, -self.window :]
        rows = torch.nonzero(self.may_open[tails.clamp(0, len(self.texts)).cpu()].any(dim=1)).flatten().tolist()
        if not rows:
            return scores
        texts = self.tokenizer.batch_decode(
            tails[rows].tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        scores = scores.clone()
        vocabulary = scores.shape[1]
        for row, text in zip(rows, texts):
            if forced := [i for i in self.forced_tokens(text) if i < vocabulary]:
                kept = scores[row, forced]
                if torch.isneginf(kept).all():  # an earlier processor banned them all: still write the result
                    kept = torch.zeros_like(kept)
                scores[row] = -math.inf
                scores[row, forced] = kept
            elif banned := [i for i in self.banned_tokens(text) if i < vocabulary]:
                scores[row, banned] = -math.inf
        return scores


def calculator_logits_processor(tokenizer, window: int = WINDOW_TOKENS) -> LogitsProcessorList:
    """The list to pass as ``generate(..., logits_processor=...)`` so that generation uses the calculator."""
    return LogitsProcessorList([CalculatorLogitsProcessor(tokenizer, window)])
