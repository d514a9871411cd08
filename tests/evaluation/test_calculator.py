"""GSM8K's calculator at generation on a tiny model: forced results appear after `<<expression=` (in the prompt or
written by the model), everything else is untouched, batch rows are independent, the cache and sampling change nothing."""

import copy

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerFast

from modeling_modern_llm.calculator import (
    CalculatorLogitsProcessor,
    calculator_logits_processor,
    calculator_result,
    forced_text,
    token_texts,
)

CORPUS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: 3+4 = <<3+4=7>>7 apples.\n#### 7",
    "Once upon a time there was a little dog who liked to play in the park with 2 cats.",
] * 20
PLAIN = "Once upon a time there was"


@pytest.fixture(scope="module")
def tokenizer():
    from modeling_modern_llm.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(CORPUS, vocab_size=300, min_frequency=1)
    tokenizer.padding_side = "left"
    return tokenizer


@pytest.fixture(scope="module")
def model(tokenizer):
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM

    torch.manual_seed(0)
    config = ModernLLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return ModernLLMForCausalLM(config).eval()


def generate(model, tokenizer, prompts, calculator=True, processors=(), **options):
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    chain = LogitsProcessorList([*processors, *(calculator_logits_processor(tokenizer) if calculator else [])])
    options = {"do_sample": False, "max_new_tokens": 8, **options}
    output = model.generate(**inputs, logits_processor=chain, pad_token_id=tokenizer.pad_token_id, **options)
    return [tokenizer.decode(row[inputs["input_ids"].shape[1] :]) for row in output]


def test_results_are_written_as_gsm8k_writes_them():
    assert [
        calculator_result(e) for e in ("48/2", "200/6", "5/2", "3-5", "1,000*3", "0.1+0.2", "3x4", " (2+3)*4 ")
    ] == ["24", "33.33", "2.5", "-2", "3000", "0.3", "12", "20"]
    assert [calculator_result(e) for e in ("apples", "1/0", "2**3", "", "1e308*10")] == [None] * 5
    assert forced_text("so <<12*4=") == ("48>>", "") and forced_text("so <<12*4=4") == ("8>>", "4")
    assert forced_text("<<12*4=48>> and 3") is None and forced_text("<<12*4") is None  # closed; no "=" yet
    assert forced_text("<<12*4=5") is None and forced_text("<<two*4=") is None  # a wrong digit already; no value


def test_each_token_reads_as_it_does_inside_a_text(tokenizer):
    texts = token_texts(tokenizer)
    for text in ("Tom has 3+4 = <<3+4=7>>7 apples", " <<48/2=24>>"):
        assert "".join(texts[i] for i in tokenizer.encode(text, add_special_tokens=False)) == text
    # a SentencePiece-style tokenizer ("▁" for a space, dropped by its decoder at the start of a text)
    spm = Tokenizer(models.BPE(unk_token="<unk>"))
    spm.pre_tokenizer, spm.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    spm.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>"]))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=spm, unk_token="<unk>")
    spaced = token_texts(wrapped)
    ids = wrapped.encode("has 3 apples", add_special_tokens=False)
    assert "".join(spaced[i] for i in ids) == " has 3 apples" and spaced[ids[1]].startswith(" ")


def test_forced_results_appear_in_greedy_and_sampled_generation(model, tokenizer):
    prompts = ["Question: <<12*4=", "so <<6*7=4", "then <<100/3="]
    greedy = generate(model, tokenizer, prompts)
    assert [g[: len(f)] for g, f in zip(greedy, ["48>>", "2>>", "33.33>>"])] == ["48>>", "2>>", "33.33>>"]
    assert not any(g.startswith(("48>>", "2>>")) for g in generate(model, tokenizer, prompts[:2], calculator=False))
    torch.manual_seed(1)
    sampled = generate(model, tokenizer, prompts * 4, do_sample=True, temperature=1.5, top_k=0, max_new_tokens=24)
    written = ["48>>48", "2>>42", "33.33>>33.33"] * 4  # the result, and the number after ">>" that repeats it
    assert all(s.startswith(f) for s, f in zip(sampled, written))
    assert len({s[len(f) :] for s, f in zip(sampled, written)}) > 1  # after that the samples are free again, and differ


def test_the_number_after_the_annotation_repeats_its_result():
    assert forced_text("so <<9*9=81>>") == ("81", "") and forced_text("so <<9*9=81>>8") == ("1", "8")
    assert forced_text("so <<9*9=81>>81") is None and forced_text("so <<9*9=81>> eggs") is None
    assert forced_text("so <<9*9=81>>7") is None  # a number the model wrote otherwise is left alone


