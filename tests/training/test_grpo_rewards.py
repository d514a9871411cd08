"""The GRPO stage's rewards and prompts: the evaluation's own correctness and format rules, the verifier scoring the
text it was trained on, and GSM8K training problems asked as the evaluation asks them, within the model's positions."""

import pytest
import torch
from datasets import Dataset

from modeling_modern_llm import ModernLLMConfig, ModernLLMForSequenceClassification
from modeling_modern_llm.task_formats import format_prompt, format_verifier_input, is_correct
from modeling_modern_llm.tokenizer import train_tokenizer
from modeling_modern_llm.training.grpo import (
    VerifierReward,
    answer_format,
    exact_match,
    gsm8k_prompts,
    reward_functions,
)

REFERENCE = "Ava starts with 5*5 = <<5*5=25>>25 cookies.\nAfter using 2, 25-2 = <<25-2=23>>23 are left.\n#### 23"
QUESTION = "Ava has 5 packs of 5 cookies. Ava uses 2 of them. How many cookies are left?"
SOLUTIONS = [
    "5*5 = <<5*5=25>>25 cookies, 25-2 = <<25-2=23>>23 left.\n#### 23",  # right, strict and flexible
    "25 - 2 = 23 cookies are left, so the answer is 23.",  # right by the last number, no #### line
    "5*5 = 25 cookies, 25-3 = 22 left.\n#### 22",  # wrong
    "#### 23<|im_end|>\n<|im_start|>user\nAnd then 99",  # right until the stop sequence, junk after it
    "I do not know.",  # no number at all
]


def chat(text):
    return [{"role": "assistant", "content": text}]  # how TRL hands over a completion of a chat prompt


def test_exact_match_is_the_evaluations_flexible_extract_rule():
    expected = [float(is_correct(text, REFERENCE, mode="flexible")) for text in SOLUTIONS]
    assert expected == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert exact_match([chat(t) for t in SOLUTIONS], answer=[REFERENCE] * len(SOLUTIONS)) == expected
    assert exact_match(SOLUTIONS, answer=[REFERENCE] * len(SOLUTIONS)) == expected  # completion prompts: strings


def test_answer_format_rewards_a_final_answer_line():
    assert answer_format([chat(t) for t in SOLUTIONS]) == [1.0, 0.0, 1.0, 1.0, 0.0]


@pytest.fixture(scope="module")
def verifier_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verifier_final")
    tokenizer = train_tokenizer([QUESTION, REFERENCE, *SOLUTIONS] * 4, vocab_size=300)
    config = ModernLLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    ModernLLMForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_verifier_reward_scores_the_text_the_verifier_was_trained_on(verifier_folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reward = VerifierReward(str(verifier_folder), "cpu", batch_size=2)  # 5 solutions: batches with padding
    scores = reward(
        prompts=[[{"role": "user", "content": QUESTION}]] * len(SOLUTIONS),
        completions=[chat(t) for t in SOLUTIONS],
        question=[QUESTION] * len(SOLUTIONS),
        answer=[REFERENCE] * len(SOLUTIONS),
    )
    model = AutoModelForSequenceClassification.from_pretrained(verifier_folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(verifier_folder)
    with torch.no_grad():  # one at a time, no padding: tokenizer(format_verifier_input(question, solution))
        expected = [
            model(**tokenizer(format_verifier_input(QUESTION, t), return_tensors="pt")).logits[0, 0].item()
            for t in SOLUTIONS
        ]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert len(set(round(s, 6) for s in scores)) > 1  # the solutions are told apart
    assert reward.__name__ == "verifier"  # TRL's metrics: rewards/verifier/mean


def test_rewards_are_named_or_imported_in_order(verifier_folder):
    rewards = reward_functions(
        ["answer_format", "modeling_modern_llm.training.grpo.exact_match", "verifier"], str(verifier_folder), "cpu"
    )
    assert rewards[:2] == [answer_format, exact_match] and isinstance(rewards[2], VerifierReward)


def test_prompts_are_asked_as_the_evaluation_asks_them_within_the_positions():
    tokenizer = train_tokenizer([QUESTION, REFERENCE] * 4, vocab_size=300)
    rows = Dataset.from_list(
        [
            {"question": QUESTION, "answer": REFERENCE},
            {"question": QUESTION + " And more words." * 40, "answer": REFERENCE},
        ]
    )
    chat_prompts = gsm8k_prompts(rows, tokenizer, max_prompt_tokens=100)
    assert len(chat_prompts) == 1  # the long question would not leave room for the completion: left out
    assert chat_prompts[0]["prompt"] == [{"role": "user", "content": QUESTION}]  # the evaluation's 0-shot chat prompt
    assert chat_prompts[0]["answer"] == REFERENCE and chat_prompts[0]["question"] == QUESTION  # kept for the rewards
    shot = {"question": "Tom has 2 apples and gets 3 more. How many apples?", "answer": "2+3 = 5\n#### 5"}
    with_shot = gsm8k_prompts(rows.select([0]), tokenizer, max_prompt_tokens=200, shots=[shot])
    assert with_shot[0]["prompt"] == [
        {"role": "user", "content": shot["question"]},
        {"role": "assistant", "content": shot["answer"]},
        {"role": "user", "content": QUESTION},
    ]
    completion = gsm8k_prompts(rows.select([0]), tokenizer, max_prompt_tokens=200, shots=[shot], chat=False)
    assert completion[0]["prompt"] == format_prompt(QUESTION, [shot])  # lm-eval's k-shot completion prompt
