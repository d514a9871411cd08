"""The token-level verifier objective: labels on the solution's tokens only, a loss equal to its definition, and a
verifier that learns to rank a separable toy set."""

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from modeling_modern_llm import ModernLLMConfig, ModernLLMForSequenceClassification
from modeling_modern_llm.task_formats import format_verifier_input, verifier_prompt
from modeling_modern_llm.tokenizer import train_tokenizer
from modeling_modern_llm.training import VerifierConfig
from modeling_modern_llm.training.verifier_trainer import (
    IGNORE,
    DataCollatorForTokenLevelVerifier,
    TokenLevelVerifierTrainer,
    token_level_examples,
)

QUESTIONS = [
    f"Tom has {a} apples and finds {b} more. How many apples does Tom have?" for a in range(2, 9) for b in (3, 4)
]


def _records():
    """Per question one right and one wrong solution; the wrong one opens with "Hmm," (a signal a tiny model learns)."""
    records = []
    for question in QUESTIONS:
        a, b = (int(word) for word in question.split() if word.isdigit())
        for opening, correct in (("So", True), ("Hmm,", False)):
            total = a + b  # the same numbers either way: only the opening tells them apart
            records.append(
                {
                    "question": question,
                    "correct": correct,
                    "solution": f"{opening} Tom has {a}+{b} = <<{a}+{b}={total}>>{total} apples.\n#### {total}",
                }
            )
    return records


@pytest.fixture(scope="module")
def tokenizer():
    texts = [format_verifier_input(r["question"], r["solution"]) for r in _records()] * 3
    return train_tokenizer(texts, vocab_size=400, min_frequency=1)


def _model(tokenizer, **overrides):
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config = ModernLLMConfig(**{**settings, **overrides})
    torch.manual_seed(0)
    return ModernLLMForSequenceClassification(config)


def _args(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=2,
        learning_rate=1e-3,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        eval_strategy="no",
        max_length=256,
        seed=0,
        activation_checkpointing=False,
    )
    return VerifierConfig(**{**settings, **overrides})


def test_examples_label_every_solution_token_and_nothing_of_the_prompt(tokenizer):
    records = _records()[:2]
    examples = token_level_examples(records, tokenizer, format_verifier_input, verifier_prompt)
    for record, ids, labels in zip(records, examples["input_ids"], examples["labels"]):
        solution = [token for token, label in zip(ids, labels) if label != IGNORE]
        prompt = [token for token, label in zip(ids, labels) if label == IGNORE]
        assert tokenizer.decode(solution).strip() == record["solution"]
        assert tokenizer.decode(prompt) == verifier_prompt(record["question"])
        assert {label for label in labels if label != IGNORE} == {1.0 if record["correct"] else 0.0}


def test_the_loss_is_the_token_level_value_loss_plus_the_lm_loss_on_correct_solutions(tokenizer, tmp_path):
    model = _model(tokenizer)
    examples = token_level_examples(_records()[:4], tokenizer, format_verifier_input, verifier_prompt)
    trainer = TokenLevelVerifierTrainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=Dataset.from_dict(examples),
        processing_class=tokenizer,
        lm_loss_coef=0.5,
    )
    batch = DataCollatorForTokenLevelVerifier(tokenizer.pad_token_id)(
        [{key: examples[key][i] for key in examples} for i in range(4)]
    )
    loss = trainer.compute_loss(model, dict(batch))

    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    values, labels = model.score(hidden).squeeze(-1), batch["labels"]
    solution = labels != IGNORE
    expected = F.binary_cross_entropy_with_logits(values[solution], labels[solution])
    correct = labels.amax(-1) == 1.0
    logits = hidden[correct, :-1] @ model.model.embed_tokens.weight.T
    targets, predicted = batch["input_ids"][correct, 1:], solution[correct, 1:]
    expected = expected + 0.5 * F.cross_entropy(logits[predicted], targets[predicted])
    torch.testing.assert_close(loss, expected)


def test_the_lm_loss_needs_tied_embeddings(tokenizer, tmp_path):
    examples = Dataset.from_dict(
        token_level_examples(_records()[:2], tokenizer, format_verifier_input, verifier_prompt)
    )
    with pytest.raises(ValueError, match="tied word embeddings"):
        TokenLevelVerifierTrainer(
            model=_model(tokenizer, tie_word_embeddings=False),
            args=_args(tmp_path),
            train_dataset=examples,
            processing_class=tokenizer,
            lm_loss_coef=1.0,
        )


@pytest.mark.slow
def test_training_teaches_the_verifier_to_rank_its_solutions(tokenizer, tmp_path):
    """Trained on labelled solutions, it scores each question's right solution above its wrong one (the toy's wrong
    solutions open with "Hmm,": the test is of the training, not of what a verifier can learn)."""
    records = _records()
    model = _model(tokenizer)
    examples = Dataset.from_dict(token_level_examples(records, tokenizer, format_verifier_input, verifier_prompt))
    trainer = TokenLevelVerifierTrainer(
        model=model,
        args=_args(tmp_path, max_steps=60, learning_rate=3e-3),
        train_dataset=examples,
        processing_class=tokenizer,
        lm_loss_coef=0.2,
    )
    trainer.train()
    value_losses = [entry["value_loss"] for entry in trainer.state.log_history if "value_loss" in entry]
    assert value_losses[-1] < 0.5 * value_losses[0]
    model.eval()
    texts = [format_verifier_input(r["question"], r["solution"]) for r in records]
    with torch.no_grad():
        scores = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits.squeeze(-1).tolist()
    assert all(scores[i] > scores[i + 1] for i in range(0, len(records), 2))
