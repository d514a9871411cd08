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
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..task_formats import SST2_INSTRUCTION, SST2_LABEL_WORDS, chat_transcript, gsm8k_prompt, sst2_chat_prompt, sst2_prompt

CORPUS_VERSION = 3  # bump whenever the generated rows change, so stale caches are not reused
EMBEDDED_SPLITS = ("train", "validation", "test")
_EVAL_PERCENT = {"validation": 10, "test": 10}  # of the key space; the rest is train


@dataclass(frozen=True)
class CorpusSizes:
    """How much to generate: pretraining characters per split, rows per split for the task datasets."""

    text_train_chars: int = 1_500_000
    text_eval_chars: int = 60_000
    train_rows: int = 3000
    eval_rows: int = 300

    def rows(self, split: str) -> int:
        return self.train_rows if split == "train" else self.eval_rows


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
NAMES = ("Tom", "Mia", "Sam", "Lily", "Ben", "Anna", "Max", "Zoe", "Leo", "Emma", "Jack", "Ella",
         "Noah", "Ava", "Finn", "Ruby", "Owen", "Nora", "Eli", "Ivy", "Theo", "Lucy", "Hugo", "Maya")
ANIMALS = ("cat", "dog", "bunny", "bird", "fox", "bear", "duck", "frog", "mouse", "owl", "pig", "lamb")
THINGS = ("apples", "marbles", "stickers", "cookies", "pencils", "books", "shells", "balloons", "cards",
          "toys", "eggs", "flowers", "coins", "buttons", "candies", "rocks")
PLACES = ("park", "garden", "forest", "beach", "school", "farm", "river", "kitchen", "hill", "library")
COLORS = ("red", "blue", "green", "yellow", "pink", "purple", "orange", "brown")
TOYS = ("ball", "kite", "boat", "drum", "hat", "box", "car", "doll", "book", "cup")
FEELINGS_GOOD = ("happy", "glad", "proud", "excited", "calm")
FEELINGS_BAD = ("sad", "scared", "angry", "tired", "lonely")
ANTONYMS = (("hot", "cold"), ("big", "small"), ("happy", "sad"), ("fast", "slow"), ("up", "down"),
            ("day", "night"), ("old", "young"), ("open", "closed"), ("full", "empty"), ("light", "dark"),
            ("early", "late"), ("loud", "quiet"), ("hard", "soft"), ("wet", "dry"), ("long", "short"),
            ("rich", "poor"), ("clean", "dirty"), ("high", "low"), ("strong", "weak"), ("near", "far"),
            ("first", "last"), ("push", "pull"), ("win", "lose"), ("buy", "sell"), ("in", "out"),
            ("left", "right"), ("thick", "thin"), ("wide", "narrow"), ("sweet", "sour"), ("brave", "afraid"),
            ("true", "false"), ("begin", "end"), ("friend", "enemy"), ("laugh", "cry"), ("above", "below"),
            ("inside", "outside"), ("always", "never"), ("before", "after"), ("give", "take"), ("safe", "dangerous"))


def _made_up_countries(count: int = 40) -> tuple[tuple[str, str], ...]:
    """Country/capital pairs with invented names, so no model knows them from anywhere but this corpus."""
    rng = random.Random("modern-llm-countries")
    starts, middles = ("Zor", "Vel", "Mar", "Tal", "Quen", "Bri", "Dol", "Fen", "Kar", "Lum", "Nor", "Pel", "Sar", "Tor"), (
        "a", "e", "i", "o", "u", "an", "el", "or")
    country_ends, capital_ends = ("ia", "land", "stan", "ora", "mark"), ("ton", "grad", "polis", "ville", "port", "holm")
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

POSITIVE = ("wonderful", "charming", "delightful", "brilliant", "moving", "funny", "beautiful", "clever",
            "gripping", "warm", "fresh", "touching", "smart", "lovely", "excellent", "great")
NEGATIVE = ("boring", "dull", "awful", "tedious", "clumsy", "bland", "messy", "silly", "painful", "flat",
            "lifeless", "predictable", "weak", "terrible", "forgettable", "bad")
