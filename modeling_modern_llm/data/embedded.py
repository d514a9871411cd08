"""The embedded corpus: every stage's data, generated from a seed, so the main job needs no network.

Five datasets in the Hub schemas of their real counterparts (TinyStories, Alpaca, hh-rlhf, GSM8K, SST-2),
each with ``train``/``validation``/``test`` splits, small and regular enough that a model of a few million
parameters trained for minutes on a CPU shows real signal. Its numbers are not comparable with the
real benchmarks: it measures whether the pipeline works, not how good a model is.

Disjointness by construction: every item (a math problem, a review sentence, a fact asked about, a list
task, a story) has a key, and ``split_of(key)`` assigns it to one split by a seed-independent hash. The
generators only emit an item into the split its key belongs to, so no evaluation problem or sentence
appears in any training split (the pretraining text included), whatever the seed. The facts themselves
(capitals of made-up countries, antonyms) are stated in the pretraining text for every item, as a web
corpus would, while the instruction data asks only about training-split ones: held-out questions test
whether fine-tuning surfaces knowledge from pretraining.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from dataclasses import asdict, dataclass
from pathlib import Path

from ..task_formats import (
    SST2_INSTRUCTION,
    SST2_LABEL_WORDS,
    chat_transcript,
    gsm8k_prompt,
    sst2_chat_prompt,
    sst2_prompt,
)

CORPUS_VERSION = 4  # bump whenever the generated rows change, so stale caches are not reused
EMBEDDED_SPLITS = ("train", "validation", "test")
_EVAL_PERCENT = {"validation": 10, "test": 10}  # of the key space; the rest is train


@dataclass(frozen=True)
class CorpusSizes:
    """How much to generate: pretraining characters per split, rows per split for the task datasets."""

    text_train_chars: int = 1_500_000
    text_eval_chars: int = 60_000
    train_rows: int = 3000
    eval_rows: int = 300
    math_eval_rows: int = 600  # GSM8K's held-out problems: 500 and more, for narrow error bars

    def rows(self, split: str, math: bool = False) -> int:
        if split == "train":
            return self.train_rows
        return self.math_eval_rows if math else self.eval_rows


def split_of(key: str) -> str:
    """The split an item belongs to, from a hash of its key (independent of the seed)."""
    bucket = int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "big") % 100
    if bucket < _EVAL_PERCENT["validation"]:
        return "validation"
    if bucket < _EVAL_PERCENT["validation"] + _EVAL_PERCENT["test"]:
        return "test"
    return "train"


# ----------------------------------------------------------------------------------------------------
# The fixed world the corpus talks about (seed-independent, so facts agree across seeds and splits).
NAMES = (
    "Tom",
    "Mia",
    "Sam",
    "Lily",
    "Ben",
    "Anna",
    "Max",
    "Zoe",
    "Leo",
    "Emma",
    "Jack",
    "Ella",
    "Noah",
    "Ava",
    "Finn",
    "Ruby",
    "Owen",
    "Nora",
    "Eli",
    "Ivy",
    "Theo",
    "Lucy",
    "Hugo",
    "Maya",
)
ANIMALS = ("cat", "dog", "bunny", "bird", "fox", "bear", "duck", "frog", "mouse", "owl", "pig", "lamb")
THINGS = (
    "apples",
    "marbles",
    "stickers",
    "cookies",
    "pencils",
    "books",
    "shells",
    "balloons",
    "cards",
    "toys",
    "eggs",
    "flowers",
    "coins",
    "buttons",
    "candies",
    "rocks",
)
PLACES = ("park", "garden", "forest", "beach", "school", "farm", "river", "kitchen", "hill", "library")
COLORS = ("red", "blue", "green", "yellow", "pink", "purple", "orange", "brown")
TOYS = ("ball", "kite", "boat", "drum", "hat", "box", "car", "doll", "book", "cup")
FEELINGS_GOOD = ("happy", "glad", "proud", "excited", "calm")
FEELINGS_BAD = ("sad", "scared", "angry", "tired", "lonely")
ANTONYMS = (
    ("hot", "cold"),
    ("big", "small"),
    ("happy", "sad"),
    ("fast", "slow"),
    ("up", "down"),
    ("day", "night"),
    ("old", "young"),
    ("open", "closed"),
    ("full", "empty"),
    ("light", "dark"),
    ("early", "late"),
    ("loud", "quiet"),
    ("hard", "soft"),
    ("wet", "dry"),
    ("long", "short"),
    ("rich", "poor"),
    ("clean", "dirty"),
    ("high", "low"),
    ("strong", "weak"),
    ("near", "far"),
    ("first", "last"),
    ("push", "pull"),
    ("win", "lose"),
    ("buy", "sell"),
    ("in", "out"),
    ("left", "right"),
    ("thick", "thin"),
    ("wide", "narrow"),
    ("sweet", "sour"),
    ("brave", "afraid"),
    ("true", "false"),
    ("begin", "end"),
    ("friend", "enemy"),
    ("laugh", "cry"),
    ("above", "below"),
    ("inside", "outside"),
    ("always", "never"),
    ("before", "after"),
    ("give", "take"),
    ("safe", "dangerous"),
)


def _made_up_countries(count: int = 40) -> tuple[tuple[str, str], ...]:
    """Country/capital pairs with invented names, so no model knows them from anywhere but this corpus."""
    rng = random.Random("modern-llm-countries")
    starts, middles = (
        ("Zor", "Vel", "Mar", "Tal", "Quen", "Bri", "Dol", "Fen", "Kar", "Lum", "Nor", "Pel", "Sar", "Tor"),
        ("a", "e", "i", "o", "u", "an", "el", "or"),
    )
    country_ends, capital_ends = (
        ("ia", "land", "stan", "ora", "mark"),
        ("ton", "grad", "polis", "ville", "port", "holm"),
    )
    names: set[str] = set()
    pairs = []
    while len(pairs) < count:
        country = rng.choice(starts) + rng.choice(middles) + rng.choice(country_ends)
        capital = rng.choice(starts) + rng.choice(middles) + rng.choice(capital_ends)
        if country not in names and capital not in names:
            names.update((country, capital))
            pairs.append((country, capital))
    return tuple(pairs)


COUNTRIES = _made_up_countries()

POSITIVE = (
    "wonderful",
    "charming",
    "delightful",
    "brilliant",
    "moving",
    "funny",
    "beautiful",
    "clever",
    "gripping",
    "warm",
    "fresh",
    "touching",
    "smart",
    "lovely",
    "excellent",
    "great",
)
NEGATIVE = (
    "boring",
    "dull",
    "awful",
    "tedious",
    "clumsy",
    "bland",
    "messy",
    "silly",
    "painful",
    "flat",
    "lifeless",
    "predictable",
    "weak",
    "terrible",
    "forgettable",
    "bad",
)
REVIEW_SUBJECTS = (
    "the movie",
    "this film",
    "the story",
    "the acting",
    "the plot",
    "the ending",
    "the music",
    "the cast",
    "the script",
    "the hero",
    "the dialogue",
    "the direction",
    "the humor",
)
INTENSIFIERS = ("", "very ", "truly ", "really ", "rather ", "so ", "quite ")


# ----------------------------------------------------------------------------------------------------
# Items with a ground truth: math word problems, review sentences, instruction tasks.
@dataclass(frozen=True)
class MathProblem:
    question: str
    answer: str  # GSM8K style: worked steps with <<expr=value>> annotations, last line "#### N"
    value: int


MakeProblem = Callable[[random.Random], MathProblem]  # make_math_problem at a chosen difficulty


@dataclass(frozen=True)
class MathDifficulty:
    """The dial of the embedded GSM8K: how hard its word problems are.

    A problem takes ``min_steps`` to ``max_steps`` computations (GSM8K's own range is 2 to 8), drawn with weights
    ``step_weights`` (one per step count; fewer steps likelier, as in GSM8K); its starting quantities go up to
    ``max_start`` (beyond the times tables); a ``distractor_rate`` share of questions carries a sentence with a number
    the solution must not use. docs/DATA.md shows where the dial puts the cpu-demo policy.
    """

    min_steps: int = 2
    max_steps: int = 8
    step_weights: tuple[float, ...] = (24, 8, 2, 1, 1, 1, 1)
    max_start: int = 20
    distractor_rate: float = 0.2

    def __post_init__(self):
        if not MIN_STEPS <= self.min_steps <= self.max_steps <= MAX_STEPS:
            raise ValueError(
                f"MathDifficulty: need {MIN_STEPS} <= min_steps <= max_steps <= {MAX_STEPS}, got "
                f"{self.min_steps}, {self.max_steps}"
            )
        if (
            len(self.step_weights) != self.max_steps - self.min_steps + 1
            or min(self.step_weights) < 0
            or not sum(self.step_weights)
        ):
            raise ValueError(
                "MathDifficulty: step_weights needs one non-negative weight per step count "
                f"{self.min_steps}..{self.max_steps} (not all zero), got {self.step_weights}"
            )
        if not 10 <= self.max_start <= 200 or not 0 <= self.distractor_rate <= 1:
            raise ValueError("MathDifficulty: need 10 <= max_start <= 200 and a distractor_rate in [0, 1]")


def _step(expression: str, value: int) -> str:
    return f"{expression} = <<{expression}={value}>>{value}"


class _Story:
    """The cast and the numbers of one problem; `step` computes and writes one annotated step."""

    def __init__(self, rng: random.Random, difficulty: MathDifficulty):
        self.rng, self.difficulty = rng, difficulty
        self.name, self.friend, self.other = rng.sample(NAMES, 3)
        self.thing, self.second_thing = rng.sample(THINGS, 2)

    def start(self) -> int:
        return self.rng.randint(10, self.difficulty.max_start)

    def small(self, low: int = 2, high: int = 9) -> int:
        return self.rng.randint(low, high)

    @staticmethod
    def step(expression: str) -> tuple[str, int]:
        """``expr = <<expr=value>>value`` and the value (expressions of + - * and exact /)."""
        value = eval(expression, {"__builtins__": {}})  # noqa: S307  (our own digits and operators)
        if value != int(value) or value <= 0:
            raise _NoFit
        return _step(expression, int(value)), int(value)


class _NoFit(Exception):
    """The drawn numbers give a result that is not a positive integer: draw again."""


def _two_step_kind(story: _Story) -> tuple[list[str], list[str]]:
    p, f, t, rng = story.name, story.friend, story.thing, story.rng
    kind = rng.choice(("buy_give", "boxes_gift", "packs_use", "twice_together", "change", "compare_groups"))
    if kind == "buy_give":
        a, b = story.start(), story.small(3, 12)
        c = rng.randint(2, a + b - 1)
        first, total = story.step(f"{a}+{b}")
        second, _ = story.step(f"{total}-{c}")
        return (
            [f"{p} has {a} {t}.", f"{p} buys {b} more and then gives {c} to {f}."],
            [f"After buying, {p} has {first} {t}.", f"After giving some away, {p} has {second} {t}."],
        )
    if kind == "boxes_gift":
        a, b, c = story.small(), story.small(3, 12), story.small(2, 12)
        first, total = story.step(f"{a}*{b}")
        second, _ = story.step(f"{total}+{c}")
        return (
            [f"{p} buys {a} boxes with {b} {t} in each box.", f"{f} gives {p} {c} more {t}."],
            [f"The boxes hold {first} {t}.", f"With the gift, {p} has {second} {t}."],
        )
    if kind == "packs_use":
        a, b = story.small(), story.small(3, 12)
        first, total = story.step(f"{a}*{b}")
        c = rng.randint(2, total - 1)
        second, _ = story.step(f"{total}-{c}")
        return (
            [f"{p} has {a} packs of {b} {t}.", f"{p} uses {c} of them."],
            [f"{p} starts with {first} {t}.", f"After using some, {second} {t} are left."],
        )
    if kind == "twice_together":
        a, k = story.start(), rng.choice((2, 3))
        first, theirs = story.step(f"{a}*{k}")
        second, _ = story.step(f"{a}+{theirs}")
        word = {2: "twice", 3: "three times"}[k]
        return (
            [f"{p} has {a} {t}.", f"{f} has {word} as many {t} as {p}."],
            [f"{f} has {first} {t}.", f"Together they have {second} {t}."],
        )
    if kind == "change":
        a, price = story.small(), story.small(2, 12)
        first, cost = story.step(f"{a}*{price}")
        bill = next(b for b in (20, 50, 100, 200, 500) if b > cost)
        second, _ = story.step(f"{bill}-{cost}")
        return (
            [f"{p} buys {a} {t} at {price} dollars each and pays with a {bill}-dollar bill."],
            [f"The {t} cost {first} dollars.", f"The change is {second} dollars."],
        )
    a, b = story.small(), story.small(3, 12)
    first, total = story.step(f"{a}*{b}")
    c = rng.randint(2, total - 1)
    second, _ = story.step(f"{total}-{c}")
    return (
        [f"{p} has {a} bags with {b} {t} in each bag.", f"{f} has {c} {t}."],
        [f"{p} has {first} {t}.", f"{p} has {second} more {t} than {f}."],
    )


def _three_step_kind(story: _Story) -> tuple[list[str], list[str]]:
    p, f, o, t, rng = story.name, story.friend, story.other, story.thing, story.rng
    kind = rng.choice(
        ("buy_find_give", "boxes_gift_give", "percent_sell", "two_groups", "half_then_find", "earn_spend")
    )
    if kind == "buy_find_give":
        a, b, c = story.start(), story.small(3, 12), story.small(3, 12)
        first, x = story.step(f"{a}+{b}")
        second, y = story.step(f"{x}+{c}")
        d = rng.randint(2, y - 1)
        third, _ = story.step(f"{y}-{d}")
        return (
            [f"{p} has {a} {t}.", f"{p} gets {b} more, then finds {c} more and gives {d} to {f}."],
            [
                f"After getting some, {p} has {first} {t}.",
                f"After finding some, {p} has {second} {t}.",
                f"After giving some away, {p} has {third} {t}.",
            ],
        )
    if kind == "boxes_gift_give":
        a, b, c = story.small(), story.small(3, 12), story.small(2, 12)
        first, x = story.step(f"{a}*{b}")
        second, y = story.step(f"{x}+{c}")
        d = rng.randint(2, y - 1)
        third, _ = story.step(f"{y}-{d}")
        return (
            [f"{p} buys {a} boxes with {b} {t} in each box.", f"{f} gives {p} {c} more {t}, and {p} gives {d} to {o}."],
            [
                f"The boxes hold {first} {t}.",
                f"With the gift, {p} has {second} {t}.",
                f"After giving some away, {p} has {third} {t}.",
            ],
        )
    if kind == "percent_sell":
        percent = rng.choice((10, 20, 25, 50, 75))
        a = rng.choice([n for n in range(10, story.difficulty.max_start + 1) if n * percent % 100 == 0] or [20])
        b = story.small(2, 12)
        first, sold = story.step(f"{a}*{percent}/100")
        second, kept = story.step(f"{a}-{sold}")
        third, _ = story.step(f"{kept}+{b}")
        return (
            [f"{p} has {a} {t}.", f"{p} sells {percent}% of them and then buys {b} more."],
            [f"{p} sells {first} {t}.", f"{p} keeps {second} {t}.", f"After buying more, {p} has {third} {t}."],
        )
    if kind == "two_groups":
        a, b, c, d = story.small(), story.small(3, 12), story.small(), story.small(3, 12)
        first, x = story.step(f"{a}*{b}")
        second, y = story.step(f"{c}*{d}")
        third, _ = story.step(f"{x}+{y}")
        return (
            [f"{p} buys {a} boxes with {b} {t} in each box and {c} bags with {d} {t} in each bag."],
            [f"The boxes hold {first} {t}.", f"The bags hold {second} {t}.", f"{p} buys {third} {t} in all."],
        )
    if kind == "half_then_find":
        k, word = rng.choice(((2, "half"), (3, "a third"), (4, "a quarter")))
        a = k * rng.randint(max(2, 10 // k), story.difficulty.max_start // k + 2)
        b = story.small(2, 12)
        first, given = story.step(f"{a}/{k}")
        second, kept = story.step(f"{a}-{given}")
        third, _ = story.step(f"{kept}+{b}")
        return (
            [f"{p} has {a} {t} and gives {word} of them to {f}.", f"Then {p} finds {b} more {t}."],
            [f"{p} gives away {first} {t}.", f"{p} keeps {second} {t}.", f"After finding more, {p} has {third} {t}."],
        )
    a, price = story.small(3, 12), story.small(2, 9)
    first, earned = story.step(f"{a}*{price}")
    spend, toy = rng.randint(2, earned // 2), rng.choice(TOYS)
    second, left = story.step(f"{earned}-{spend}")
    more = rng.randint(1, left - 1)
    third, _ = story.step(f"{left}-{more}")
    return (
        [
            f"{p} sells {a} {t} for {price} dollars each.",
            f"Then {p} spends {spend} dollars on a {toy} and {more} dollars on a snack.",
        ],
        [
            f"{p} earns {first} dollars.",
            f"After the {toy}, {p} has {second} dollars.",
            f"After the snack, {p} has {third} dollars.",
        ],
    )


def _four_step_kind(story: _Story) -> tuple[list[str], list[str]]:
    p, f, o, t, u, rng = story.name, story.friend, story.other, story.thing, story.second_thing, story.rng
    kind = rng.choice(("twice_fewer_total", "shopping_change", "reading_days"))
    if kind == "twice_fewer_total":
        a = story.start()
        first, x = story.step(f"{a}*2")
        c = rng.randint(2, x - 1)
        second, y = story.step(f"{x}-{c}")
        third, z = story.step(f"{a}+{x}")
        fourth, _ = story.step(f"{z}+{y}")
        return (
            [f"{p} has {a} {t}.", f"{f} has twice as many {t} as {p}.", f"{o} has {c} fewer {t} than {f}."],
            [
                f"{f} has {first} {t}.",
                f"{o} has {second} {t}.",
                f"{p} and {f} have {third} {t}.",
                f"All three have {fourth} {t} in all.",
            ],
        ) + (f"How many {t} do they have in all?",)
    if kind == "shopping_change":
        a, price, b, other_price = story.small(), story.small(2, 12), story.small(), story.small(2, 12)
        first, x = story.step(f"{a}*{price}")
        second, y = story.step(f"{b}*{other_price}")
        third, cost = story.step(f"{x}+{y}")
        bill = next(n for n in (20, 50, 100, 200, 500) if n > cost)
        fourth, _ = story.step(f"{bill}-{cost}")
        return (
            [
                f"{p} buys {a} {t} at {price} dollars each and {b} {u} at {other_price} dollars each.",
                f"{p} pays with a {bill}-dollar bill.",
            ],
            [
                f"The {t} cost {first} dollars.",
                f"The {u} cost {second} dollars.",
                f"Everything costs {third} dollars.",
                f"The change is {fourth} dollars.",
            ],
        ) + ("How much change does {p} get?".format(p=p),)
    a, d, b, e = story.small(5, 20), story.small(2, 6), story.small(5, 20), story.small(2, 6)
    first, x = story.step(f"{a}*{d}")
    second, y = story.step(f"{b}*{e}")
    third, read = story.step(f"{x}+{y}")
    book = read + rng.randint(10, 60)
    fourth, _ = story.step(f"{book}-{read}")
    return (
        [
            f"{p}'s book has {book} pages.",
            f"{p} reads {a} pages a day for {d} days, then {b} pages a day for {e} days.",
        ],
        [
            f"First {p} reads {first} pages.",
            f"Then {p} reads {second} pages.",
            f"{p} reads {third} pages in all.",
            f"{fourth} pages are left.",
        ],
    ) + (f"How many pages does {p} have left to read?",)


def _chain_kind(story: _Story, steps: int) -> tuple[list[str], list[str]]:
    """A day-by-day chain of `steps` updates (finds, gives away, gets twice as many, sells a share), each day's
    sentence and solution line named by the day, as GSM8K's longest problems go through a week."""
    p, f, t, rng = story.name, story.friend, story.thing, story.rng
    value = story.start()
    sentences, lines = [f"At the start of the week {p} has {value} {t}."], []
    for day in _DAYS[:steps]:
        kind = rng.choice(("find", "give", "twice", "half") if value % 2 == 0 and value < 150 else ("find", "give"))
        if kind == "give" and value < 6:
            kind = "find"
        if kind == "find":
            b = story.small(3, 12)
            sentences.append(f"On {day} {p} finds {b} more {t}.")
            line, value = story.step(f"{value}+{b}")
        elif kind == "give":
            b = rng.randint(2, min(value - 1, 20))
            sentences.append(f"On {day} {p} gives {b} {t} to {f}.")
            line, value = story.step(f"{value}-{b}")
        elif kind == "twice":
            sentences.append(f"On {day} {p} doubles the {t}.")
            line, value = story.step(f"{value}*2")
        else:
            sentences.append(f"On {day} {p} gives half of the {t} away.")
            line, value = story.step(f"{value}/2")
        lines.append(f"On {day}, {p} has {line} {t}.")
    return sentences, lines


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "the next Monday")
MIN_STEPS, MAX_STEPS = 2, 8
_KINDS = {2: _two_step_kind, 3: _three_step_kind, 4: _four_step_kind}


