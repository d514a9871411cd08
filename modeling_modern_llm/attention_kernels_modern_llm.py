"""The attention kernels of ModernLLM: which kernels can apply the learned sinks (the capability table and its check),
and `sdpa_attention_with_sinks`, the kernel that `attn_implementation="sdpa"` runs, exact with sinks in outputs and
gradients on PyTorch's own fused kernels.

It travels with `save_pretrained` beside `modeling_modern_llm.py`, which imports it: torch and transformers only.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

# What each attention implementation can do for this model, read from the kernels' sources and transformers'
# integration code (eager and sdpa are tested on a CPU; benchmarks/gpu_model_check.py compares the GPU ones to eager):
#   sinks_forward:  the kernel adds the sink logit to its softmax (transformers hands it over as `s_aux`);
#   sinks_backward: it also returns the sink's gradient, so the sinks train;
#   varlen:         it runs padding-free (packed) batches without a dense T x T mask.
# The flash_attn 2 and 3 packages have no sink input: transformers would drop the sinks silently. vLLM's FA3 takes
# them forward only (its backward returns no sink gradient). FA4 (`flash_attn.cute`) has both, on SM90/SM100 (its SM80
# forward asserts that no sink is given). transformers loads FA4 through the `kernels` package as
# "kernels-community/flash-attn4" when `flash_attention_4` is asked for without the package
# (`FLASH_ATTN_KERNEL_FALLBACK` in modeling_flash_attention_utils.py), and flash_attention_3 as vllm-flash-attn3.
ATTENTION_CAPABILITIES = {
    "eager": {"sinks_forward": True, "sinks_backward": True, "varlen": False},
    "sdpa": {"sinks_forward": True, "sinks_backward": True, "varlen": False},
    "flex_attention": {"sinks_forward": True, "sinks_backward": True, "varlen": True},
    "flash_attention_4": {"sinks_forward": True, "sinks_backward": True, "varlen": True},
    "kernels-community/flash-attn4": {"sinks_forward": True, "sinks_backward": True, "varlen": True},
    "kernels-community/vllm-flash-attn3": {"sinks_forward": True, "sinks_backward": False, "varlen": True},
    "flash_attention_2": {"sinks_forward": False, "sinks_backward": False, "varlen": True},
    "flash_attention_3": {"sinks_forward": False, "sinks_backward": False, "varlen": True},
    "kernels-community/flash-attn2": {"sinks_forward": False, "sinks_backward": False, "varlen": True},
    "kernels-community/flash-attn3": {"sinks_forward": False, "sinks_backward": False, "varlen": True},
}


def attention_capabilities(name: str) -> dict[str, bool]:
    """What `attn_implementation=name` can do: `{"sinks_forward", "sinks_backward", "varlen"}` -> bool. A name not in
    `ATTENTION_CAPABILITIES` gets all False, so an unknown kernel is never trusted with the sinks."""
    return dict(ATTENTION_CAPABILITIES.get(name, {"sinks_forward": False, "sinks_backward": False, "varlen": False}))


def check_attention_implementation(name: str, attention_sinks: bool, training: bool) -> str | None:
    """Why `attn_implementation=name` cannot run a model with these settings, as one sentence naming the kernels that
    can, or None when it can. Needs no model, so configs can be validated before anything is loaded; the model runs
    it when its kernel is chosen (serving) and in a forward pass that will train. `training`: the sinks must receive
    gradients."""
    if not attention_sinks:
        return None  # without sinks every kernel computes this model exactly
    needed = "sinks_backward" if training else "sinks_forward"
    if attention_capabilities(name)[needed]:
        return None
    able = ", ".join(repr(other) for other, can in ATTENTION_CAPABILITIES.items() if can[needed])
    if name not in ATTENTION_CAPABILITIES:
        problem = f"attn_implementation={name!r} is not a kernel this model knows, so it cannot tell whether it "
        problem += "applies the attention sinks"
    elif training and attention_capabilities(name)["sinks_forward"]:
        problem = f"attn_implementation={name!r} applies the attention sinks but returns no gradient for them, so they "
        problem += "would never train (it serves an eval-mode model or one under torch.no_grad())"
    else:
        problem = f"attn_implementation={name!r} has no attention-sink input and would silently drop the sinks"
    wanted = "train the sinks" if training else "apply the sinks"
    return f"{problem}. This model has attention_sinks=True; kernels that {wanted}: {able}."


def _cpu_flash_attention_with_sinks(query, key, value, sinks, attention_mask, is_causal, scaling):
    """PyTorch's CPU flash kernel, its output rescaled by `keep = sigmoid(lse - sink)`, the softmax mass the sink leaves
    to the real keys (`lse`: the log-sum-exp of each query's scores over the real keys). Returns (out, lse, keep)."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        query, key, value, 0.0, is_causal, attn_mask=attention_mask, scale=scaling
    )  # (B, H, q, D), (B, H, q) in float32
    keep = torch.sigmoid(lse - sinks.view(-1, 1).to(lse.dtype)).unsqueeze(-1).to(out.dtype)  # (B, H, q, 1)
    return out * keep, lse, keep


