"""GSM8K prompt format and answer extraction, shared by the evaluation and the verifier recipe.

The prompt and the two extraction rules follow lm-evaluation-harness's ``gsm8k`` task
(``Question: ...\\nAnswer:``; ``strict-match`` reads ``#### N``, ``flexible-extract`` the last number),
so exact-match numbers compare with published ones.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Optional

ANSWER_MARKER = "####"
# lm-eval's gsm8k.yaml: generation stops at these.
STOP_SEQUENCES = ("Question:", "</s>", "<|im_end|>", "<|endoftext|>")

_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
# lm-eval's flexible-extract: the last number, with optional sign, "$", thousands separators and decimals.
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_CALCULATOR = re.compile(r"<<([^<>=]+)=([^<>]+)>>")


def normalize_number(text: Optional[str]) -> Optional[str]:
    """Canonical form of a numeric answer: no "$", commas or trailing period; "18.00" -> "18"; None if not a number."""
    if text is None:
        return None
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".").strip()
    if not cleaned:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if not math.isfinite(value):  # "nan" / "inf" parse as floats but are not answers
        return None
    if value == int(value):
        return str(int(value))
    return repr(value)


def extract_strict(generation: str) -> Optional[str]:
    """The number after the first "#### " (lm-eval's strict-match), normalised; None when absent."""
    match = _STRICT.search(generation)
    return normalize_number(match.group(1)) if match else None


def extract_flexible(generation: str) -> Optional[str]:
    """The last number in the text (lm-eval's flexible-extract), normalised; None when there is none."""
    for groups in reversed(_FLEXIBLE.findall(generation)):
        candidate = normalize_number(groups[0] or groups[1])
        if candidate is not None:
            return candidate
    return None


def extract_answer(generation: str) -> Optional[str]:
    """The answer a sampled solution commits to: its "#### N" if present, else its last number (for voting)."""
    text = truncate_at_stop(generation)
    return extract_strict(text) or extract_flexible(text)


def extract_reference(answer: str) -> str:
    """The gold number of a GSM8K ``answer`` field ("... #### 72")."""
    gold = extract_strict(answer)
    if gold is None:
        raise ValueError(f"GSM8K reference answer has no '#### N' line: {answer[-80:]!r}")
    return gold


def truncate_at_stop(generation: str, stop_sequences: Iterable[str] = STOP_SEQUENCES) -> str:
    """Cut a generation at the first stop sequence, as ``generate_until`` does."""
    cut = len(generation)
    for stop in stop_sequences:
        index = generation.find(stop)
        if index != -1:
            cut = min(cut, index)
    return generation[:cut]


def is_correct(generation: str, reference_answer: str, mode: str = "strict") -> bool:
    """Whether a generation's extracted answer equals the reference's gold number."""
    extractor = {"strict": extract_strict, "flexible": extract_flexible}[mode]
    return extractor(truncate_at_stop(generation)) == extract_reference(reference_answer)


def format_question(question: str) -> str:
    """One problem as lm-eval's gsm8k ``doc_to_text``."""
    return f"Question: {question.strip()}\nAnswer:"


def format_prompt(question: str, fewshot: Iterable[dict] = ()) -> str:
    """A k-shot prompt: solved examples (``question``/``answer`` dicts), blank-line separated, then the question."""
    shots = [f"{format_question(ex['question'])} {ex['answer'].strip()}" for ex in fewshot]
    return "\n\n".join([*shots, format_question(question)])


def format_chat_prompt(tokenizer, question: str, fewshot: Iterable[dict] = ()) -> str:
    """The k-shot prompt through a chat model's template, each solved example a user/assistant exchange
    (as lm-eval's ``--fewshot_as_multiturn``), ending with the assistant's turn opened.

    The user's message is the bare question, as instruction data (Alpaca, GSM8K in chat form) puts it, not
    lm-eval's ``Question: ...\nAnswer:`` completion prompt: measured on the cpu-demo SFT model, that wrapper
    inside the user turn cut exact match from 94% to 27%, a format artefact rather than a skill."""
    messages = []
    for example in fewshot:
        messages += [{"role": "user", "content": example["question"].strip()},
                     {"role": "assistant", "content": example["answer"].strip()}]
    messages.append({"role": "user", "content": question.strip()})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def format_verifier_input(question: str, solution: str) -> str:
    """The text a verifier scores: the problem and one candidate solution, in the prompt's own format."""
    return f"{format_question(question)} {truncate_at_stop(solution).strip()}"


def calculator_annotations(text: str) -> list[tuple[str, str]]:
    """The ``<<expression=result>>`` steps GSM8K solutions carry, as (expression, written result) pairs."""
    return [(expr.strip(), result.strip()) for expr, result in _CALCULATOR.findall(text)]
