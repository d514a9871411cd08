"""Attention statistics per layer and head: mass on the first token, mass on the learned sink, entropy.

Conventions (the report states them next to the numbers):
- Rows are the attention probabilities a model returns with ``output_attentions=True``. With attention
  sinks the softmax has one extra column per head (the learned sink logit) that is dropped from the
  returned maps, so a row sums to ``1 - sink mass``; without sinks the sink mass is 0.
- Entropy is in bits over the full softmax, the sink column included, so it is comparable with and
  without sinks.
- Query position 0 is left out of every average: it can only see itself, so it says nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch

STATISTICS = ("first_token_mass", "sink_mass", "entropy_bits")


def head_statistics(attention: torch.Tensor) -> dict[str, list[float]]:
    """Per-head averages over query positions 1.. of one layer's ``[heads, query, key]`` attention map."""
    if attention.dim() != 3 or attention.shape[1] != attention.shape[2] or attention.shape[1] < 2:
        raise ValueError(f"expected a [heads, T, T] attention map with T >= 2, got shape {tuple(attention.shape)}")
    rows = attention[:, 1:, :].double()  # [heads, T-1, T]
    sink = (1.0 - rows.sum(-1)).clamp_min(0.0)  # [heads, T-1]
    plogp = torch.where(rows > 0, rows * torch.log2(rows), torch.zeros_like(rows)).sum(-1)
    sink_plogp = torch.where(sink > 0, sink * torch.log2(sink), torch.zeros_like(sink))
    return {
        "first_token_mass": rows[:, :, 0].mean(-1).tolist(),
        "sink_mass": sink.mean(-1).tolist(),
        "entropy_bits": (-(plogp + sink_plogp)).mean(-1).tolist(),
    }


def layer_statistics(per_example: Sequence[Sequence[torch.Tensor]]) -> list[dict]:
    """Per-layer statistics averaged over examples (and heads for the layer value).

    ``per_example[e][l]`` is layer ``l``'s ``[heads, T_e, T_e]`` map for example ``e`` (batch dimension removed).
    Returns ``[{"layer", "first_token_mass", "sink_mass", "entropy_bits", "per_head": {stat: [per head]}}]``.
    """
    if not per_example:
        raise ValueError("no examples given")
    num_layers = len(per_example[0])
    layers = []
    for layer in range(num_layers):
        stats = [head_statistics(example[layer]) for example in per_example]
        per_head = {
            name: [sum(s[name][h] for s in stats) / len(stats) for h in range(len(stats[0][name]))]
            for name in STATISTICS
        }
        layers.append({"layer": layer, **{name: sum(v) / len(v) for name, v in per_head.items()}, "per_head": per_head})
    return layers