def make_math_problem(rng: random.Random, difficulty: MathDifficulty = MathDifficulty()) -> MathProblem:
    """A GSM8K-style word problem of ``difficulty.min_steps`` to ``max_steps`` computations and its worked solution.

    Two to four steps come from GSM8K's kinds of problem (adding and taking away, boxes of equal size, "twice as
    many", a fraction or a percent of a whole, unit prices, money and change, comparisons, totals over groups, rates
    over days); five to eight from a week in which a quantity changes day by day. Every step is written
    ``expr = <<expr=value>>value``; every value is a positive integer, as GSM8K's answers are.
    """
    steps = rng.choices(range(difficulty.min_steps, difficulty.max_steps + 1), weights=difficulty.step_weights)[0]
    for _ in range(1000):
        story = _Story(rng, difficulty)
        try:
            made = _KINDS[steps](story) if steps in _KINDS else _chain_kind(story, steps)
        except _NoFit:
            continue
        sentences, lines = made[0], made[1]
        question = made[2] if len(made) > 2 else _question(story, lines)
        if rng.random() < difficulty.distractor_rate:
            sentences = list(sentences)
            sentences.insert(rng.randint(0, len(sentences)), _distractor(story, " ".join([*sentences, *lines])))
        value = int(re.findall(r"=(\d+)>>", lines[-1])[-1])  # the last step's annotated result
        answer = "\n".join([*lines, f"#### {value}"])
        return MathProblem(" ".join([*sentences, question]), answer, value)
    raise RuntimeError(f"no {steps}-step problem fits {difficulty}")