class CPUFlashAttentionWithSinks(torch.autograd.Function):
    """`_cpu_flash_attention_with_sinks` with an exact backward, the sink's gradient included.

    Rescaling alone loses the gradient through `lse` (the kernel's backward ignores it). It is recovered by handing
    the kernel's own backward `grad_out = keep * dy` and `out = y` (the rescaled output): its term
    `rowsum(grad_out * out)` then equals `keep * rowsum(dy * y)`, which gives exactly the sink-normalised
    `dS = P' * (dy . v - rowsum(dy * y))`. The sink's own gradient is `-sum over queries of (1 - keep) * rowsum(dy * y)`.
    """

    @staticmethod
    def forward(ctx, query, key, value, sinks, attention_mask, is_causal, scaling):
        out, lse, keep = _cpu_flash_attention_with_sinks(query, key, value, sinks, attention_mask, is_causal, scaling)
        ctx.save_for_backward(query, key, value, out, lse, keep, attention_mask)
        ctx.is_causal, ctx.scaling, ctx.sinks_dtype = is_causal, scaling, sinks.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, out, lse, keep, attention_mask = ctx.saved_tensors
        grad_query, grad_key, grad_value = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out * keep,
            query,
            key,
            value,
            out,
            lse,
            0.0,
            ctx.is_causal,
            attn_mask=attention_mask,
            scale=ctx.scaling,
        )
        row_dot = torch.linalg.vecdot(grad_out.float(), out.float()).unsqueeze(-1)  # (B, H, q, 1)
        grad_sinks = -((1 - keep.float()) * row_dot).sum(dim=(0, 2, 3))
        return grad_query, grad_key, grad_value, grad_sinks.to(ctx.sinks_dtype), None, None, None


def additive_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True = attend) as the additive float mask some kernels take; a float mask in `dtype`."""
    if attention_mask is None:
        return None
    if attention_mask.dtype == torch.bool:
        return torch.zeros_like(attention_mask, dtype=dtype).masked_fill(~attention_mask, torch.finfo(dtype).min)
    return attention_mask.to(dtype)


def cpu_flash_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux, **kwargs):
    """Sinks on PyTorch's CPU flash kernels, exact in outputs and gradients (`CPUFlashAttentionWithSinks`); without
    gradients (decoding, evaluation) the same forward runs without autograd's bookkeeping."""
    # The raw kernel wants one dtype, and autocast does not cast its inputs as it does SDPA's: run in the autocast
    # dtype, as F.scaled_dot_product_attention would (under bf16 autocast q/k leave RoPE in float32, v in bfloat16).
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else query.dtype
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    attention_mask = additive_mask(attention_mask, dtype)
    is_causal = attention_mask is None and query.shape[2] > 1
    if torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value, s_aux)):
        attn_output = CPUFlashAttentionWithSinks.apply(query, key, value, s_aux, attention_mask, is_causal, scaling)
    else:
        attn_output = _cpu_flash_attention_with_sinks(query, key, value, s_aux, attention_mask, is_causal, scaling)[0]
    return attn_output.transpose(1, 2), None  # (B, q, H, D)