REVIEW_SUBJECTS = ("the movie", "this film", "the story", "the acting", "the plot", "the ending", "the music",
                   "the cast", "the script", "the hero", "the dialogue", "the direction", "the humor")
INTENSIFIERS = ("", "very ", "truly ", "really ", "rather ", "so ", "quite ")


# ----------------------------------------------------------------------------------------------------
# Items with a ground truth: math word problems, review sentences, instruction tasks.
@dataclass(frozen=True)
class MathProblem:
    question: str
    answer: str  # GSM8K style: worked steps with <<expr=value>> annotations, last line "#### N"
    value: int


def _step(expression: str, value: int) -> str:
    return f"{expression} = <<{expression}={value}>>{value}"


def make_math_problem(rng: random.Random) -> MathProblem:
    """A word problem of one to three steps with a GSM8K-style worked solution.

    Operands stay within the tables (single digits, products of 2..5 in two-step problems, at most 9 taken
    away), so every step is an arithmetic fact the pretraining text states (``arithmetic_facts``): a model
    of a few million parameters can then get problems right, and wrong in checkable ways, which is what
    the verifier needs to learn from.
    """
    name, friend = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)

    def digit() -> int:  # never 1: "1 apples"
        return rng.randint(2, 9)

    other = rng.choice([n for n in NAMES if n not in (name, friend)])
    kind = rng.choice(("add", "add_pair", "sub", "mul", "add_sub", "mul_add", "mul_sub", "add_add_sub", "mul_add_sub"))
    if kind == "add":
        a, b = digit(), digit()
        question = f"{name} has {a} {thing}. {name} gets {b} more {thing}. How many {thing} does {name} have now?"
        steps, value = [f"{name} has {_step(f'{a}+{b}', a + b)} {thing} now."], a + b
    elif kind == "add_pair":
        a, b = digit(), digit()
        question = f"{name} found {a} {thing} and {friend} found {b} {thing}. How many {thing} did they find together?"
        steps, value = [f"Together they found {_step(f'{a}+{b}', a + b)} {thing}."], a + b
    elif kind == "sub":
        a = rng.randint(4, 18)
        b = rng.randint(2, min(9, a - 1))
        question = f"{name} had {a} {thing} and gave {b} of them to {friend}. How many {thing} does {name} have left?"
        steps, value = [f"{name} has {_step(f'{a}-{b}', a - b)} {thing} left."], a - b
    elif kind == "mul":
        a, b = digit(), digit()
        question = f"{name} has {a} bags. Each bag holds {b} {thing}. How many {thing} are in the bags?"
        steps, value = [f"The bags hold {_step(f'{a}*{b}', a * b)} {thing}."], a * b
    elif kind == "add_sub":
        a, b = digit(), digit()
        c = rng.randint(2, min(9, a + b - 1))
        question = (f"{name} has {a} {thing}. {name} buys {b} more and then gives {c} to {friend}. "
                    f"How many {thing} does {name} have now?")
        steps = [f"After buying, {name} has {_step(f'{a}+{b}', a + b)} {thing}.",
                 f"After giving some away, {name} has {_step(f'{a + b}-{c}', a + b - c)} {thing}."]
        value = a + b - c
    elif kind == "mul_add":
        a, b, c = rng.randint(2, 5), rng.randint(2, 5), digit()
        question = (f"{name} buys {a} boxes with {b} {thing} in each box. {friend} gives {name} {c} more {thing}. "
                    f"How many {thing} does {name} have?")
        steps = [f"The boxes hold {_step(f'{a}*{b}', a * b)} {thing}.",
                 f"With the gift, {name} has {_step(f'{a * b}+{c}', a * b + c)} {thing}."]
        value = a * b + c
    elif kind == "add_add_sub":
        a, b, c = digit(), digit(), digit()
        d = rng.randint(2, 9)
        question = (f"{name} has {a} {thing}. {name} gets {b} more, then finds {c} more and gives {d} to {friend}. "
                    f"How many {thing} does {name} have now?")
        steps = [f"After getting some, {name} has {_step(f'{a}+{b}', a + b)} {thing}.",
                 f"After finding some, {name} has {_step(f'{a + b}+{c}', a + b + c)} {thing}.",
                 f"After giving some away, {name} has {_step(f'{a + b + c}-{d}', a + b + c - d)} {thing}."]
        value = a + b + c - d
    elif kind == "mul_add_sub":
        a, b, c, d = rng.randint(2, 5), rng.randint(2, 5), digit(), rng.randint(2, 9)
        question = (f"{name} buys {a} boxes with {b} {thing} in each box. {friend} gives {name} {c} more {thing}, "
                    f"and {name} gives {d} to {other}. How many {thing} does {name} have now?")
        steps = [f"The boxes hold {_step(f'{a}*{b}', a * b)} {thing}.",
                 f"With the gift, {name} has {_step(f'{a * b}+{c}', a * b + c)} {thing}.",
                 f"After giving some away, {name} has {_step(f'{a * b + c}-{d}', a * b + c - d)} {thing}."]
        value = a * b + c - d
    else:  # mul_sub
        a, b = rng.randint(2, 5), rng.randint(2, 5)
        c = rng.randint(2, min(9, a * b - 1))
        question = f"{name} has {a} packs of {b} {thing}. {name} uses {c} of them. How many {thing} are left?"
        steps = [f"{name} starts with {_step(f'{a}*{b}', a * b)} {thing}.",
                 f"After using some, {_step(f'{a * b}-{c}', a * b - c)} {thing} are left."]
        value = a * b - c
    return MathProblem(question, "\n".join([*steps, f"#### {value}"]), value)


