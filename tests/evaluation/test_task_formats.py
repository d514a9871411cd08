"""The shared task formats are lm-evaluation-harness's: its prompts, stop sequences, answer filters and exact match."""

import random
from pathlib import Path

import lm_eval
import pytest
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter
from lm_eval.tasks._yaml_loader import load_yaml
from lm_eval.utils import apply_template

from modeling_modern_llm import task_formats as formats

LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
GSM8K = load_yaml(LM_EVAL_TASKS / "gsm8k" / "gsm8k.yaml", resolve_func=False)
SST2 = load_yaml(LM_EVAL_TASKS / "glue" / "sst2" / "default.yaml", resolve_func=False)
HARD_GENERATIONS = [
    "She pays 2*500=1000 dollars.\n#### 1,000",
    "It costs $18.",
    "The answer is 18.",
    "so the total is -3",
    "#### -12",
    "Each gets 2.50 dollars. #### 2.50",
    "That is $1,234.00 in total.",
    "I do not know.",
    "",
    "#### 5 and then 7",
    "the answer is 18.00",
    "#### 72\n",
    "10 apples, then.. 4",
    "#### 0",
]


def test_prompts_and_stop_sequences_are_lm_evals():
    doc = {"question": "Tom has 3 apples. How many?", "answer": "3 #### 3", "sentence": "a fine film .", "label": 1}
    assert formats.gsm8k_prompt(doc) == apply_template(GSM8K["doc_to_text"], doc)
    assert formats.sst2_prompt(doc) == apply_template(SST2["doc_to_text"], doc)
    assert formats.sst2_choices(doc) == SST2["doc_to_choice"]
    assert list(formats.GSM8K_STOP_SEQUENCES) == GSM8K["generation_kwargs"]["until"]


@pytest.mark.parametrize("generation", HARD_GENERATIONS)
def test_answer_extraction_and_exact_match_are_lm_evals(generation):
    """Our extraction + normalisation decides correctness exactly as lm-eval's filters + exact_match metric."""
    metric = {
        k: v for k, v in GSM8K["metric_list"][0].items() if k not in ("metric", "aggregation", "higher_is_better")
    }
    reference = "steps\n#### " + (formats.extract_flexible(generation) or "42")  # a reference it matches when it parses
    for filter_config, ours in zip(GSM8K["filter_list"], (formats.extract_strict, formats.extract_flexible)):
        regex = {k: v for k, v in filter_config["filter"][0].items() if k != "function"}
        [[theirs]] = RegexFilter(**regex).apply([[generation]], [{}])
        their_hit = exact_match_hf_evaluate([theirs], [reference], **metric)["exact_match"]
        assert (ours(generation) == formats.gsm8k_reference(reference)) == bool(their_hit), (generation, theirs)
        assert ours(generation) == (None if theirs == "[invalid]" else formats.normalize_answer(theirs))


def test_prompts_with_shots_and_through_the_chat_template():
    from modeling_modern_llm.tokenizer import train_tokenizer

    shot = {"question": "1+1?", "answer": "1+1=2\n#### 2"}
    assert (
        formats.format_prompt("What is 2+2?", [shot])
        == "Question: 1+1?\nAnswer: 1+1=2\n#### 2\n\nQuestion: What is 2+2?\nAnswer:"
    )
    tokenizer = train_tokenizer(["Question: how many? Answer: 5 #### 5"] * 30, vocab_size=300, min_frequency=1)
    assert formats.format_chat_prompt(tokenizer, "What is 2+2?", [shot]) == (
        "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n1+1=2\n#### 2<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert formats.chat_transcript("Hi", "Hello") == tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], tokenize=False
    )


def test_the_sst2_chat_prompt_is_what_the_embedded_sft_data_asks():
    from modeling_modern_llm.data.embedded import generate_alpaca
    from modeling_modern_llm.data.normalizers import normalize_alpaca

    rows = [r for r in generate_alpaca(random.Random(0), "train", 200) if r["output"] in formats.SST2_LABEL_WORDS]
    user = normalize_alpaca(rows[0])["messages"][0]["content"]
    assert rows and user == formats.sst2_chat_prompt({"sentence": rows[0]["input"]})
