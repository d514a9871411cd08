"""The formats modern-llm's data, training and evaluation share: chat tokens, the GSM8K and SST-2 prompts and answers.

The embedded corpus writes its text in these formats, the recipes train and sample in them, and the evaluation's
task YAMLs (eval/tasks/) prompt and score with them, so a format is defined once. GSM8K and SST-2 follow
lm-evaluation-harness (`tasks/gsm8k/gsm8k.yaml`, `tasks/glue/sst2/default.yaml`): the same prompts, stop
sequences, answer regexes and exact-match normalisation, so our numbers and lm-eval's agree example by example
(tests/evaluation/test_task_formats.py checks them against those files). Imports nothing from the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ---------------------------------------------------------------- chat (ChatML)
IM_START_TOKEN = "<|im_start|>"
IM_END_TOKEN = "<|im_end|>"
# The assistant's content and its closing <|im_end|> sit inside {% generation %} so that
# `return_assistant_tokens_mask` (TRL's assistant_only_loss) covers exactly what the model must produce;
# the newline after <|im_end|> is never generated (generation stops at <|im_end|>), so it stays outside.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def chat_transcript(user: str, assistant: str) -> str:
    """One exchange as `CHAT_TEMPLATE` renders it (the text a chat model is trained on)."""
    return f"{IM_START_TOKEN}user\n{user}{IM_END_TOKEN}\n{IM_START_TOKEN}assistant\n{assistant}{IM_END_TOKEN}\n"


# ---------------------------------------------------------------- SST-2
SST2_INSTRUCTION = "Is this sentence positive or negative?"
SST2_LABEL_WORDS = ("negative", "positive")  # index = GLUE label id


def sst2_prompt(doc: dict) -> str:
    """lm-eval's sst2 prompt for a completion model; the label word follows after a space."""
    return f"{doc['sentence']}\nQuestion: {SST2_INSTRUCTION}\nAnswer:"


def sst2_choices(doc: dict) -> list[str]:
    """The answers SST-2 scores, in label order (lm-eval's `doc_to_choice`)."""
    return list(SST2_LABEL_WORDS)


def sst2_chat_prompt(doc: dict) -> str:
    """The user's message for a chat model: the instruction, then the sentence, as the SFT data asks it
    (an Alpaca instruction/input pair); lm-eval's completion prompt inside a user turn is a format SFT never showed."""
    return f"{SST2_INSTRUCTION}\n\n{doc['sentence']}"


# ---------------------------------------------------------------- GSM8K
GSM8K_STOP_SEQUENCES = ("Question:", "</s>", IM_END_TOKEN)  # lm-eval's gsm8k `until`
GSM8K_STRICT_PATTERN = r"#### (\-?[0-9\.\,]+)"  # lm-eval's "strict-match" filter
GSM8K_FLEXIBLE_PATTERN = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"  # lm-eval's "flexible-extract" filter (last match)
GSM8K_IGNORED_PATTERNS = (",", r"\$", r"(?s).*#### ", r"\.$")  # lm-eval's exact_match regexes_to_ignore
GSM8K_NO_ANSWER = "[invalid]"  # what lm-eval's regex filter returns when its pattern finds nothing
_STRICT, _FLEXIBLE = re.compile(GSM8K_STRICT_PATTERN), re.compile(GSM8K_FLEXIBLE_PATTERN)
CALCULATOR_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")  # GSM8K's <<expression=result>>


def gsm8k_prompt(doc: dict) -> str:
    """lm-eval's gsm8k prompt for a completion model; the solution follows after a space."""
    return f"Question: {doc['question']}\nAnswer:"


def gsm8k_chat_prompt(doc: dict) -> str:
    """The user's message for a chat model: the bare question, as instruction data puts it."""
    return doc["question"]


def format_prompt(question: str, fewshot: Iterable[dict] = ()) -> str:
    """A k-shot completion prompt as lm-eval builds it: solved examples, blank-line separated, then the question."""
    shots = [f"{gsm8k_prompt(example)} {example['answer']}" for example in fewshot]
    return "\n\n".join([*shots, gsm8k_prompt({"question": question})])


def gsm8k_chat_messages(question: str, fewshot: Iterable[dict] = ()) -> list[dict]:
    """The k-shot conversation a chat model is asked: each solved example a user/assistant exchange (lm-eval's
    `--apply_chat_template --fewshot_as_multiturn`), then the question as the user's message."""
    messages = []
    for example in fewshot:
        messages += [
            {"role": "user", "content": gsm8k_chat_prompt(example)},
            {"role": "assistant", "content": example["answer"].strip()},
        ]
    return messages + [{"role": "user", "content": gsm8k_chat_prompt({"question": question})}]