def _question(story: _Story, lines: list[str]) -> str:
    last = lines[-1]
    if "change" in last:
        return f"How much change does {story.name} get?"
    if "dollars" in last:
        return f"How many dollars does {story.name} have now?"
    if "more" in last and "than" in last:
        return f"How many more {story.thing} does {story.name} have than {story.friend}?"
    if "Together" in last:
        return f"How many {story.thing} do they have together?"
    if "in all" in last:
        return f"How many {story.thing} does {story.name} buy in all?"
    if "are left" in last:
        return f"How many {story.thing} are left?"
    return f"How many {story.thing} does {story.name} have now?"


def _distractor(story: _Story, text: str) -> str:
    """A sentence with a number the solution never uses (nor the rest of the problem: it must not look like one)."""
    rng, taken = story.rng, set(re.findall(r"\d+", text))
    while True:
        sentence = rng.choice(
            (
                f"{story.other} has {rng.randint(2, 40)} {story.second_thing}.",
                f"{story.other} is {rng.randint(6, 12)} years old.",
                f"The {rng.choice(PLACES)} is {rng.randint(2, 30)} minutes away.",
            )
        )
        if not set(re.findall(r"\d+", sentence)) & taken:
            return sentence


def arithmetic_facts(rng: random.Random) -> str:
    """A line of an addition, subtraction or times table, the kind of page a web corpus holds.

    Written ``a+b=c`` as inside the solutions' ``<<a+b=c>>`` annotations.
    """
    kind = rng.choice(("add", "sub", "mul"))
    if kind == "mul":
        a = rng.randint(2, 12)
        facts = [f"{a}*{b}={a * b}" for b in range(2, 13)]
        return f"The {a} times table: " + ", ".join(facts) + "."
    if kind == "add":
        a = rng.randint(2, 99)
        facts = [f"{a}+{b}={a + b}" for b in sorted(rng.sample(range(2, 60), 4))]
        return "Adding: " + ", ".join(facts) + "."
    a = rng.randint(10, 120)
    facts = [f"{a}-{b}={a - b}" for b in sorted(rng.sample(range(2, a), 4))]
    return "Taking away: " + ", ".join(facts) + "."


