"""The GRPO stage's prompts and rewards: GSM8K training problems asked as the evaluation asks them, and scored by the
evaluation's own rules or by the trained verifier.

A reward is a TRL reward function, `f(prompts, completions, **dataset columns) -> list[float]`, one value per
completion; the prompt dataset keeps each problem's `question` and `answer` for them. Chat prompts are conversations,
and TRL then hands each completion over as a list of messages whose last one is the assistant's turn.

- `exact_match`: 1.0 when the completion's final answer is the reference's, by `task_formats.is_correct` with the
  flexible-extract rule (the last number; what the evaluation reports), else 0.0.
- `answer_format`: 1.0 when the solution states its answer on a `#### N` line (lm-eval's strict-match finds one).
- `verifier`: the trained verifier's score of `format_verifier_input(question, solution)`, exactly the text it was
  trained on and the evaluation scores (not TRL's chat-templated prompt and completion), in batches
  (`evaluation.verifier.Verifier`).
"""

from __future__ import annotations

import functools
import importlib
import logging

from modeling_modern_llm.calculator import calculator_logits_processor

from modeling_modern_llm.task_formats import (
    extract_strict,
    format_prompt,
    format_verifier_input,
    gsm8k_chat_messages,
    is_correct,
    truncate_at_stop,
)

logger = logging.getLogger(__name__)
REWARD_NAMES = ("exact_match", "answer_format", "verifier")


def completion_text(completion) -> str:
    """The text of one completion: the assistant message's content (chat prompts) or the string itself."""
    return completion[-1]["content"] if isinstance(completion, list) else completion


def exact_match(completions, answer, **kwargs) -> list[float]:
    """1.0 for a completion whose final answer is the reference's (the evaluation's flexible-extract rule)."""
    return [
        float(is_correct(completion_text(c), reference, mode="flexible")) for c, reference in zip(completions, answer)
    ]


def answer_format(completions, **kwargs) -> list[float]:
    """1.0 for a completion that states its answer on a `#### N` line (strict-match finds it)."""
    return [float(extract_strict(truncate_at_stop(completion_text(c))) is not None) for c in completions]


class VerifierReward:
    """The trained verifier's score of each solution, on the text it was trained on (`format_verifier_input`)."""

    def __init__(self, path: str, device, batch_size: int = 32):
        from modeling_modern_llm.evaluation.verifier import Verifier

        self.__name__ = "verifier"  # TRL names the reward's metrics after it (rewards/verifier/mean)
        self.verifier = Verifier.from_pretrained(path, device=str(device), batch_size=batch_size)

    def __call__(self, prompts, completions, question, **kwargs) -> list[float]:
        return self.verifier.score(
            [format_verifier_input(q, completion_text(c)) for q, c in zip(question, completions)]
        )


def reward_functions(names: list[str], verifier_path: str | None, device, verifier_batch_size: int = 32) -> list:
    """The reward callables for `names` (`REWARD_NAMES` or dotted import paths), in order (`reward_weights`' order)."""
    rewards = []
    for name in names:
        if name == "verifier":
            rewards.append(VerifierReward(verifier_path, device, verifier_batch_size))
        elif name in REWARD_NAMES:
            rewards.append(globals()[name])
        else:
            module, _, function = name.rpartition(".")
            rewards.append(getattr(importlib.import_module(module), function))
    return rewards


def sample_with_calculator(trainer, tokenizer) -> None:
    """Make the trainer's policy sample with GSM8K's calculator (`calculator_logits_processor`).

    TRL's transformers path calls `generate` on the unwrapped training model with a `GenerationConfig`, which cannot
    carry a logits processor, so the processor is bound to that model's `generate`. The filled-in values stay in the
    completions the loss sees, as in the evaluation's calculator tasks. vLLM generation is refused by the stage's
    checks, so no other path samples.
    """
    model = trainer.model
    model.generate = functools.partial(model.generate, logits_processor=calculator_logits_processor(tokenizer))


def gsm8k_prompts(rows, tokenizer, max_prompt_tokens: int, shots: list[dict] = (), chat: bool = True):
    """GSM8K rows with a `prompt` column, asked as the evaluation asks: with `chat`, the conversation of
    `gsm8k_chat_messages` (the solved `shots` as earlier turns, then the question as the user's message), which TRL
    puts through the chat template; else lm-eval's completion prompt (`format_prompt`). Prompts longer than
    `max_prompt_tokens` are dropped (TRL does not cut them), so prompt and completion fit the model's positions."""

    def add_prompt(row):
        if chat:
            prompt = gsm8k_chat_messages(row["question"], shots)
            ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        else:
            prompt = format_prompt(row["question"], shots)
            ids = tokenizer(prompt)["input_ids"]
        return {"prompt": prompt, "prompt_tokens": len(ids)}

    dataset = rows.map(add_prompt)
    kept = dataset.filter(lambda row: row["prompt_tokens"] <= max_prompt_tokens)
    if hasattr(dataset, "__len__") and len(kept) < len(dataset):  # (a streamed dataset has no length)
        logger.warning(
            "%d of %d prompts are longer than %d tokens (max_position_embeddings - max_completion_length) "
            "and are left out",
            len(dataset) - len(kept),
            len(dataset),
            max_prompt_tokens,
        )
    return kept.remove_columns("prompt_tokens")


__all__ = [
    "REWARD_NAMES",
    "VerifierReward",
    "answer_format",
    "completion_text",
    "exact_match",
    "gsm8k_prompts",
    "reward_functions",
]
