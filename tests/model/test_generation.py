"""`generate` through transformers' Cache classes: cached == uncached, left padding == rows alone, sampling with
several return sequences, and StreamingLLM generation past the trained context."""

import pytest
import torch

from modeling_modern_llm import StreamingSinkCache
from modeling_modern_llm import modeling_modern_llm as modern
from modeling_modern_llm import streaming_modern_llm as streaming

from .conftest import PAD_ID, left_padded_batch, tiny_model

GREEDY = dict(do_sample=False, pad_token_id=PAD_ID, eos_token_id=None)


@pytest.mark.parametrize(
    "attn_implementation, extras",
    [("eager", dict()), ("sdpa", dict()), ("sdpa", dict(num_experts=4, num_experts_per_tok=2))],
)
def test_cached_and_uncached_greedy_decoding_agree(attn_implementation, extras):
    model = tiny_model(attn_implementation, **extras)
    input_ids, attention_mask = left_padded_batch([6, 6])
    cached = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12, use_cache=True, **GREEDY)
    uncached = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=12, use_cache=False, **GREEDY)
    assert cached.shape == (2, 18)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_left_padded_batch_equals_each_row_alone(attn_implementation):
    model = tiny_model(attn_implementation)
    lengths = [9, 4, 6]
    input_ids, attention_mask = left_padded_batch(lengths)
    batch_logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    batch_tokens = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, **GREEDY)
    for row, length in enumerate(lengths):
        alone = input_ids[row : row + 1, -length:]
        torch.testing.assert_close(batch_logits[row, -length:], model(alone).logits[0], rtol=1e-4, atol=1e-5)
        alone_tokens = model.generate(alone, max_new_tokens=8, **GREEDY)
        assert torch.equal(batch_tokens[row, -8:], alone_tokens[0, -8:])


def test_generating_from_input_embeddings_equals_generating_from_ids():
    """transformers reads the model's `prepare_inputs_for_generation` signature to accept `inputs_embeds`."""
    model = tiny_model("sdpa")
    input_ids, attention_mask = left_padded_batch([6, 4])
    from_ids = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, **GREEDY)
    embeds = model.get_input_embeddings()(input_ids)
    from_embeds = model.generate(inputs_embeds=embeds, attention_mask=attention_mask, max_new_tokens=6, **GREEDY)
    assert torch.equal(from_embeds, from_ids[:, input_ids.shape[1] :])


def test_sampling_with_several_return_sequences():
    model = tiny_model("sdpa")
    input_ids, attention_mask = left_padded_batch([5, 3])
    settings = dict(
        attention_mask=attention_mask,
        max_new_tokens=10,
        do_sample=True,
        temperature=1.5,
        top_k=0,
        num_return_sequences=3,
        pad_token_id=PAD_ID,
        eos_token_id=None,
    )
    torch.manual_seed(1)
    first = model.generate(input_ids, **settings)
    torch.manual_seed(1)
    again = model.generate(input_ids, **settings)
    assert first.shape == (6, 15)
    assert torch.equal(first, again)  # reproducible under a seed
    assert torch.equal(first[:3, :5], input_ids[0].expand(3, 5))  # prompts repeated per return sequence
    assert len({tuple(row.tolist()) for row in first[:3, 5:]}) > 1  # and the samples differ


def test_streaming_within_the_window_equals_the_regular_cache():
    model = tiny_model("sdpa")
    input_ids = left_padded_batch([10])[0]
    regular = model.generate(input_ids, max_new_tokens=20, **GREEDY)
    streaming = model.generate(input_ids, max_new_tokens=20, streaming_window=40, streaming_sink_tokens=4, **GREEDY)
    assert torch.equal(regular, streaming)


def test_streaming_generates_twice_the_trained_context_with_bounded_positions():
    model = tiny_model("sdpa")  # max_position_embeddings=64
    positions_seen = []
    model.model.rotary_emb.register_forward_hook(
        lambda module, args, kwargs, out: positions_seen.append(kwargs["position_ids"].max().item()), with_kwargs=True
    )
    cache = StreamingSinkCache(model.config, sink_tokens=4, window=28)
    input_ids = left_padded_batch([10])[0]
    output = model.generate(input_ids, max_new_tokens=128, past_key_values=cache, **GREEDY)
    assert output.shape == (1, 138)
    assert cache.get_seq_length() == 32 and cache.layers[0].evicted == 137 - 32
    assert max(positions_seen) < 33 < model.config.max_position_embeddings