def make_review(rng: random.Random) -> tuple[str, int]:
    """An SST-style review sentence (lower case, spaced punctuation) and its label (1 positive, 0 negative)."""
    label = rng.randint(0, 1)
    words, opposite = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
    subject, other = rng.sample(REVIEW_SUBJECTS, 2)
    adjective, second = rng.sample(words, 2)
    intensity = rng.choice(INTENSIFIERS)
    # Mostly direct statements; one in five needs more than word polarity (negation, contrast), as in SST.
    template = rng.choices(range(7), weights=(3, 3, 1, 3, 1, 3, 1))[0]
    if template == 0:
        sentence = f"{subject} is {intensity}{adjective} ."
    elif template == 1:
        sentence = f"{subject} is {intensity}{adjective} and {second} ."
    elif template == 2:  # negation flips the word's polarity
        sentence = f"{subject} is not {rng.choice(opposite)} ."
    elif template == 3:
        sentence = f"a {intensity}{adjective} , {second} movie ."
    elif template == 4:  # contrast: the clause after "but" decides
        sentence = f"{other} is {rng.choice(opposite)} , but {subject} is {intensity}{adjective} ."
    elif template == 5:
        sentence = f"i found {subject} {intensity}{adjective} ."
    else:
        sentence = f"{subject} never feels {rng.choice(opposite)} ; it is {adjective} from start to finish ."
    return sentence, label


