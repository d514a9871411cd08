"""Row normalisers: one per stage format, turning a dataset's Hub-schema rows into the pipeline's columns.

Each normaliser maps one raw row to one normalised row, or to ``None`` for a malformed row that is
dropped (the loader counts and reports the drops). ``FEATURES[kind]`` is the exact output schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from datasets import Features, List, Value

from ..task_formats import extract_strict

Message = dict[str, str]

_MESSAGE = {"role": Value("string"), "content": Value("string")}
FEATURES: dict[str, Features] = {
    "text": Features({"text": Value("string")}),
    "sft": Features({"messages": List(_MESSAGE)}),
    "preference": Features({"prompt": List(_MESSAGE), "chosen": List(_MESSAGE), "rejected": List(_MESSAGE)}),
    "gsm8k": Features({"question": Value("string"), "answer": Value("string")}),
    "sst2": Features({"sentence": Value("string"), "label": Value("int64"), "idx": Value("int64")}),
}


def normalize_text(row: dict) -> dict | None:
    """Pretraining/perplexity text: kept verbatim; empty lines (WikiText's blank rows) are dropped."""
    text = row["text"]
    return {"text": text} if text and text.strip() else None


def normalize_alpaca(row: dict) -> dict | None:
    """Alpaca (instruction, input, output) -> one user turn (instruction, then the input if any) and the answer."""
    instruction, extra, output = row["instruction"].strip(), (row["input"] or "").strip(), row["output"].strip()
    if not instruction or not output:
        return None
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": output}]}


_SPEAKER = re.compile(r"\n\n(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh_transcript(transcript: str) -> list[Message] | None:
    """An hh-rlhf transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") as alternating user/assistant messages.

    None when it does not start with a Human turn, the roles do not alternate, or a turn is empty.
    """
    pieces = _SPEAKER.split(transcript)
    if pieces[0].strip() or len(pieces) < 3:
        return None
    messages = [
        {"role": _ROLES[speaker], "content": content.strip()} for speaker, content in zip(pieces[1::2], pieces[2::2])
    ]
    expected_roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(messages))]
    if [m["role"] for m in messages] != expected_roles or not all(m["content"] for m in messages):
        return None
    return messages


def normalize_hh_rlhf(row: dict) -> dict | None:
    """hh-rlhf chosen/rejected transcripts -> TRL's conversational prompt/chosen/rejected.

    The prompt is the longest common prefix of turns, cut back to end on a user turn; chosen and rejected
    are the diverging remainders, which start with an assistant turn. Rows whose two sides do not
    diverge, or that fail to parse, are dropped.
    """
    chosen, rejected = parse_hh_transcript(row["chosen"]), parse_hh_transcript(row["rejected"])
    if chosen is None or rejected is None:
        return None
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared and chosen[shared - 1]["role"] != "user":
        shared -= 1
    prompt, chosen_tail, rejected_tail = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt or not chosen_tail or not rejected_tail or chosen_tail == rejected_tail:
        return None
    return {"prompt": prompt, "chosen": chosen_tail, "rejected": rejected_tail}


def normalize_gsm8k(row: dict) -> dict | None:
    """GSM8K question/answer, kept as is; answers without a final "#### N" line are dropped."""
    question, answer = row["question"].strip(), row["answer"].strip()
    if not question or extract_strict(answer) is None:
        return None
    return {"question": question, "answer": answer}


def normalize_sst2(row: dict) -> dict | None:
    """SST-2 sentence/label/idx; unlabelled rows (GLUE's test split has label -1) are dropped."""
    label = int(row["label"])
    if label not in (0, 1) or not row["sentence"].strip():
        return None
    return {"sentence": row["sentence"].strip(), "label": label, "idx": int(row["idx"])}


NORMALIZERS: dict[str, Callable[[dict], dict | None]] = {
    "text": normalize_text,
    "sft": normalize_alpaca,
    "preference": normalize_hh_rlhf,
    "gsm8k": normalize_gsm8k,
    "sst2": normalize_sst2,
}


def batched_normalizer(kind: str) -> Callable[[dict], dict]:
    """The kind's row normaliser as a ``datasets`` batched map function that can drop rows."""
    normalize, columns = NORMALIZERS[kind], list(FEATURES[kind])

    def apply(batch: dict[str, list]) -> dict[str, list]:
        rows = (dict(zip(batch, values)) for values in zip(*batch.values()))
        kept = [out for out in map(normalize, rows) if out is not None]
        return {column: [out[column] for out in kept] for column in columns}

    return apply