def widened_sdpa_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux, **kwargs):
    """Sinks through `F.scaled_dot_product_attention` on any device, exact in outputs and gradients.

    The sink becomes one extra key per head with a zero value. Queries and keys get extra coordinates: a query's
    first extra coordinate is `sink / scaling`, real keys have 0 there and the sink key has 1, so the sink key's score
    is exactly the head's sink logit while every other score is unchanged. The sink key is shared by all query heads,
    so grouped-query attention still works, and SDPA's autograd gives the sink its gradient.
    """
    batch, heads, q_len, head_dim = query.shape
    # CUDA's flash / memory-efficient kernels want head dims that are multiples of 8; CPU's flash kernel takes any.
    width = head_dim + (1 if query.device.type == "cpu" else 8 - head_dim % 8)
    # Without a mask SDPA takes its fast `is_causal` path (upper-left aligned). A throw-away query in front keeps that
    # path valid: real query i is then row i+1 and sees the sink key plus keys 0..i.
    dummy = int(attention_mask is None)
    wide_query = query.new_zeros(batch, heads, dummy + q_len, width)
    wide_query[:, :, dummy:, :head_dim] = query
    wide_query[:, :, dummy:, head_dim] = (s_aux / scaling).to(query.dtype)[None, :, None]
    wide_key = key.new_zeros(batch, key.shape[1], 1 + key.shape[2], width)
    wide_key[:, :, 0, head_dim] = 1.0  # the sink key, first
    wide_key[:, :, 1:, :head_dim] = key
    wide_value = F.pad(value, (0, width - head_dim, 1, 0))  # zero value for the sink key
    if attention_mask is not None:
        attention_mask = F.pad(attention_mask, (1, 0), value=True if attention_mask.dtype == torch.bool else 0.0)
    attn_output, _ = sdpa_attention_forward(
        module, wide_query, wide_key, wide_value, attention_mask, scaling=scaling, **kwargs
    )
    return attn_output[:, dummy:, :, :head_dim], None  # (B, q, H, D)


def decoding_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux, **kwargs):
    """One query per row (a decoding step) with sinks: the sink is one more entry on each 1 x T score row, appended
    before the softmax and dropped after. Widening the whole cache by a sink key at every step would cost more."""
    batch, heads, _, head_dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    grouped = query.reshape(batch, kv_heads, heads // kv_heads, head_dim)  # (B, KV, G, D): the heads sharing a KV head
    scores = (grouped @ key.transpose(2, 3) * scaling).view(batch, heads, 1, kv_len)  # (B, H, 1, T)
    if attention_mask is not None:
        scores = scores + additive_mask(attention_mask, scores.dtype)
    sinks = s_aux.view(1, heads, 1, 1).expand(batch, heads, 1, 1).to(scores.dtype)
    weights = torch.cat([scores, sinks], dim=-1).softmax(dim=-1, dtype=torch.float32)[..., :-1]  # (B, H, 1, T)
    attn_output = weights.to(value.dtype).view(batch, kv_heads, -1, kv_len) @ value  # (B, KV, G, D)
    return attn_output.view(batch, 1, heads, head_dim), None  # (B, 1, H, D)


def sdpa_attention_with_sinks(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    s_aux: torch.Tensor | None = None,
    dropout: float = 0.0,
    **kwargs,
):
    """`attn_implementation="sdpa"`: transformers' SDPA without sinks; with sinks PyTorch's fused kernels still, exact
    in outputs and gradients.

    A CPU without dropout runs the flash kernels and rescales their output (`cpu_flash_attention_with_sinks`); other
    devices widen queries and keys by a sink key (`widened_sdpa_attention_with_sinks`), except when decoding one token
    (`decoding_attention_with_sinks`).
    """
    if s_aux is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if query.device.type == "cpu" and dropout == 0.0:
        return cpu_flash_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux)
    if query.shape[2] == 1 and dropout == 0.0:
        return decoding_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux)
    return widened_sdpa_attention_with_sinks(
        module, query, key, value, attention_mask, scaling, s_aux, dropout=dropout, **kwargs
    )