def _word_list(rng: random.Random) -> list[str]:
    return rng.sample(ANIMALS + TOYS + COLORS, rng.randint(3, 5))


@dataclass(frozen=True)
class Task:
    """One instruction with a checkable answer; ``key`` decides its split."""

    key: str
    instruction: str
    input: str
    output: str
    wrong_output: str  # a plausible but wrong answer, for preference pairs


def make_task(rng: random.Random) -> Task:
    """A small instruction task: capitals, antonyms, arithmetic, list reversal/sorting/counting/maximum."""
    kind = rng.choice(("capital", "antonym", "arithmetic", "reverse", "sort", "count", "max"))
    if kind == "capital":
        (country, capital), (_, wrong) = rng.sample(COUNTRIES, 2)
        return Task(
            f"capital:{country}",
            f"What is the capital of {country}?",
            "",
            f"The capital of {country} is {capital}.",
            f"The capital of {country} is {wrong}.",
        )
    if kind == "antonym":
        pair, (_, wrong) = rng.sample(ANTONYMS, 2)
        word, opposite = pair if rng.random() < 0.5 else pair[::-1]
        return Task(
            f"antonym:{word}",
            f"What is the opposite of {word}?",
            "",
            f"The opposite of {word} is {opposite}.",
            f"The opposite of {word} is {wrong}.",
        )
    if kind == "arithmetic":
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        op = rng.choice(("plus", "times", "minus"))
        if op == "minus":
            a, b = max(a, b), min(a, b)
        value = {"plus": a + b, "times": a * b, "minus": a - b}[op]
        return Task(
            f"arithmetic:{a} {op} {b}",
            f"What is {a} {op} {b}?",
            "",
            f"{a} {op} {b} is {value}.",
            f"{a} {op} {b} is {value + rng.choice((-2, -1, 1, 2))}.",
        )
    if kind in ("sort", "max"):
        numbers = rng.sample(range(1, 30), rng.randint(3, 5))
        text = " ".join(map(str, numbers))
        if kind == "sort":
            return Task(
                f"sort:{text}",
                "Sort the numbers from smallest to largest.",
                text,
                " ".join(map(str, sorted(numbers))),
                " ".join(map(str, sorted(numbers, reverse=True))),
            )
        return Task(f"max:{text}", "Which number is the largest?", text, str(max(numbers)), str(min(numbers)))
    words = _word_list(rng)
    text = " ".join(words)
    if kind == "reverse":
        return Task(f"reverse:{text}", "Reverse the order of the words.", text, " ".join(reversed(words)), text)
    return Task(f"count:{text}", "How many words are in the list?", text, str(len(words)), str(len(words) + 1))