def format_chat_prompt(tokenizer, question: str, fewshot: Iterable[dict] = ()) -> str:
    """`gsm8k_chat_messages` through a chat model's template, ending with the assistant's turn opened."""
    return tokenizer.apply_chat_template(
        gsm8k_chat_messages(question, fewshot), tokenize=False, add_generation_prompt=True
    )


def verifier_prompt(question: str) -> str:
    """The problem part of what a verifier scores (`format_verifier_input` starts with it)."""
    return gsm8k_prompt({"question": question})


def format_verifier_input(question: str, solution: str) -> str:
    """The text a verifier scores: the problem and one candidate solution, in the completion prompt's format."""
    return f"{verifier_prompt(question)} {truncate_at_stop(solution).strip()}"


def truncate_at_stop(generation: str, stop_sequences: Iterable[str] = GSM8K_STOP_SEQUENCES) -> str:
    """A generation cut at its first stop sequence, as lm-eval's `generate_until` returns it."""
    cut = len(generation)
    for stop in stop_sequences:
        index = generation.find(stop)
        if index != -1:
            cut = min(cut, index)
    return generation[:cut]


def normalize_answer(text: str) -> str:
    """lm-eval's gsm8k exact-match normalisation: drop commas, "$", everything up to "#### " and a final ".";
    lower case. Applied to an extracted answer and to a reference `answer` field alike."""
    for pattern in GSM8K_IGNORED_PATTERNS:
        text = re.sub(pattern, "", text)
    return text.lower()


def _answer_span(pattern: re.Pattern, generation: str, index: int) -> str | None:
    """lm-eval's `regex` filter on one generation: match `index` of `findall` (its first non-empty group when the
    pattern has several), stripped; None where lm-eval writes its fallback."""
    matches = pattern.findall(generation if isinstance(generation, str) else "")
    if not matches:
        return None
    match = matches[index]
    if isinstance(match, tuple):
        match = next((group for group in match if group), None)
    return None if match is None else match.strip()


def extract_strict(generation: str) -> str | None:
    """The number after the first "#### " (lm-eval's strict-match), normalised; None when there is none."""
    span = _answer_span(_STRICT, generation, 0)
    return None if span is None else normalize_answer(span)


def extract_flexible(generation: str) -> str | None:
    """The last number-like span (lm-eval's flexible-extract), normalised; None when there is none."""
    span = _answer_span(_FLEXIBLE, generation, -1)
    return None if span is None else normalize_answer(span)


# The GSM8K task YAMLs (eval/tasks/) score through these three, by `!function`: a `custom` filter each for
# "strict-match" and "flexible-extract" (then lm-eval's `take_first`), and the `exact_match` metric. They give what
# lm-eval's gsm8k.yaml gives with its `regex` filters and `regexes_to_ignore`, sample by sample
# (tests/evaluation/test_task_formats.py runs both on the same documents and generations).
def _filter(pattern: re.Pattern, index: int, resps) -> list[list[str]]:
    spans = ([_answer_span(pattern, r, index) for r in generations] for generations in resps)
    return [[GSM8K_NO_ANSWER if span is None else span for span in row] for row in spans]


def gsm8k_strict_match(resps, docs) -> list[list[str]]:
    """lm-eval's strict-match filter: each generation's "#### N" answer as written, or "[invalid]"."""
    return _filter(_STRICT, 0, resps)


def gsm8k_flexible_extract(resps, docs) -> list[list[str]]:
    """lm-eval's flexible-extract filter: each generation's last number-like span as written, or "[invalid]"."""
    return _filter(_FLEXIBLE, -1, resps)


def exact_match(references, predictions) -> dict:
    """lm-eval's `exact_match` metric with gsm8k's settings (`GSM8K_IGNORED_PATTERNS`, case ignored); named
    `exact_match`, so the results and each sample keep lm-eval's field. lm-eval is imported only here."""
    from lm_eval.api.metrics import exact_match_hf_evaluate

    return exact_match_hf_evaluate(
        predictions, references, regexes_to_ignore=list(GSM8K_IGNORED_PATTERNS), ignore_case=True
    )


def gsm8k_reference(answer: str) -> str:
    """The gold answer of a GSM8K `answer` field ("... #### 72" -> "72"), normalised as predictions are."""
    return normalize_answer(answer)


def is_correct(generation: str, reference_answer: str, mode: str = "strict") -> bool:
    """Whether a generation's answer (cut at the stop sequences; "strict" or "flexible" extraction) is the gold one."""
    extract = {"strict": extract_strict, "flexible": extract_flexible}[mode]
    return extract(truncate_at_stop(generation)) == gsm8k_reference(reference_answer)


def calculator_annotations(text: str) -> list[tuple[str, str]]:
    """The `<<expression=result>>` steps GSM8K solutions carry, as (expression, written result) pairs."""
    return [(expression.strip(), result.strip()) for expression, result in CALCULATOR_ANNOTATION.findall(text)]
