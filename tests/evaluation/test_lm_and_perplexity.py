"""The scoring wrapper against direct computations, and perplexity on a distribution whose value is known."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import build_gpt2

from modeling_modern_llm.evaluation.lm import CausalLM
from modeling_modern_llm.evaluation.metrics import count_words
from modeling_modern_llm.evaluation.perplexity import evaluate_perplexity

TEXT = "Once upon a time there was a little dog who liked to play in the park. " * 6


def direct_loglikelihood(model, ids: list[int], first: int) -> float:
    """sum_t>=first log p(ids[t] | ids[:t]) from one plain forward pass."""
    with torch.no_grad():
        log_probs = F.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    return sum(log_probs[t - 1, ids[t]].item() for t in range(first, len(ids)))


@pytest.fixture
def lm(tiny_tokenizer):
    return CausalLM(build_gpt2(tiny_tokenizer, n_positions=64), tiny_tokenizer, batch_size=3)


def test_uniform_model_has_perplexity_equal_to_vocab_size(tiny_tokenizer):
    model = build_gpt2(tiny_tokenizer, n_positions=64)
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(32, len(tiny_tokenizer), bias=False)
    torch.nn.init.zeros_(model.lm_head.weight)  # constant logits: uniform over the vocabulary
    lm = CausalLM(model, tiny_tokenizer, batch_size=4)
    metrics, counts = evaluate_perplexity(lm, [TEXT, "a second row"], stride=16)
    vocab = len(tiny_tokenizer)
    corpus = TEXT + "\n\n" + "a second row"
    assert counts["num_tokens"] == len(tiny_tokenizer(corpus)["input_ids"]) > lm.max_length  # several windows
    assert metrics["token_perplexity"] == pytest.approx(vocab, rel=1e-5)
    nll = counts["num_tokens"] * math.log(vocab)
    assert metrics["bits_per_byte"] == pytest.approx(nll / len(corpus.encode()) / math.log(2), rel=1e-5)
    assert metrics["word_perplexity"] == pytest.approx(math.exp(nll / count_words(corpus)), rel=1e-4)


def test_rolling_windows_score_every_token_once(lm):
    ids = list(range(5, 5 + 150))
    for stride in (1, 7, 32, lm.max_length - 1):
        windows = lm.rolling_windows(ids, stride)
        scored = [w[first:] for w, first in windows]
        assert sum(scored, []) == ids and all(len(w) <= lm.max_length and first >= 1 for w, first in windows)
    with pytest.raises(ValueError, match="stride"):
        lm.rolling_windows(ids, lm.max_length)


def test_rolling_loglikelihood_equals_direct_windows(lm):
    ids = lm.encode(TEXT, add_special_tokens=False)
    [(total, n_tokens)] = lm.loglikelihood_rolling([TEXT], stride=20)
    expected = sum(direct_loglikelihood(lm.model, window, first) for window, first in lm.rolling_windows(ids, 20))
    assert n_tokens == len(ids) and total == pytest.approx(expected, abs=1e-3)
    short = "a little dog"
    [(short_total, _)] = lm.loglikelihood_rolling([short], stride=5)  # fits one window: plain conditional chain
    assert short_total == pytest.approx(direct_loglikelihood(lm.model, [lm.prefix_token_id] + lm.encode(short, False), 1), abs=1e-4)


def test_loglikelihood_matches_a_direct_computation(lm):
    requests = [("a great movie\nAnswer:", " positive"), ("a dull mess\nAnswer: ", "negative"), ("x", " y z w")]
    for (context, continuation), (score, greedy) in zip(requests, lm.loglikelihood(requests)):
        context_ids, continuation_ids = lm.encode_pair(context, continuation)
        assert context_ids + continuation_ids == lm.encode(context.rstrip() + context[len(context.rstrip()):] + continuation)
        assert score == pytest.approx(direct_loglikelihood(lm.model, context_ids + continuation_ids, len(context_ids)), abs=1e-4)
        assert isinstance(greedy, bool)


def test_batched_left_padded_greedy_equals_one_prompt_at_a_time(lm):
    prompts = ["Question: Tom has 3 apples", "a", "Once upon a time there was"]
    batched = lm.generate_until(prompts, max_new_tokens=8, stop_sequences=())
    single = [lm.generate_until([p], max_new_tokens=8, stop_sequences=())[0] for p in prompts]
    assert batched == single


def test_samples_come_from_one_generate_call_per_batch(lm, monkeypatch):
    calls = []
    original = lm.model.generate
    monkeypatch.setattr(lm.model, "generate", lambda **kw: calls.append(kw["num_return_sequences"]) or original(**kw))
    lm.batch_size = 8
    outputs = lm.generate_until(["a", "b", "c"], max_new_tokens=4, num_return_sequences=4, do_sample=True)
    assert [len(o) for o in outputs] == [4, 4, 4]
    assert calls == [4, 4]  # 2 prompts x 4 samples fill a batch of 8: two calls, not twelve