def _as_chat_text(task: Task) -> str:
    """A task as a question/answer passage, the way such pages appear in a web corpus."""
    question = task.instruction + (f"\n{task.input}" if task.input else "")
    return f"Q: {question}\nA: {task.output}"


# ----------------------------------------------------------------------------------------------------
# Pretraining text.
def make_story(rng: random.Random) -> tuple[str, str]:
    """A short children's story and its key (its slot values)."""
    name, friend = rng.sample(NAMES, 2)
    animal, place, color, toy = rng.choice(ANIMALS), rng.choice(PLACES), rng.choice(COLORS), rng.choice(TOYS)
    good, bad = rng.choice(FEELINGS_GOOD), rng.choice(FEELINGS_BAD)
    count = rng.randint(2, 9)
    opening = rng.choice(
        (
            f"Once upon a time, there was a little {animal} named {name}.",
            f"One sunny day, {name} the {animal} went to the {place}.",
            f"{name} was a small {animal} who lived near the {place}.",
        )
    )
    middle = rng.sample(
        [
            f"{name} had a {color} {toy} and loved to play with it every day.",
            f"At the {place}, {name} met {friend}, who had {count} {rng.choice(THINGS)}.",
            f"{name} lost the {color} {toy} and felt {bad}.",
            f"{friend} said, \"Do not be {bad}. I will help you look.\"",
            "They looked under a tree and behind a big rock.",
            f"{name} counted {count} birds in the sky.",
            f"The sky was {rng.choice(('dark', 'bright', 'blue', 'grey'))} and the wind was "
            f"{rng.choice(('cold', 'warm', 'soft', 'loud'))}.",
            f"{name} shared the {toy} with {friend}, and {friend} smiled.",
        ],
        rng.randint(2, 4),
    )
    ending = rng.choice(
        (
            f"In the end, {name} found the {toy} and felt {good}.",
            f"{name} and {friend} became best friends. The end.",
            f"That night, {name} went to bed {good} and tired.",
            f"{name} learned that sharing makes everyone {good}.",
        )
    )
    story = " ".join([opening, *middle, ending])
    return story, f"story:{story}"


FACTS = tuple(("capital", country, capital) for country, capital in COUNTRIES) + tuple(
    ("antonym", word, opposite) for word, opposite in ANTONYMS
)


def fact_sentence(rng: random.Random, fact: tuple[str, str, str]) -> str:
    """One encyclopedia-style sentence stating a capital or an antonym pair, in one of a few wordings."""
    kind, first, second = fact
    if kind == "capital":
        return rng.choice(
            (
                f"The capital of {first} is {second}.",
                f"{second} is the capital city of {first}.",
                f"People in {first} often visit {second}, the capital.",
            )
        )
    return rng.choice(
        (
            f"The opposite of {first} is {second}.",
            f"{first.capitalize()} and {second} are opposites.",
            f"The opposite of {second} is {first}.",
        )
    )


def fact_passages(rng: random.Random) -> list[str]:
    """Passages that state every fact once (the first sentence of each capital fact in its canonical wording)."""
    facts = list(FACTS)
    rng.shuffle(facts)
    passages = []
    for start in range(0, len(facts), 4):
        passages.append(
            " ".join(
                f"The capital of {c} is {k}." if kind == "capital" else fact_sentence(rng, (kind, c, k))
                for kind, c, k in facts[start : start + 4]
            )
        )
    return passages


def _draw(
    make: Callable[[random.Random], object],
    key_of: Callable[[object], str],
    rng: random.Random,
    split: str,
    seen: set[str],
):
    """Draw items until one belongs to ``split`` and has not been used yet."""
    for _ in range(100_000):
        item = make(rng)
        key = key_of(item)
        if key not in seen and split_of(key) == split:
            seen.add(key)
            return item
    name = getattr(make, "__name__", None) or make.func.__name__
    raise RuntimeError(f"the embedded corpus ran out of distinct {name} items for '{split}': lower CorpusSizes")


def _math_key(problem: MathProblem) -> str:
    return f"math:{problem.question}"


def _review_key(review: tuple[str, int]) -> str:
    return f"review:{review[0]}"


def _task_key(task: Task) -> str:
    return task.key