def test_the_repeated_result_is_not_extended(model, tokenizer):
    processor = CalculatorLogitsProcessor(tokenizer)
    banned = processor.banned_tokens("so <<9*9=81>>81")
    assert banned and all(processor.texts[i][0].isdigit() or processor.texts[i][0] == "." for i in banned)
    assert processor.banned_tokens("so <<9*9=81>>81 eggs") == []
    greedy = generate(model, tokenizer, ["so <<6*7=42>>"], max_new_tokens=8)[0]
    assert greedy.startswith("42") and not greedy[2:3].isdigit()


def test_unrelated_text_is_untouched_and_batch_rows_are_independent(model, tokenizer):
    prompts = [PLAIN, "Question: <<6*7=", "Tom has <<apples=", "a <<2+2="]
    free = generate(model, tokenizer, prompts, calculator=False, max_new_tokens=12)
    forced = generate(model, tokenizer, prompts, max_new_tokens=12)
    assert forced[0] == free[0] and forced[2] == free[2]  # no "<<": untouched; "<<apples=" does not evaluate
    assert forced[1].startswith("42>>") and forced[3].startswith("4>>") and forced[1] != free[1]
    alone = generate(model, tokenizer, [prompts[1]], max_new_tokens=12)
    assert alone[0].startswith("42>>")


def test_equal_output_with_and_without_the_cache(model, tokenizer):
    prompts = [PLAIN, "Question: <<12*4=", "so <<6*7=4"]
    assert generate(model, tokenizer, prompts, use_cache=True, max_new_tokens=16) == generate(
        model, tokenizer, prompts, use_cache=False, max_new_tokens=16
    )


class Script(LogitsProcessor):
    """Makes the model write `text` first (whatever it would write), then leaves it free: as if it had learned it."""

    def __init__(self, tokenizer, prompt_length: int, text: str):
        self.ids, self.start = tokenizer.encode(text, add_special_tokens=False), prompt_length

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.start
        if step < len(self.ids):
            scores = torch.full_like(scores, -1e9)
            scores[:, self.ids[step]] = 0.0
        return scores


def test_the_model_opening_an_annotation_itself_gets_the_result(model, tokenizer):
    length = tokenizer([PLAIN], return_tensors="pt")["input_ids"].shape[1]
    script = Script(tokenizer, length, " 3 + 4 = <<3+4=")
    written = generate(model, tokenizer, [PLAIN], processors=[script], max_new_tokens=16)[0]
    assert written.startswith(" 3 + 4 = <<3+4=7>>")
    free = generate(model, tokenizer, [PLAIN], calculator=False, processors=[script], max_new_tokens=16)[0]
    assert not free.startswith(" 3 + 4 = <<3+4=7>>")


def test_a_token_that_writes_equals_and_a_result_at_once(tokenizer):
    extended = copy.deepcopy(tokenizer)
    extended.add_tokens(["=7", "=8", "=7>>"])
    processor = CalculatorLogitsProcessor(extended)
    ids = {text: extended.convert_tokens_to_ids(text) for text in ("=7", "=8", "=7>>")}
    assert processor.banned_tokens("so <<3+4") == [ids["=8"]]  # "=7" and "=7>>" write the right result
    assert processor.banned_tokens("so <<apples") == [] and processor.banned_tokens("<<3+4=7>>") == []
    scores = processor(
        torch.tensor([extended.encode("so <<3+4", add_special_tokens=False)]), torch.zeros(1, len(extended))
    )
    assert (
        scores[0, ids["=8"]] == float("-inf")
        and scores[0, ids["=7"]] == 0
        and (scores[0] == 0).sum() == len(extended) - 1
    )


def test_grpo_samples_with_the_calculator_when_asked(model, tokenizer, tmp_path):
    """Through TRL's own sampling path (a GRPOTrainer step), every completion carries the computed result."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from modeling_modern_llm.training.grpo import sample_with_calculator

    seen = []

    def record(completions, **kwargs):
        seen.extend(completions)
        return [0.0] * len(completions)

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        temperature=1.5,
        max_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
    )
    prompts = Dataset.from_dict({"prompt": ["Question: <<12*4=", "then <<100/3="]})
    trainer = GRPOTrainer(
        model=copy.deepcopy(model), reward_funcs=record, args=args, train_dataset=prompts, processing_class=tokenizer
    )
    sample_with_calculator(trainer, tokenizer)
    trainer.train()
    assert len(seen) >= 4 and all(c.startswith(("48>>48", "33.33>>33.33")) for c in seen), seen
