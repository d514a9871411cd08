"""SST-2 accuracy by comparing the log-likelihood of the label words, 0-shot and k-shot.

The default prompt is lm-evaluation-harness's ``sst2`` task (``{sentence}\\nQuestion: Is this sentence
positive or negative?\\nAnswer:`` scored against `` negative`` / `` positive``), so 0-shot accuracy
equals lm-eval's on the same model and data. k-shot prepends k solved training examples, drawn once
with a fixed seed and shared by every test sentence. ``chat_template=True`` puts the prompt through the
tokenizer's chat template instead, demonstrations as earlier turns (for SFT/DPO models); those numbers do not
compare with published ones.
"""

from __future__ import annotations

import random
from typing import Sequence

from .lm import CausalLM
from .metrics import Accuracy

INSTRUCTION = "Is this sentence positive or negative?"
QUESTION = f"\nQuestion: {INSTRUCTION}\nAnswer:"
LABEL_WORDS = ("negative", "positive")  # index = GLUE label id


def format_example(sentence: str) -> str:
    return f"{sentence}{QUESTION}"


def format_instruction(sentence: str) -> str:
    """The chat prompt's user message: the question as an instruction, then the sentence (Alpaca's
    instruction/input layout), not lm-eval's completion prompt, which a chat model never saw in SFT."""
    return f"{INSTRUCTION}\n\n{sentence}"


def draw_demonstrations(train_rows: Sequence[dict], k: int, seed: int) -> list[dict]:
    """k training rows, the same for every test sentence given the seed."""
    if k > len(train_rows):
        raise ValueError(f"{k}-shot SST-2 needs {k} training rows, the few-shot split has {len(train_rows)}")
    return random.Random(seed).sample(list(train_rows), k)


def build_context(sentence: str, demonstrations: Sequence[dict] = (), tokenizer=None) -> str:
    """lm-eval's few-shot layout: "<example> <label>" blocks, blank-line separated, then the sentence.
    With ``tokenizer``, its chat template with each demonstration a user/assistant exchange
    (as lm-eval's ``--fewshot_as_multiturn``) of ``format_instruction`` and the label word, ending with
    the assistant's turn opened."""
    if tokenizer is None:
        shots = [f"{format_example(d['sentence'])} {LABEL_WORDS[d['label']]}" for d in demonstrations]
        return "\n\n".join([*shots, format_example(sentence)])
    messages = []
    for demonstration in demonstrations:
        messages += [{"role": "user", "content": format_instruction(demonstration["sentence"])},
                     {"role": "assistant", "content": LABEL_WORDS[demonstration["label"]]}]
    messages.append({"role": "user", "content": format_instruction(sentence)})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def evaluate_sst2(lm: CausalLM, rows: Sequence[dict], *, demonstrations: Sequence[dict] = (), chat_template: bool = False) -> dict:
    """``{"accuracy", "num_examples", "predictions"}``: the label whose word is likelier given the prompt."""
    if chat_template and not getattr(lm.tokenizer, "chat_template", None):
        raise ValueError("chat_template=True but the tokenizer has no chat template; drop the option for this model")
    separator = "" if chat_template else " "  # the assistant turn starts the answer; the raw prompt needs a space
    requests = []
    for row in rows:
        context = build_context(row["sentence"], demonstrations, lm.tokenizer if chat_template else None)
        requests += [(context, separator + word) for word in LABEL_WORDS]
    scores = [score for score, _ in lm.loglikelihood(requests, desc="sst2")]
    predictions = [int(scores[2 * i + 1] > scores[2 * i]) for i in range(len(rows))]  # ties go to "negative", as argmax
    references = [int(row["label"]) for row in rows]
    accuracy = Accuracy().compute(predictions=predictions, references=references)["accuracy"]
    return {"accuracy": accuracy, "num_examples": len(rows), "predictions": predictions}