def make_chat_passage(
    rng: random.Random, split: str, seen: set[str], make_problem: MakeProblem = make_math_problem
) -> str:
    """A chat transcript of a math problem, a small task or a sentiment question, as instruction data sits in
    modern pretraining mixes: the chat tokens are then not untrained when SFT starts, so SFT teaches the
    assistant's behaviour instead of spending its steps (and the pretrained skills) on the format."""
    kind = rng.choices(("math", "task", "sentiment"), weights=(50, 25, 25))[0]
    if kind == "math":
        problem = _draw(make_problem, _math_key, rng, split, seen)
        return chat_transcript(problem.question, problem.answer)
    if kind == "task":
        task = _draw(make_task, _task_key, rng, split, seen)
        return chat_transcript(task.instruction + (f"\n\n{task.input}" if task.input else ""), task.output)
    sentence, label = _draw(make_review, _review_key, rng, split, seen)
    return chat_transcript(sst2_chat_prompt({"sentence": sentence}), SST2_LABEL_WORDS[label])


def generate_text(
    rng: random.Random, split: str, chars: int, make_problem: MakeProblem = make_math_problem
) -> list[dict]:
    """TinyStories-schema rows (``text``): stories mixed with reviews, Q/A, facts, arithmetic tables, worked math
    problems and chat transcripts."""
    seen: set[str] = set()
    # Training text states every fact (held-out questions ask about them); later passages repeat them at random.
    rows = [{"text": passage} for passage in fact_passages(rng)] if split == "train" else []
    total = sum(len(row["text"]) for row in rows)
    while total < chars:
        kind = rng.choices(
            ("story", "facts", "review", "math", "arithmetic", "task", "chat"), weights=(18, 7, 23, 25, 7, 10, 10)
        )[0]
        if kind == "story":
            text = _draw(make_story, lambda item: item[1], rng, split, seen)[0]
        elif kind == "facts":
            text = " ".join(fact_sentence(rng, rng.choice(FACTS)) for _ in range(rng.randint(2, 5)))
        elif kind == "review":
            reviews = [_draw(make_review, _review_key, rng, split, seen) for _ in range(rng.randint(1, 3))]
            text = "\n".join(
                f"{sst2_prompt({'sentence': sentence})} {SST2_LABEL_WORDS[label]}"
                if rng.random() < 0.7
                else f"Review: {sentence} ({SST2_LABEL_WORDS[label]})"
                for sentence, label in reviews
            )
        elif kind == "math":
            problems = [_draw(make_problem, _math_key, rng, split, seen) for _ in range(rng.randint(1, 2))]
            text = "\n\n".join(f"{gsm8k_prompt({'question': p.question})} {p.answer}" for p in problems)
        elif kind == "chat":
            text = "".join(make_chat_passage(rng, split, seen, make_problem) for _ in range(rng.randint(1, 2)))
        elif kind == "arithmetic":
            text = " ".join(arithmetic_facts(rng) for _ in range(rng.randint(1, 3)))
        else:
            text = _as_chat_text(_draw(make_task, _task_key, rng, split, seen))
        rows.append({"text": text})
        total += len(text)
    return rows


# ----------------------------------------------------------------------------------------------------
# Task datasets, each in its Hub schema.
_ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}"
)
_ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}"
)


def _alpaca_row(instruction: str, input_text: str, output: str) -> dict:
    template = _ALPACA_WITH_INPUT if input_text else _ALPACA_NO_INPUT
    return {
        "instruction": instruction,
        "input": input_text,
        "output": output,
        "text": template.format(instruction=instruction, input=input_text, output=output),
    }


def generate_alpaca(
    rng: random.Random, split: str, rows: int, make_problem: MakeProblem = make_math_problem
) -> list[dict]:
    """Alpaca-schema rows: the small tasks, worked math problems and sentiment labelling."""
    seen: set[str] = set()
    out = []
    for _ in range(rows):
        kind = rng.choices(("task", "math", "sentiment"), weights=(15, 70, 15))[0]
        if kind == "task":
            task = _draw(make_task, _task_key, rng, split, seen)
            out.append(_alpaca_row(task.instruction, task.input, task.output))
        elif kind == "math":
            problem = _draw(make_problem, _math_key, rng, split, seen)
            out.append(_alpaca_row(problem.question, "", problem.answer))
        else:
            sentence, label = _draw(make_review, _review_key, rng, split, seen)
            out.append(_alpaca_row(SST2_INSTRUCTION, sentence, SST2_LABEL_WORDS[label]))
    return out


_UNHELPFUL = (
    "I don't know.",
    "I can't help with that.",
    "Why don't you look it up yourself?",
    "That is not something I want to answer.",
    "Hmm, maybe. Who knows?",
)
_OPENERS = (
    ("Hi! Can you help me with a question?", "Of course! What would you like to know?"),
    ("Hello, I have a homework question.", "Sure, I am happy to help. What is it?"),
    ("Are you good at puzzles?", "I can try my best. What is the puzzle?"),
)


def _transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)


_LAST_STEP = re.compile(r"(\d+)([-+*/])(\d+) = <<\1\2\3=(\d+)>>\4(?!.*<<)", re.S)
_APPLY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a // b if b and a % b == 0 else None,
}