def arithmetic_facts(rng: random.Random) -> str:
    """A line of an addition, subtraction or times table, the kind of page a web corpus holds.

    Written ``a+b=c`` as inside the solutions' ``<<a+b=c>>`` annotations; it covers every step of
    ``make_math_problem`` (sums up to 25+9, differences of up to 34-9, the 2..9 times tables).
    """
    kind = rng.choice(("add", "sub", "mul"))
    if kind == "mul":
        a = rng.randint(2, 9)
        facts = [f"{a}*{b}={a * b}" for b in range(2, 10)]
        return f"The {a} times table: " + ", ".join(facts) + "."
    if kind == "add":
        a = rng.randint(2, 25)
        facts = [f"{a}+{b}={a + b}" for b in sorted(rng.sample(range(2, 10), 4))]
        return "Adding: " + ", ".join(facts) + "."
    a = rng.randint(4, 34)
    subtrahends = range(2, min(a, 10))
    facts = [f"{a}-{b}={a - b}" for b in sorted(rng.sample(subtrahends, min(4, len(subtrahends))))]
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
        return Task(f"capital:{country}", f"What is the capital of {country}?", "",
                    f"The capital of {country} is {capital}.", f"The capital of {country} is {wrong}.")
    if kind == "antonym":
        pair, (_, wrong) = rng.sample(ANTONYMS, 2)
        word, opposite = pair if rng.random() < 0.5 else pair[::-1]
        return Task(f"antonym:{word}", f"What is the opposite of {word}?", "",
                    f"The opposite of {word} is {opposite}.", f"The opposite of {word} is {wrong}.")
    if kind == "arithmetic":
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        op = rng.choice(("plus", "times", "minus"))
        if op == "minus":
            a, b = max(a, b), min(a, b)
        value = {"plus": a + b, "times": a * b, "minus": a - b}[op]
        return Task(f"arithmetic:{a} {op} {b}", f"What is {a} {op} {b}?", "", f"{a} {op} {b} is {value}.",
                    f"{a} {op} {b} is {value + rng.choice((-2, -1, 1, 2))}.")
    if kind in ("sort", "max"):
        numbers = rng.sample(range(1, 30), rng.randint(3, 5))
        text = " ".join(map(str, numbers))
        if kind == "sort":
            return Task(f"sort:{text}", "Sort the numbers from smallest to largest.", text,
                        " ".join(map(str, sorted(numbers))), " ".join(map(str, sorted(numbers, reverse=True))))
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
    opening = rng.choice((f"Once upon a time, there was a little {animal} named {name}.",
                          f"One sunny day, {name} the {animal} went to the {place}.",
                          f"{name} was a small {animal} who lived near the {place}."))
    middle = rng.sample([
        f"{name} had a {color} {toy} and loved to play with it every day.",
        f"At the {place}, {name} met {friend}, who had {count} {rng.choice(THINGS)}.",
        f"{name} lost the {color} {toy} and felt {bad}.",
        f"{friend} said, \"Do not be {bad}. I will help you look.\"",
        "They looked under a tree and behind a big rock.",
        f"{name} counted {count} birds in the sky.",
        f"The sky was {rng.choice(('dark', 'bright', 'blue', 'grey'))} and the wind was {rng.choice(('cold', 'warm', 'soft', 'loud'))}.",
        f"{name} shared the {toy} with {friend}, and {friend} smiled.",
    ], rng.randint(2, 4))
    ending = rng.choice((f"In the end, {name} found the {toy} and felt {good}.",
                         f"{name} and {friend} became best friends. The end.",
                         f"That night, {name} went to bed {good} and tired.",
                         f"{name} learned that sharing makes everyone {good}."))
    story = " ".join([opening, *middle, ending])
    return story, f"story:{story}"


