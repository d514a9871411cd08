"""StreamingLLM decoding for ModernLLM: `StreamingSinkCache` keeps the first tokens of every layer's cache plus a recent
window, so generation runs past `max_position_embeddings` with constant memory, and `StreamingGenerationMixin` is the
`generate(streaming_window=..., streaming_sink_tokens=...)` hook that builds it and maps `generate`'s inputs onto it.

It travels with `save_pretrained` beside `modeling_modern_llm.py`, which imports it: torch and transformers only.
"""

import torch
from transformers import GenerationMixin
from transformers.cache_utils import Cache, DynamicLayer
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, rotate_half


class StreamingSinkLayer(DynamicLayer):
    """One layer of `StreamingSinkCache`: the first `sink_tokens` entries plus the most recent `window` entries.

    When entries are evicted from the middle, the kept window slides left by that many slots, so positions always
    count slots in the cache, as in StreamingLLM, and never exceed `sink_tokens + window + new tokens`. The stored
    keys stay exactly as they were first rotated; each step rotates them in float32, once, from those originals to
    their current slots. Re-rotating stored keys at every eviction would compound the rounding in bf16 (a key shifted
    1,000 times ends up with ~95% relative error).
    """

    def __init__(self, sink_tokens: int, window: int, inv_freq: torch.Tensor):
        super().__init__()
        self.sink_tokens, self.window, self.inv_freq = sink_tokens, window, inv_freq
        self.evicted = 0
        self.evicted_before = None  # (slots,) per stored entry: evictions before it arrived; it has moved since by
        # `evicted - evicted_before` slots

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states)  # (B, KV, slots, D), keys as first rotated
        arrived = torch.full((key_states.shape[-2],), self.evicted, dtype=torch.long, device=keys.device)
        self.evicted_before = arrived if self.evicted_before is None else torch.cat([self.evicted_before, arrived])
        current_keys = self._at_current_slots(keys)  # this step attends to everything kept so far plus its tokens
        overflow = keys.shape[-2] - self.sink_tokens - self.window
        if overflow > 0:
            kept = slice(self.sink_tokens + overflow, None)
            self.keys = torch.cat([keys[..., : self.sink_tokens, :], keys[..., kept, :]], dim=-2)
            self.values = torch.cat([values[..., : self.sink_tokens, :], values[..., kept, :]], dim=-2)
            self.evicted_before = torch.cat([self.evicted_before[: self.sink_tokens], self.evicted_before[kept]])
            self.evicted += overflow
        return current_keys, values

    def _at_current_slots(self, keys):
        """Rotates each window entry back by the evictions since it arrived (rotations compose additively); the
        sink entries never move."""
        if self.evicted == 0 or keys.shape[-2] <= self.sink_tokens:
            return keys  # nothing has moved yet (a zero shift would be exact too, but costs a pass)
        shifts = self.evicted_before[self.sink_tokens :] - self.evicted  # (W,) <= 0
        freqs = shifts[:, None].float() * self.inv_freq.to(keys.device, torch.float32)  # (W, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (W, D)
        window = keys[..., self.sink_tokens :, :].float()  # (B, KV, W, D)
        window = window * emb.cos() + rotate_half(window) * emb.sin()
        return torch.cat([keys[..., : self.sink_tokens, :], window.to(keys.dtype)], dim=-2)

    def reset(self) -> None:
        super().reset()
        self.evicted, self.evicted_before = 0, None


class StreamingSinkCache(Cache):
    """StreamingLLM cache: keeps the first `sink_tokens` tokens' keys/values plus a recent `window`, so a model can
    generate far beyond `max_position_embeddings` with constant memory. Use it through
    `model.generate(..., streaming_window=W, streaming_sink_tokens=S)` or pass it as `past_key_values`.

    Positions are slots in the cache (kept keys are rotated to their new slots on eviction), so they stay below
    `S + W + prompt length`. `generate` keeps a full-length mask and absolute positions, which
    `StreamingGenerationMixin` maps onto the slots; a forward pass called directly takes them in slots (or none).
    Assumes a static RoPE (default, linear, yarn...; not `dynamic`). With left-padded batches the sink slots of the
    shorter rows hold padding, which stays masked.
    """

    def __init__(self, config, sink_tokens: int = 4, window: int | None = None):
        window = config.max_position_embeddings - sink_tokens if window is None else window
        if sink_tokens < 0 or window < 1:
            raise ValueError(f"StreamingSinkCache needs sink_tokens >= 0 and window >= 1, got {sink_tokens}, {window}.")
        inv_freq = LlamaRotaryEmbedding(config).inv_freq  # this model's RoPE is Llama's (tested)
        layers = [StreamingSinkLayer(sink_tokens, window, inv_freq) for _ in range(config.num_hidden_layers)]
        super().__init__(layers=layers)
        self.sink_tokens = sink_tokens

    def to_cache_frame(self, attention_mask, position_ids, query_length: int):
        """Maps `generate`'s full-length 2D mask and absolute positions onto the kept slots."""
        if position_ids is not None:
            position_ids = position_ids - self.layers[0].evicted
        stored = self.get_seq_length()
        if attention_mask is not None and attention_mask.ndim == 2 and attention_mask.shape[-1] > stored + query_length:
            recent = stored - self.sink_tokens + query_length
            attention_mask = torch.cat([attention_mask[:, : self.sink_tokens], attention_mask[:, -recent:]], dim=-1)
        return attention_mask, position_ids


class StreamingGenerationMixin(GenerationMixin):
    """`GenerationMixin`, plus StreamingLLM decoding: `generate(..., streaming_window=W, streaming_sink_tokens=S)`
    keeps the first S tokens and the last W in the cache, so generation can run past `max_position_embeddings`."""

    def generate(self, *args, streaming_window: int | None = None, streaming_sink_tokens: int = 4, **kwargs):
        if streaming_window is not None:
            if kwargs.get("past_key_values") is not None:
                raise ValueError("Pass either `streaming_window` or `past_key_values` to generate, not both.")
            kwargs["past_key_values"] = StreamingSinkCache(self.config, streaming_sink_tokens, streaming_window)
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids,
        next_sequence_length=None,
        past_key_values=None,
        attention_mask=None,
        inputs_embeds=None,
        is_first_iteration=False,
        **kwargs,
    ):
        """transformers' inputs for the next step; with a `StreamingSinkCache`, the full-length 2D attention mask and
        the absolute positions that `generate` keeps are mapped onto the kept slots. (transformers reads this
        signature: `inputs_embeds` must stay named.)"""
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        if isinstance(past_key_values, StreamingSinkCache):
            tokens = model_inputs.get("input_ids")
            tokens = model_inputs["inputs_embeds"] if tokens is None else tokens
            model_inputs["attention_mask"], model_inputs["position_ids"] = past_key_values.to_cache_frame(
                model_inputs.get("attention_mask"), model_inputs.get("position_ids"), tokens.shape[1]
            )
        return model_inputs