def test_streaming_steps_equal_a_fresh_pass_over_the_kept_tokens():
    """With one layer a token's key/value depend only on the token and its position, so after evictions each step
    must equal an uncached forward over (first S tokens + last W tokens + the new one) at positions 0..S+W."""
    model = tiny_model("sdpa", num_hidden_layers=1)
    sink_tokens, window, prompt_length = 3, 7, 15
    input_ids = left_padded_batch([prompt_length])[0]
    output = model.generate(
        input_ids, max_new_tokens=12, streaming_window=window, streaming_sink_tokens=sink_tokens, **GREEDY
    )[0]
    assert output[prompt_length] == model(input_ids).logits[0, -1].argmax()  # prefill sees the whole prompt
    for j in range(prompt_length + 1, len(output)):
        kept = torch.cat([output[:sink_tokens], output[j - 1 - window : j]])
        assert output[j] == model(kept[None]).logits[0, -1].argmax(), j


@pytest.mark.parametrize(
    "rope_parameters",
    [
        None,
        {"rope_type": "linear", "factor": 2.0},
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    ],
)
def test_the_streaming_cache_rotates_with_the_models_rope(rope_parameters):
    """The cache re-rotates kept keys with the frequencies the model rotated them with (scaled RoPE types included)."""
    model = tiny_model("sdpa", **({} if rope_parameters is None else {"rope_parameters": rope_parameters}))
    cache = StreamingSinkCache(model.config)
    assert torch.equal(cache.layers[0].inv_freq, model.model.rotary_emb.inv_freq)


def test_kept_keys_are_rotated_to_their_new_slots_from_their_originals():
    model = tiny_model("sdpa")
    rotary = model.model.rotary_emb
    layer = streaming.StreamingSinkLayer(sink_tokens=1, window=4, inv_freq=rotary.inv_freq)
    keys = torch.randn(1, 2, 7, 16)  # before RoPE

    def at(positions, raw):
        cos, sin = rotary(raw, torch.tensor([positions]))
        return modern.apply_rotary_pos_emb(raw, raw, cos, sin)[0]

    attended, _ = layer.update(at(range(6), keys[:, :, :6]), keys[:, :, :6])  # 6 entries, 1 sink + window 4
    torch.testing.assert_close(attended, at(range(6), keys[:, :, :6]))  # this step sees all 6 where they were
    assert layer.evicted == 1 and layer.get_seq_length() == 5
    # Token 6 arrives at slot 5 (position 6 - 1 evicted); the window (tokens 2..5) moved one slot left.
    attended, _ = layer.update(at([5], keys[:, :, 6:]), keys[:, :, 6:])
    kept = [0, 2, 3, 4, 5, 6]
    torch.testing.assert_close(attended, at(range(6), keys[:, :, kept]), rtol=1e-5, atol=1e-6)
    assert layer.evicted == 2 and torch.equal(layer.values, keys[:, :, [0, 3, 4, 5, 6]])
    layer.reset()
    assert layer.evicted == 0 and layer.evicted_before is None


def test_streaming_in_bf16_does_not_drift_after_hundreds_of_evictions():
    """The bf16-vs-fp32 logit gap after ~300 evictions stays within twice the gap before the first one. Re-rotating
    stored bf16 keys at every eviction compounds their rounding (a key kept 150 steps is rotated 150 times)."""
    fp32 = tiny_model("sdpa")
    bf16 = tiny_model("sdpa", randomize_sinks=False)
    bf16.load_state_dict(fp32.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    sink_tokens, window, steps = 4, 150, 450
    caches = [StreamingSinkCache(m.config, sink_tokens, window) for m in (fp32, bf16)]
    tokens = torch.randint(3, 128, (1, steps), generator=torch.Generator().manual_seed(0))  # teacher-forced
    gaps = []
    with torch.no_grad():
        for step in range(steps):
            token = tokens[:, step : step + 1]
            exact = fp32(input_ids=token, past_key_values=caches[0], use_cache=True).logits
            rounded = bf16(input_ids=token, past_key_values=caches[1], use_cache=True).logits.float()
            gaps.append((exact - rounded).abs().mean().item())
    assert caches[1].layers[0].evicted == steps - sink_tokens - window
    before = sum(gaps[: sink_tokens + window]) / (sink_tokens + window)
    after = sum(gaps[-100:]) / 100
    assert after <= 2 * before, (before, after)


def test_streaming_option_conflicts_with_an_explicit_cache():
    model = tiny_model("sdpa")
    with pytest.raises(ValueError, match="not both"):
        model.generate(
            left_padded_batch([4])[0],
            max_new_tokens=2,
            streaming_window=8,
            past_key_values=StreamingSinkCache(model.config),
            **GREEDY,
        )