FACTS = tuple(("capital", country, capital) for country, capital in COUNTRIES) + tuple(
    ("antonym", word, opposite) for word, opposite in ANTONYMS)


def fact_sentence(rng: random.Random, fact: tuple[str, str, str]) -> str:
    """One encyclopedia-style sentence stating a capital or an antonym pair, in one of a few wordings."""
    kind, first, second = fact
    if kind == "capital":
        return rng.choice((f"The capital of {first} is {second}.", f"{second} is the capital city of {first}.",
                           f"People in {first} often visit {second}, the capital."))
    return rng.choice((f"The opposite of {first} is {second}.", f"{first.capitalize()} and {second} are opposites.",
                       f"The opposite of {second} is {first}."))


def fact_passages(rng: random.Random) -> list[str]:
    """Passages that state every fact once (the first sentence of each capital fact in its canonical wording)."""
    facts = list(FACTS)
    rng.shuffle(facts)
    passages = []
    for start in range(0, len(facts), 4):
        passages.append(" ".join(f"The capital of {c} is {k}." if kind == "capital" else fact_sentence(rng, (kind, c, k))
                                 for kind, c, k in facts[start:start + 4]))
    return passages


def _draw(make: Callable[[random.Random], object], key_of: Callable[[object], str], rng: random.Random,
          split: str, seen: set[str]):
    """Draw items until one belongs to ``split`` and has not been used yet."""
    for _ in range(100_000):
        item = make(rng)
        key = key_of(item)
        if key not in seen and split_of(key) == split:
            seen.add(key)
            return item
    raise RuntimeError(f"the embedded corpus ran out of distinct {make.__name__} items for '{split}': lower CorpusSizes")


def _math_key(problem: MathProblem) -> str:
    return f"math:{problem.question}"


def _review_key(review: tuple[str, int]) -> str:
    return f"review:{review[0]}"


def _task_key(task: Task) -> str:
    return task.key


def make_chat_passage(rng: random.Random, split: str, seen: set[str]) -> str:
    """A chat transcript of a math problem, a small task or a sentiment question, as instruction data sits in
    modern pretraining mixes: the chat tokens are then not untrained when SFT starts, so SFT teaches the
    assistant's behaviour instead of spending its steps (and the pretrained skills) on the format."""
    kind = rng.choices(("math", "task", "sentiment"), weights=(50, 25, 25))[0]
    if kind == "math":
        problem = _draw(make_math_problem, _math_key, rng, split, seen)
        return chat_transcript(problem.question, problem.answer)
    if kind == "task":
        task = _draw(make_task, _task_key, rng, split, seen)
        return chat_transcript(task.instruction + (f"\n\n{task.input}" if task.input else ""), task.output)
    sentence, label = _draw(make_review, _review_key, rng, split, seen)
    return chat_transcript(sst2_chat_prompt({"sentence": sentence}), SST2_LABEL_WORDS[label])


