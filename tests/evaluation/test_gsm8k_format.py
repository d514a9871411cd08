"""GSM8K answer extraction on the hard cases (lm-eval's strict and flexible rules)."""

import pytest

from modeling_modern_llm.evaluation.gsm8k_format import (
    extract_answer,
    extract_flexible,
    extract_reference,
    extract_strict,
    format_chat_prompt,
    format_prompt,
    is_correct,
    normalize_number,
    truncate_at_stop,
)


@pytest.mark.parametrize("text, strict, flexible", [
    ("She pays 2*500=1000 dollars.\n#### 1,000", "1000", "1000"),
    ("It costs $18.", None, "18"),
    ("The answer is 18.", None, "18"),
    ("He is down 7 points, so the total is -3", None, "-3"),
    ("#### -12", "-12", "-12"),
    ("Each gets 2.50 dollars. #### 2.50", "2.5", "2.5"),
    ("That is $1,234.00 in total.", None, "1234"),
    ("I do not know.", None, None),
    ("", None, None),
    ("#### 5\nQuestion: what is 3+4?", "5", "4"),  # flexible takes the last number of the raw text
])
def test_extraction_hard_cases(text, strict, flexible):
    assert extract_strict(text) == strict
    assert extract_flexible(text) == flexible


def test_stop_sequences_cut_the_next_question():
    generation = "3+4=7 #### 7\n\nQuestion: Tom has 9 apples. #### 9"
    assert truncate_at_stop(generation) == "3+4=7 #### 7\n\n"
    assert is_correct(generation, "steps\n#### 7") and is_correct(generation, "#### 7", mode="flexible")
    assert extract_answer("no marker, last is 12") == "12" and extract_answer("#### 3 then 4") == "3"


def test_normalisation_and_reference():
    assert [normalize_number(t) for t in ("$1,000.", "18.00", "0.5", "abc", "nan")] == ["1000", "18", "0.5", None, None]
    assert extract_reference("Janet sells 16-3-4=<<16-3-4=9>>9 eggs.\n#### 18") == "18"
    with pytest.raises(ValueError, match="no '#### N' line"):
        extract_reference("an answer without the marker")


def test_fewshot_prompt_layout_is_lm_evals():
    prompt = format_prompt("What is 2+2?", [{"question": "1+1?", "answer": "1+1=2\n#### 2"}])
    assert prompt == "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: What is 2+2?\nAnswer:"


def test_chat_prompt_puts_each_solved_example_in_its_own_turns():
    from modeling_modern_llm.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["Question: how many? Answer: 5 #### 5"] * 30, vocab_size=300, min_frequency=1)
    prompt = format_chat_prompt(tokenizer, "What is 2+2?", [{"question": "1+1?", "answer": "1+1=2\n#### 2\n"}])
    assert prompt == ("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n1+1=2\n#### 2<|im_end|>\n"
                      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