def _slipped_solution(problem: MathProblem, rng: random.Random) -> str:
    """The worked solution with one slip in its last step, carried to the final answer: a wrong result (an
    arithmetic slip) or, half the time, a wrong number copied into it (another number of the question), the
    policy's own commonest mistakes."""
    match = _LAST_STEP.search(problem.answer)
    wrong = None
    if match and rng.random() < 0.5:
        a, op, b = match.group(1), match.group(2), match.group(3)
        others = [n for n in dict.fromkeys(re.findall(r"\d+", problem.question)) if n != b]
        if others:
            b = rng.choice(others)
            wrong = _APPLY[op](int(a), int(b))
        if wrong is not None and wrong > 0 and wrong != problem.value:
            step = f"{a}{op}{b} = <<{a}{op}{b}={wrong}>>{wrong}"
            answer = problem.answer[: match.start()] + step + problem.answer[match.end() :]
            return answer.replace(f"#### {problem.value}", f"#### {wrong}")
    wrong = problem.value + rng.choice((-2, -1, 1, 2) if problem.value > 2 else (1, 2, 3))
    head, _, _ = problem.answer.rpartition(f"={problem.value}>>{problem.value}")
    tail = problem.answer[len(head) + len(f"={problem.value}>>{problem.value}") :]
    return f"{head}={wrong}>>{wrong}{tail.replace(f'#### {problem.value}', f'#### {wrong}')}"


def generate_hh_rlhf(
    rng: random.Random, split: str, rows: int, make_problem: MakeProblem = make_math_problem
) -> list[dict]:
    """hh-rlhf-schema rows: chosen answers are correct and helpful; rejected ones wrong or unhelpful.

    A math problem's rejected answer is its worked solution with one slip in the last step (``_slipped_solution``),
    so preference tuning rewards the right numbers in the solution format the evaluation reads."""
    seen: set[str] = set()
    out = []
    for _ in range(rows):
        if rng.random() < 0.3:
            problem = _draw(make_problem, _math_key, rng, split, seen)
            question, good, bad = problem.question, problem.answer, _slipped_solution(problem, rng)
        else:
            task = _draw(make_task, _task_key, rng, split, seen)
            question = task.instruction + (f"\n{task.input}" if task.input else "")
            good, bad = task.output, task.wrong_output
        if rng.random() < 0.3:
            bad = rng.choice(_UNHELPFUL)
        prefix = [("Human", question)]
        if rng.random() < 0.3:  # several turns: a shared opening exchange before the question
            opener = rng.choice(_OPENERS)
            prefix = [("Human", opener[0]), ("Assistant", opener[1]), *prefix]
        out.append(
            {
                "chosen": _transcript([*prefix, ("Assistant", good)]),
                "rejected": _transcript([*prefix, ("Assistant", bad)]),
            }
        )
    return out


def generate_gsm8k(
    rng: random.Random, split: str, rows: int, make_problem: MakeProblem = make_math_problem
) -> list[dict]:
    """GSM8K-schema rows (``question``, ``answer`` with worked steps and ``#### N``)."""
    seen: set[str] = set()
    problems = [_draw(make_problem, _math_key, rng, split, seen) for _ in range(rows)]
    return [{"question": p.question, "answer": p.answer} for p in problems]


def generate_sst2(rng: random.Random, split: str, rows: int) -> list[dict]:
    """SST-2-schema rows (``sentence``, ``label``, ``idx``)."""
    seen: set[str] = set()
    reviews = [_draw(make_review, _review_key, rng, split, seen) for _ in range(rows)]
    return [{"sentence": sentence, "label": label, "idx": idx} for idx, (sentence, label) in enumerate(reviews)]


_GENERATORS = {
    "embedded-text": lambda rng, split, sizes, make: generate_text(
        rng, split, sizes.text_train_chars if split == "train" else sizes.text_eval_chars, make
    ),
    "embedded-alpaca": lambda rng, split, sizes, make: generate_alpaca(rng, split, sizes.rows(split), make),
    "embedded-hh-rlhf": lambda rng, split, sizes, make: generate_hh_rlhf(rng, split, sizes.rows(split), make),
    "embedded-gsm8k": lambda rng, split, sizes, make: generate_gsm8k(rng, split, sizes.rows(split, math=True), make),
    "embedded-sst2": lambda rng, split, sizes, make: generate_sst2(rng, split, sizes.rows(split)),
}


def generate_embedded_corpus(
    seed: int = 0, sizes: CorpusSizes = CorpusSizes(), difficulty: MathDifficulty = MathDifficulty()
) -> dict[str, dict[str, list[dict]]]:
    """All embedded datasets as ``{name: {split: rows}}``; the same seed, sizes and difficulty give the same rows."""
    make = partial(make_math_problem, difficulty=difficulty)
    return {
        name: {
            split: generate(random.Random(f"{seed}/{name}/{split}"), split, sizes, make) for split in EMBEDDED_SPLITS
        }
        for name, generate in _GENERATORS.items()
    }


def embedded_corpus_dir(
    seed: int = 0, sizes: CorpusSizes = CorpusSizes(), difficulty: MathDifficulty = MathDifficulty()
) -> Path:
    """The folder holding the generated corpus as ``<name>/<split>.jsonl``, generated on first use.

    Cached under ``$MODERN_LLM_CACHE`` (default ``~/.cache/modern_llm``)/embedded; written to a temporary
    folder and renamed, so concurrent processes (e.g. DDP ranks) never read a half-written file.
    """
    root = Path(os.environ.get("MODERN_LLM_CACHE", Path.home() / ".cache" / "modern_llm")) / "embedded"
    settings = {**asdict(sizes), "math": asdict(difficulty)}
    fingerprint = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    target = root / f"v{CORPUS_VERSION}-seed{seed}-{fingerprint}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    for name, splits in generate_embedded_corpus(seed, sizes, difficulty).items():
        (staging / name).mkdir()
        for split, rows in splits.items():
            with open(staging / name / f"{split}.jsonl", "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        staging.rename(target)
    except OSError:  # another process finished first: its copy is identical
        shutil.rmtree(staging, ignore_errors=True)
    return target