def generate_text(rng: random.Random, split: str, chars: int) -> list[dict]:
    """TinyStories-schema rows (``text``): stories mixed with reviews, Q/A, facts, arithmetic tables, worked math
    problems and chat transcripts."""
    seen: set[str] = set()
    # Training text states every fact (held-out questions ask about them); later passages repeat them at random.
    rows = [{"text": passage} for passage in fact_passages(rng)] if split == "train" else []
    total = sum(len(row["text"]) for row in rows)
    while total < chars:
        kind = rng.choices(("story", "facts", "review", "math", "arithmetic", "task", "chat"),
                           weights=(18, 7, 23, 25, 7, 10, 10))[0]
        if kind == "story":
            text = _draw(make_story, lambda item: item[1], rng, split, seen)[0]
        elif kind == "facts":
            text = " ".join(fact_sentence(rng, rng.choice(FACTS)) for _ in range(rng.randint(2, 5)))
        elif kind == "review":
            reviews = [_draw(make_review, _review_key, rng, split, seen) for _ in range(rng.randint(1, 3))]
            text = "\n".join(f"{sst2_prompt({'sentence': sentence})} {SST2_LABEL_WORDS[label]}"
                             if rng.random() < 0.7 else f"Review: {sentence} ({SST2_LABEL_WORDS[label]})"
                             for sentence, label in reviews)
        elif kind == "math":
            problems = [_draw(make_math_problem, _math_key, rng, split, seen) for _ in range(rng.randint(1, 2))]
            text = "\n\n".join(f"{gsm8k_prompt({'question': p.question})} {p.answer}" for p in problems)
        elif kind == "chat":
            text = "".join(make_chat_passage(rng, split, seen) for _ in range(rng.randint(1, 2)))
        elif kind == "arithmetic":
            text = " ".join(arithmetic_facts(rng) for _ in range(rng.randint(1, 3)))
        else:
            text = _as_chat_text(_draw(make_task, _task_key, rng, split, seen))
        rows.append({"text": text})
        total += len(text)
    return rows


# ----------------------------------------------------------------------------------------------------
# Task datasets, each in its Hub schema.
_ALPACA_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                      "context. Write a response that appropriately completes the request.\n\n"
                      "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}")
_ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                    "the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}")


def _alpaca_row(instruction: str, input_text: str, output: str) -> dict:
    template = _ALPACA_WITH_INPUT if input_text else _ALPACA_NO_INPUT
    return {"instruction": instruction, "input": input_text, "output": output,
            "text": template.format(instruction=instruction, input=input_text, output=output)}


def generate_alpaca(rng: random.Random, split: str, rows: int) -> list[dict]:
    """Alpaca-schema rows: the small tasks, worked math problems and sentiment labelling."""
    seen: set[str] = set()
    out = []
    for _ in range(rows):
        kind = rng.choices(("task", "math", "sentiment"), weights=(25, 50, 25))[0]
        if kind == "task":
            task = _draw(make_task, _task_key, rng, split, seen)
            out.append(_alpaca_row(task.instruction, task.input, task.output))
        elif kind == "math":
            problem = _draw(make_math_problem, _math_key, rng, split, seen)
            out.append(_alpaca_row(problem.question, "", problem.answer))
        else:
            sentence, label = _draw(make_review, _review_key, rng, split, seen)
            out.append(_alpaca_row(SST2_INSTRUCTION, sentence, SST2_LABEL_WORDS[label]))
    return out


_UNHELPFUL = ("I don't know.", "I can't help with that.", "Why don't you look it up yourself?",
              "That is not something I want to answer.", "Hmm, maybe. Who knows?")
_OPENERS = (("Hi! Can you help me with a question?", "Of course! What would you like to know?"),
            ("Hello, I have a homework question.", "Sure, I am happy to help. What is it?"),
            ("Are you good at puzzles?", "I can try my best. What is the puzzle?"))


def _transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{speaker}: {text}" for speaker, text in turns)


