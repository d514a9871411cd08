"""SST-2 by label-word log-likelihood: equal to a direct computation, on GPT-2 and on our model alike."""

import random

import pytest
import torch
import torch.nn.functional as F

from modeling_modern_llm.evaluation.lm import CausalLM
from modeling_modern_llm.evaluation.sst2 import (
    build_context,
    draw_demonstrations,
    evaluate_sst2,
)

ROWS = [{"sentence": s, "label": l, "idx": i} for i, (s, l) in enumerate([
    ("a great movie , full of charm .", 1), ("a dull , tedious mess .", 0), ("the plot is gripping .", 1),
    ("i hated every minute .", 0), ("charming and funny .", 1), ("not worth your time .", 0)])]


def direct_label_scores(model, tokenizer, sentence: str, demonstrations=()) -> list[float]:
    """log p(" negative"), log p(" positive") after lm-eval's prompt, from a plain forward pass each."""
    context = build_context(sentence, demonstrations)
    context_ids = tokenizer(context)["input_ids"]
    scores = []
    for word in (" negative", " positive"):
        ids = tokenizer(context + word)["input_ids"]
        with torch.no_grad():
            log_probs = F.log_softmax(model(torch.tensor([ids])).logits[0], -1)
        scores.append(sum(log_probs[t - 1, ids[t]].item() for t in range(len(context_ids), len(ids))))
    return scores


@pytest.mark.parametrize("checkpoint", ["gpt2", "modern_llm"])
@pytest.mark.parametrize("num_fewshot", [0, 2])
def test_accuracy_equals_direct_loglikelihood_comparison(checkpoint, num_fewshot, tiny_gpt2_dir, modern_llm_run):
    path = tiny_gpt2_dir if checkpoint == "gpt2" else str(modern_llm_run / "pretrain_final")
    lm = CausalLM.from_pretrained(path, device="cpu", batch_size=4)  # the same loader for a baseline and our model
    demonstrations = draw_demonstrations(ROWS, num_fewshot, seed=3)
    result = evaluate_sst2(lm, ROWS, demonstrations=demonstrations)
    expected = []
    for row in ROWS:
        negative, positive = direct_label_scores(lm.model, lm.tokenizer, row["sentence"], demonstrations)
        expected.append(int(positive > negative))
    assert result["predictions"] == expected
    assert result["accuracy"] == pytest.approx(sum(p == r["label"] for p, r in zip(expected, ROWS)) / len(ROWS))


def test_demonstrations_are_fixed_by_the_seed():
    assert draw_demonstrations(ROWS, 3, seed=1) == draw_demonstrations(ROWS, 3, seed=1)
    assert any(draw_demonstrations(ROWS, 3, seed=s) != draw_demonstrations(ROWS, 3, seed=1) for s in range(2, 6))
    context = build_context("ok .", draw_demonstrations(ROWS, 2, seed=1))
    assert context.count("Question: Is this sentence positive or negative?") == 3 and context.endswith("ok .\nQuestion: Is this sentence positive or negative?\nAnswer:")
    with pytest.raises(ValueError, match="needs 10 training rows"):
        draw_demonstrations(ROWS, 10, seed=0)


def test_chat_template_needs_one(tiny_gpt2_dir):
    lm = CausalLM.from_pretrained(tiny_gpt2_dir, device="cpu")
    with pytest.raises(ValueError, match="no chat template"):
        evaluate_sst2(lm, ROWS, chat_template=True)


def test_chat_template_wraps_the_prompt_and_scores_bare_label_words(tiny_gpt2_dir):
    lm = CausalLM.from_pretrained(tiny_gpt2_dir, device="cpu")
    lm.tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    context = build_context(ROWS[0]["sentence"], tokenizer=lm.tokenizer)
    assert context == f"<user>Is this sentence positive or negative?\n\n{ROWS[0]['sentence']}\n<assistant>"
    result = evaluate_sst2(lm, ROWS[:2], chat_template=True)
    scores = [s for s, _ in lm.loglikelihood([(build_context(r["sentence"], tokenizer=lm.tokenizer), w) for r in ROWS[:2] for w in ("negative", "positive")])]
    assert result["predictions"] == [int(scores[1] > scores[0]), int(scores[3] > scores[2])]


def test_chat_demonstrations_are_earlier_turns(tiny_gpt2_dir):
    lm = CausalLM.from_pretrained(tiny_gpt2_dir, device="cpu")
    lm.tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    shot = {"sentence": "a dull film .", "label": 0}
    context = build_context("ok .", [shot], tokenizer=lm.tokenizer)
    assert context == ("<user>Is this sentence positive or negative?\n\na dull film .\n<assistant>negative\n"
                       "<user>Is this sentence positive or negative?\n\nok .\n<assistant>")


def test_chat_prompt_asks_what_the_embedded_sft_data_asks():
    """The chat prompt must be the instruction the embedded SFT rows and chat transcripts use, word for word."""
    from modeling_modern_llm.data.embedded import generate_alpaca
    from modeling_modern_llm.evaluation.sst2 import INSTRUCTION, format_instruction

    rows = [r for r in generate_alpaca(random.Random(0), "train", 200) if r["output"] in ("positive", "negative")]
    assert rows and all(r["instruction"] == INSTRUCTION for r in rows)
    assert format_instruction(rows[0]["input"]) == f"{rows[0]['instruction']}\n\n{rows[0]['input']}"
