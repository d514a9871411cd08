"""The verifier's token-level objective (Cobbe et al. 2021), as a thin subclass of TRL's `RewardTrainer`.

`RewardTrainer` trains pairwise: a correct and a wrong solution of one problem, Bradley-Terry on the last token's
score. Cobbe et al. found a token-level verifier better: every sampled solution is one example labelled by its final
answer, the score head predicts that label at every token of the solution (a value function: is this solution, so
far, heading for the right answer?), and keeping the language-modelling loss on the correct solutions helps further.
Every sample counts, also those of problems the policy always or never solves, which give no pair.

The model is the same `*ForSequenceClassification` (one label) either way, and its score at inference is the head's
logit at the last token, as `AutoModelForSequenceClassification` returns it: evaluation needs nothing new. The
per-token values and the hidden states are read from the score head with a forward hook, so the forward call is the
model's own (DDP, PEFT and the MoE router losses behave as under `RewardTrainer`); the last token's value is the
pooled score itself. The language-modelling logits use the input embeddings, so the loss needs tied embeddings
(the verifier has no LM head of its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import RewardTrainer

IGNORE = -100.0  # label of the tokens that are not the solution's (the question, padding)


def token_level_examples(records: list[dict], tokenizer, format_input, prompt_of) -> dict[str, list]:
    """``input_ids`` and per-token ``labels`` of each sampled solution: its correctness (1.0 / 0.0) on every token of
    the solution, `IGNORE` on the prompt's. ``format_input(question, solution)`` is the verifier's whole input and
    ``prompt_of(question)`` its prompt part (a prefix of it): the tokens whose text starts at or after the prompt's
    end are the solution's."""
    texts = [format_input(record["question"], record["solution"]) for record in records]
    encoded = tokenizer(texts, return_offsets_mapping=True)
    labels = []
    for record, text, offsets in zip(records, texts, encoded["offset_mapping"]):
        start = len(prompt_of(record["question"]))
        if not text.startswith(prompt_of(record["question"])):
            raise ValueError(f"the verifier's input does not start with its prompt: {text[:80]!r}")
        value = 1.0 if record["correct"] else 0.0
        labels.append([value if begin >= start else IGNORE for begin, _ in offsets])
    return {"input_ids": encoded["input_ids"], "labels": labels}


@dataclass
class DataCollatorForTokenLevelVerifier:
    """Right-pads ``input_ids`` (with ``pad_token_id``), ``attention_mask`` and ``labels`` (with `IGNORE`)."""

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        length = max(len(example["input_ids"]) for example in examples)
        input_ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE)
        for row, example in enumerate(examples):
            size = len(example["input_ids"])
            input_ids[row, :size] = torch.tensor(example["input_ids"])
            attention_mask[row, :size] = 1
            labels[row, :size] = torch.tensor(example["labels"], dtype=torch.float)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class TokenLevelVerifierTrainer(RewardTrainer):
    """`RewardTrainer` on labelled samples (`token_level_examples`) with the token-level value loss plus
    ``lm_loss_coef`` times the language-modelling loss on the correct solutions."""

    def __init__(self, *args, lm_loss_coef: float = 1.0, **kwargs):
        self.lm_loss_coef = lm_loss_coef
        tokenizer = kwargs.get("processing_class")
        kwargs.setdefault("data_collator", DataCollatorForTokenLevelVerifier(tokenizer.pad_token_id))
        super().__init__(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        if lm_loss_coef and not getattr(model.config.get_text_config(), "tie_word_embeddings", False):
            raise ValueError("lm_loss_coef > 0 needs tied word embeddings (the verifier has no LM head); set it to 0")

    def _prepare_dataset(self, dataset: Dataset, processing_class, args, dataset_name: str) -> Dataset:
        if args.max_length is None:
            return dataset
        return dataset.filter(lambda example: len(example["input_ids"]) <= args.max_length)

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["input_ids", "labels"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        unwrapped = self.accelerator.unwrap_model(model)
        captured = {}
        hook = unwrapped.score.register_forward_hook(
            lambda module, args, output: captured.update(hidden=args[0], values=output)
        )
        try:
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
        finally:
            hook.remove()
        # The last real token's value is the pooled score (the verifier's output): taken from it, so whatever the
        # pooled path adds to the backward pass (MoE load balancing) stays in it.
        last = inputs["attention_mask"].sum(-1) - 1
        rows = torch.arange(len(last), device=last.device)
        values = captured["values"].squeeze(-1).float().index_put((rows, last), outputs.logits.squeeze(-1).float())
        solution = labels != IGNORE
        value_loss = F.binary_cross_entropy_with_logits(values[solution], labels[solution])
        loss = value_loss
        correct = labels.amax(-1) == 1.0
        lm_loss = None
        if self.lm_loss_coef and correct.any():
            hidden = captured["hidden"][correct, :-1]  # position t predicts token t+1
            targets = inputs["input_ids"][correct, 1:]
            predicted = solution[correct, 1:]
            logits = hidden[predicted] @ unwrapped.get_input_embeddings().weight.T
            lm_loss = F.cross_entropy(logits.float(), targets[predicted])
            loss = loss + self.lm_loss_coef * lm_loss

        with torch.no_grad():
            scores = outputs.logits.squeeze(-1).float()
            gather = self.accelerator.gather_for_metrics
            self._metrics[mode]["value_loss"].append(gather(value_loss.detach()).mean().item())
            if lm_loss is not None:
                self._metrics[mode]["lm_loss"].append(gather(lm_loss.detach()).mean().item())
            self._metrics[mode]["accuracy"].append(gather(((scores > 0) == correct).float().mean()).mean().item())
            self._metrics[mode]["mean_reward"].append(gather(scores.mean()).mean().item())
        return (loss, outputs) if return_outputs else loss