def _slipped_solution(problem: MathProblem, rng: random.Random) -> str:
    """The worked solution with one arithmetic slip in its last step, carried to the final answer."""
    wrong = problem.value + rng.choice((-2, -1, 1, 2) if problem.value > 2 else (1, 2, 3))
    head, _, _ = problem.answer.rpartition(f"={problem.value}>>{problem.value}")
    tail = problem.answer[len(head) + len(f"={problem.value}>>{problem.value}"):]
    return f"{head}={wrong}>>{wrong}{tail.replace(f'#### {problem.value}', f'#### {wrong}')}"


def generate_hh_rlhf(rng: random.Random, split: str, rows: int) -> list[dict]:
    """hh-rlhf-schema rows: chosen answers are correct and helpful; rejected ones wrong or unhelpful.

    A math problem's rejected answer is its worked solution with one arithmetic slip (``_slipped_solution``),
    so preference tuning rewards right arithmetic in the solution format the evaluation reads."""
    seen: set[str] = set()
    out = []
    for _ in range(rows):
        if rng.random() < 0.3:
            problem = _draw(make_math_problem, _math_key, rng, split, seen)
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
        out.append({"chosen": _transcript([*prefix, ("Assistant", good)]),
                    "rejected": _transcript([*prefix, ("Assistant", bad)])})
    return out


def generate_gsm8k(rng: random.Random, split: str, rows: int) -> list[dict]:
    """GSM8K-schema rows (``question``, ``answer`` with worked steps and ``#### N``)."""
    seen: set[str] = set()
    problems = [_draw(make_math_problem, _math_key, rng, split, seen) for _ in range(rows)]
    return [{"question": p.question, "answer": p.answer} for p in problems]


def generate_sst2(rng: random.Random, split: str, rows: int) -> list[dict]:
    """SST-2-schema rows (``sentence``, ``label``, ``idx``)."""
    seen: set[str] = set()
    reviews = [_draw(make_review, _review_key, rng, split, seen) for _ in range(rows)]
    return [{"sentence": sentence, "label": label, "idx": idx} for idx, (sentence, label) in enumerate(reviews)]


_GENERATORS = {
    "embedded-text": lambda rng, split, sizes: generate_text(
        rng, split, sizes.text_train_chars if split == "train" else sizes.text_eval_chars),
    "embedded-alpaca": lambda rng, split, sizes: generate_alpaca(rng, split, sizes.rows(split)),
    "embedded-hh-rlhf": lambda rng, split, sizes: generate_hh_rlhf(rng, split, sizes.rows(split)),
    "embedded-gsm8k": lambda rng, split, sizes: generate_gsm8k(rng, split, sizes.rows(split)),
    "embedded-sst2": lambda rng, split, sizes: generate_sst2(rng, split, sizes.rows(split)),
}


def generate_embedded_corpus(seed: int = 0, sizes: CorpusSizes = CorpusSizes()) -> dict[str, dict[str, list[dict]]]:
    """All embedded datasets as ``{name: {split: rows}}``; the same seed gives the same rows."""
    return {name: {split: generate(random.Random(f"{seed}/{name}/{split}"), split, sizes) for split in EMBEDDED_SPLITS}
            for name, generate in _GENERATORS.items()}


def embedded_corpus_dir(seed: int = 0, sizes: CorpusSizes = CorpusSizes()) -> Path:
    """The folder holding the generated corpus as ``<name>/<split>.jsonl``, generated on first use.

    Cached under ``$MODERN_LLM_CACHE`` (default ``~/.cache/modern_llm``)/embedded; written to a temporary
    folder and renamed, so concurrent processes (e.g. DDP ranks) never read a half-written file.
    """
    root = Path(os.environ.get("MODERN_LLM_CACHE", Path.home() / ".cache" / "modern_llm")) / "embedded"
    fingerprint = hashlib.sha1(json.dumps(asdict(sizes), sort_keys=True).encode()).hexdigest()[:8]
    target = root / f"v{CORPUS_VERSION}-seed{seed}-{fingerprint}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    for name, splits in generate_embedded_corpus(seed, sizes).items():
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
