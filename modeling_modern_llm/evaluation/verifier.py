"""The GSM8K verifier at evaluation time: check that a folder holds one, and score sampled solutions in batches.

A verifier is a sequence-classification model (the verifier recipe's ``ModernLLMForSequenceClassification`` with one
label, or any ``*ForSequenceClassification``) that scores ``task_formats.format_verifier_input(question, solution)``:
the logit for one label, the correct-minus-wrong logit for two; higher means "correct".
"""

from __future__ import annotations

import json
import os
import shlex

import torch
import yaml

from modeling_modern_llm.errors import InputFileError


def check_verifier(path: str) -> None:
    """Raise InputFileError, naming the fix, unless `path` is a saved sequence-classification model."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        raise InputFileError(
            f"--verifier {path}: no config.json there; pass the verifier recipe's output, <run>/verifier_final"
        )
    try:
        with open(config, encoding="utf-8") as handle:
            architectures = json.load(handle).get("architectures") or []
    except (OSError, ValueError) as error:
        raise InputFileError(f"--verifier {path}: config.json is unreadable ({error})") from None
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise InputFileError(
            f"--verifier {path} is a {', '.join(architectures) or 'model of unknown class'}, not a "
            "sequence-classification verifier: pass <run>/verifier_final"
        )


def trained_policy(path: str) -> str | None:
    """The policy a verifier folder was trained on, from its training_summary.json: its `policy`, else the
    `--model_name_or_path` of its command, else its config file's `model_name_or_path`; None if none says."""
    summary_path = os.path.join(path, "training_summary.json")
    try:
        with open(summary_path, encoding="utf-8") as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        return None
    if summary.get("policy"):
        return summary["policy"]
    words = shlex.split(summary.get("command") or "")
    for index, word in enumerate(words):
        if word.startswith("--model_name_or_path"):
            return word.partition("=")[2] or (words[index + 1] if index + 1 < len(words) else None)
    try:
        with open(summary.get("config_path") or "", encoding="utf-8") as handle:
            return (yaml.safe_load(handle) or {}).get("model_name_or_path")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


class Verifier:
    """A verifier model and its tokenizer; `score` runs it over solutions in length-sorted batches."""

    def __init__(self, model, tokenizer, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        if self.tokenizer.pad_token is None:  # the head pools the last non-pad token, so padding must be marked
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu", batch_size: int = 32) -> "Verifier":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        import modeling_modern_llm  # noqa: F401  (registers the Auto classes)

        model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        return cls(model, AutoTokenizer.from_pretrained(path), batch_size)

    @torch.inference_mode()
    def score(self, texts: list[str]) -> list[float]:
        """One score per text (a `format_verifier_input`), batched; the order of `texts` is kept."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        limit = getattr(self.model.config, "max_position_embeddings", None)
        scores: dict[int, float] = {}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            encoded = self.tokenizer(
                [texts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=limit is not None,
                max_length=limit,
            ).to(self.model.device)
            logits = self.model(**encoded).logits.float()
            values = logits[:, 0] if logits.shape[-1] == 1 else logits[:, 1] - logits[:, 0]
            scores.update(zip(batch, values.tolist()))
        return [scores[i] for i in range(len(texts))]
