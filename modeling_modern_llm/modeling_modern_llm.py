"""ModernLLM: a Llama-style decoder (RMSNorm, RoPE, SwiGLU, GQA) with learned attention sinks that keep SDPA's own
kernels, optional QK-norm, an optional top-k mixture of experts (stacked expert weights, transformers' experts
kernels), and a StreamingLLM cache for generating past the trained context.

Read top-down, each piece before its user, as transformers' `modeling_llama.py`. This file travels with
`save_pretrained` as remote code: it imports only torch and transformers (and its configuration, relatively).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.integrations import use_experts_implementation
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import (
    GenericForSequenceClassification,
    GradientCheckpointingLayer,
)
from transformers.modeling_outputs import (
    MoeCausalLMOutputWithPast,
    MoeModelOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, slice_logits_to_keep
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_modern_llm import ModernLLMConfig

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
    the same check on every forward. `training`: the sinks must receive gradients."""
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

# Every Auto class this model supports, written into `config.auto_map` on save so the folder loads as remote code.
AUTO_MAP = {
    "AutoConfig": "configuration_modern_llm.ModernLLMConfig",
    "AutoModel": "modeling_modern_llm.ModernLLMModel",
    "AutoModelForCausalLM": "modeling_modern_llm.ModernLLMForCausalLM",
    "AutoModelForSequenceClassification": "modeling_modern_llm.ModernLLMForSequenceClassification",
}


class ModernLLMRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


class ModernLLMRotaryEmbedding(nn.Module):
    def __init__(self, config: ModernLLMConfig):
        super().__init__()
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.config = config
        self.rope_type = config.rope_parameters["rope_type"]
        rope_init_fn: Callable = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(config)
        # Non-persistent: `_init_weights` recomputes both after a meta-device load (they are not in the checkpoint).
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: ModernLLMConfig, **kwargs) -> tuple[torch.Tensor, float]:
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x, position_ids):
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x):
    """Rotates half the hidden dims of the input."""
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    """Rotates queries and keys [B, heads, T, D] by the positions' angles (cos/sin [B, T, D])."""
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


class ModernLLMMLP(nn.Module):
    """SwiGLU feed-forward: down(act(gate(x)) * up(x))."""

    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class ModernLLMTopKRouter(nn.Module):
    """Scores every expert per token; returns the raw logits (for the losses) and the chosen top-k with weights."""

    def __init__(self, config):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))

    def forward(self, hidden_states):  # (N, C)
        router_logits = F.linear(hidden_states, self.weight)  # (N, E)
        router_probs = router_logits.softmax(dim=-1, dtype=torch.float32)
        top_k_weights, top_k_index = router_probs.topk(self.top_k, dim=-1)  # (N, k)
        if self.top_k > 1:  # Mixtral renormalises over the chosen experts; with k=1 that would freeze the weight at
            top_k_weights = top_k_weights / top_k_weights.sum(dim=-1, keepdim=True)  # 1, so keep Switch's probability
        return router_logits, top_k_weights.to(hidden_states.dtype), top_k_index


@use_experts_implementation
class ModernLLMExperts(nn.Module):
    """The SwiGLU experts of one MoE layer as two stacked tensors, in Mixtral's layout in transformers 5:
    `gate_up_proj` [E, 2 * I, C] (each expert's gate rows, then its up rows) and `down_proj` [E, C, I].

    A stacked tensor takes part in every step as a whole, so the experts no token chose get a zero gradient instead of
    none: DDP without `find_unused_parameters`, FSDP2's reduce-scatter and ZeRO-3 all need every parameter in every
    step. The kernel is transformers' experts switch, `config._experts_implementation` (`experts_implementation=` in
    `from_pretrained`): "grouped_mm", the default (tokens sorted by expert, one grouped matmul per projection, expert
    counts kept on the device), "batched_mm", or "eager", the dense `forward` below.
    """

    def __init__(self, config):
        super().__init__()
        self.num_experts = config.num_experts
        self.gate_up_proj = nn.Parameter(
            torch.empty(config.num_experts, 2 * config.intermediate_size, config.hidden_size)
        )
        self.down_proj = nn.Parameter(torch.empty(config.num_experts, config.hidden_size, config.intermediate_size))
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states, top_k_index, top_k_weights):  # (N, C), (N, k), (N, k)
        """The dense reference ("eager"): every expert on every token, weighted by its gate (zero where the token did
        not choose it). E / k times the FLOPs of the sparse kernels, but no data-dependent shapes, no host sync."""
        gates = torch.zeros(
            hidden_states.shape[0], self.num_experts, dtype=top_k_weights.dtype, device=hidden_states.device
        ).scatter_add(1, top_k_index, top_k_weights)  # (N, E)
        gate, up = torch.einsum("nc,eoc->eno", hidden_states, self.gate_up_proj).chunk(2, dim=-1)  # (E, N, I) each
        expert_outputs = torch.einsum("eni,eci->enc", self.act_fn(gate) * up, self.down_proj)  # (E, N, C)
        return torch.einsum("enc,ne->nc", expert_outputs, gates.to(expert_outputs.dtype))  # (N, C)


def current_token_mask(attention_mask: torch.Tensor | None, seq_len: int) -> torch.Tensor | None:
    """The 2D padding mask [B, seq_len] of this call's tokens, which the routers saw (None without a 2D mask): with a
    cache, `generate`'s mask also covers the past tokens."""
    if attention_mask is None or attention_mask.ndim != 2:
        return None
    return attention_mask[:, -seq_len:]


def router_z_loss_func(router_logits: tuple[torch.Tensor, ...], token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """ST-MoE router z-loss: mean over real tokens (and layers) of logsumexp(router logits)^2; keeps logits small."""
    z_squared = torch.stack([torch.logsumexp(logits.float(), dim=-1).square() for logits in router_logits])  # (L, N)
    if token_mask is None:
        return z_squared.mean()
    weights = token_mask.reshape(1, -1).to(z_squared)
    return (z_squared * weights).sum() / (weights.sum() * z_squared.shape[0])


class AddAuxiliaryLoss(torch.autograd.Function):
    """`AddAuxiliaryLoss.apply(hidden_states, aux_loss)` returns `hidden_states` unchanged, and in the backward pass
    sends a gradient of 1 into `aux_loss`: the parameters get exactly the gradient they would get if `aux_loss` had
    been added to whatever loss is minimised downstream (DeepSeek-MoE's trick). Router losses thereby reach trainers
    that never see them, e.g. TRL's fused LM-head loss, which calls the base model itself.

    The modules that inject (the MoE blocks, the classifier) multiply their term by their `injected_loss_scale`
    (1.0 by default): a trainer that divides its loss by the micro-batches of a gradient-accumulation window sets it
    to 1 / that number, so the injected gradient is scaled like the loss. An fp16 loss scaler still divides it by
    its scale (use bf16 or fp32).
    """

    @staticmethod
    def forward(ctx, hidden_states, aux_loss):
        ctx.aux_dtype, ctx.aux_shape = aux_loss.dtype, aux_loss.shape
        return hidden_states

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, torch.ones(ctx.aux_shape, dtype=ctx.aux_dtype, device=grad_output.device)


class ModernLLMSparseMoeBlock(nn.Module):
    """Top-k mixture of SwiGLU experts. In training it also adds this layer's share of `router_z_loss_coef *
    z_loss` to the backward pass (`AddAuxiliaryLoss`), so the z-loss reaches every trainer; its value is reported
    by `ModernLLMForCausalLM`."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.router = ModernLLMTopKRouter(config)
        self.experts = ModernLLMExperts(config)
        self.injected_loss_scale = 1.0  # the trainer's loss scale under gradient accumulation (AddAuxiliaryLoss)

    def forward(self, hidden_states, router_token_mask: torch.Tensor | None = None):
        batch_size, seq_len, hidden_size = hidden_states.shape
        tokens = hidden_states.reshape(-1, hidden_size)  # (N, C)
        router_logits, top_k_weights, top_k_index = self.router(tokens)  # (N, E), (N, k), (N, k)
        output = self.experts(tokens, top_k_index, top_k_weights)  # (N, C)
        coef = self.config.router_z_loss_coef
        if coef > 0 and torch.is_grad_enabled() and router_logits.requires_grad:
            # The model's z-loss is the mean over layers of each layer's mean over real tokens.
            z_loss = router_z_loss_func((router_logits,), router_token_mask) / self.config.num_hidden_layers
            output = AddAuxiliaryLoss.apply(output, coef * self.injected_loss_scale * z_loss)
        return output.view(batch_size, seq_len, hidden_size)


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, kv_heads, T, D) -> (B, kv_heads * n_rep, T, D), as `repeat_interleave` on dim 1."""
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    s_aux: torch.Tensor | None = None,
    **kwargs: Unpack[TransformersKwargs],
):
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)

    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling  # (B, H, q, kv)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    if s_aux is not None:
        # The sink is one more softmax column (its value is zero): append its logit, normalise, drop the column.
        sinks = s_aux.view(1, -1, 1, 1).expand(*attn_weights.shape[:-1], 1).to(attn_weights.dtype)
        attn_weights = torch.cat([attn_weights, sinks], dim=-1)
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    if s_aux is not None:
        attn_weights = attn_weights[..., :-1]  # rows now sum to 1 - sink mass
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


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
            grad_out * keep, query, key, value, out, lse, 0.0, ctx.is_causal, attn_mask=attention_mask,
            scale=ctx.scaling,
        )
        row_dot = torch.linalg.vecdot(grad_out.float(), out.float()).unsqueeze(-1)  # (B, H, q, 1)
        grad_sinks = -((1 - keep.float()) * row_dot).sum(dim=(0, 2, 3))
        return grad_query, grad_key, grad_value, grad_sinks.to(ctx.sinks_dtype), None, None, None


def cpu_flash_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux, **kwargs):
    """Sinks on PyTorch's CPU flash kernels, exact in outputs and gradients (`CPUFlashAttentionWithSinks`); without
    gradients (decoding, evaluation) the same forward runs without autograd's bookkeeping."""
    # The raw kernel wants one dtype, and autocast does not cast its inputs as it does SDPA's: run in the autocast
    # dtype, as F.scaled_dot_product_attention would (under bf16 autocast q/k leave RoPE in float32, v in bfloat16).
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else query.dtype
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # the kernel takes an additive mask
        attention_mask = torch.zeros_like(attention_mask, dtype=dtype).masked_fill(~attention_mask, torch.finfo(dtype).min)
    elif attention_mask is not None:
        attention_mask = attention_mask.to(dtype)
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


def sdpa_attention_with_sinks(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    s_aux: torch.Tensor,
    dropout: float = 0.0,
    **kwargs,
):
    """`attn_implementation="sdpa"` with sinks: PyTorch's fused kernels, exact in outputs and gradients.

    A CPU without dropout runs the flash kernels and rescales their output (`cpu_flash_attention_with_sinks`); other
    devices widen queries and keys by a sink key (`widened_sdpa_attention_with_sinks`), except when decoding one token,
    where the sink is one more entry on a 1 x T score row (widening the whole cache every step would cost more).
    """
    if query.device.type == "cpu" and dropout == 0.0:
        return cpu_flash_attention_with_sinks(module, query, key, value, attention_mask, scaling, s_aux)
    if query.shape[2] == 1:
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            attention_mask = torch.zeros_like(attention_mask, dtype=query.dtype).masked_fill(
                ~attention_mask, torch.finfo(query.dtype).min
            )
        attn_output, _ = eager_attention_forward(
            module, query, key, value, attention_mask, scaling, dropout=dropout, s_aux=s_aux, **kwargs
        )
        return attn_output, None
    return widened_sdpa_attention_with_sinks(
        module, query, key, value, attention_mask, scaling, s_aux, dropout=dropout, **kwargs
    )


class ModernLLMAttention(nn.Module):
    """Grouped-query attention with RoPE, optional QK-norm and optional learned sinks; the kernel is chosen by
    `config._attn_implementation` through transformers' attention interface."""

    def __init__(self, config: ModernLLMConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True

        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=False)
        if config.qk_norm:
            self.q_norm = ModernLLMRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = ModernLLMRMSNorm(self.head_dim, eps=config.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = nn.Identity()
        self.sinks = nn.Parameter(torch.zeros(config.num_attention_heads)) if config.attention_sinks else None

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)

        query_states = self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)  # (B, H, T, D)
        key_states = self.k_norm(self.k_proj(hidden_states).view(hidden_shape)).transpose(1, 2)  # (B, KV, T, D)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)

        if past_key_values is not None:
            key_states, value_states = past_key_values.update(key_states, value_states, self.layer_idx)

        implementation = self.config._attn_implementation
        if self.sinks is not None:
            problem = check_attention_implementation(
                implementation, attention_sinks=True, training=self.training and torch.is_grad_enabled()
            )
            if problem is not None:
                raise ValueError(problem)
        if self.sinks is not None and implementation == "sdpa":
            attention_interface = sdpa_attention_with_sinks
        else:
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            s_aux=self.sinks,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        attn_output = self.o_proj(attn_output)
        return attn_output, attn_weights


class ModernLLMDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: ModernLLMConfig, layer_idx: int):
        super().__init__()
        self.self_attn = ModernLLMAttention(config=config, layer_idx=layer_idx)
        self.is_sparse = config.num_experts > 0
        self.mlp = ModernLLMSparseMoeBlock(config) if self.is_sparse else ModernLLMMLP(config)
        self.input_layernorm = ModernLLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = ModernLLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = False,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        router_token_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, _ = self.self_attn(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + hidden_states

        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        if self.is_sparse:
            hidden_states = self.mlp(hidden_states, router_token_mask)
        else:
            hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


class ModernLLMPreTrainedModel(PreTrainedModel):
    config: ModernLLMConfig
    config_class = ModernLLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ModernLLMDecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = False  # the streaming cache reads tensor sizes on the host
    _can_record_outputs = {
        "router_logits": OutputRecorder(ModernLLMTopKRouter, index=0),
        "hidden_states": ModernLLMDecoderLayer,
        "attentions": ModernLLMAttention,
    }

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)  # linears, embeddings, RMSNorms and the RoPE buffers
        if isinstance(module, ModernLLMAttention) and module.sinks is not None:
            init.zeros_(module.sinks)
        elif isinstance(module, ModernLLMTopKRouter):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, ModernLLMExperts):
            init.normal_(module.gate_up_proj, mean=0.0, std=self.config.initializer_range)
            init.normal_(module.down_proj, mean=0.0, std=self.config.initializer_range)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records only the saved class in `auto_map`; list them all so any Auto class loads the folder.
        self.config.auto_map = {**(self.config.auto_map or {}), **AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)


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
    `S + W + prompt length`.
    Assumes a static RoPE (default, linear, yarn...; not `dynamic`). With left-padded batches the sink slots of the
    shorter rows hold padding, which stays masked.
    """

    def __init__(self, config: ModernLLMConfig, sink_tokens: int = 4, window: int | None = None):
        window = config.max_position_embeddings - sink_tokens if window is None else window
        if sink_tokens < 0 or window < 1:
            raise ValueError(f"StreamingSinkCache needs sink_tokens >= 0 and window >= 1, got {sink_tokens}, {window}.")
        inv_freq = ModernLLMRotaryEmbedding(config).inv_freq
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


class ModernLLMModel(ModernLLMPreTrainedModel):
    def __init__(self, config: ModernLLMConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [ModernLLMDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = ModernLLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = ModernLLMRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MoeModelOutputWithPast:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
        if isinstance(past_key_values, StreamingSinkCache):
            attention_mask, position_ids = past_key_values.to_cache_frame(
                attention_mask, position_ids, inputs_embeds.shape[1]
            )
        if position_ids is None:
            past_seen_tokens = past_key_values.get_seq_length() if past_key_values is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)
        # The tokens the MoE layers' z-loss counts: the real ones of this call.
        router_token_mask = current_token_mask(attention_mask, inputs_embeds.shape[1])

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=position_ids,
        )
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        for decoder_layer in self.layers:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                position_ids=position_ids,
                past_key_values=past_key_values,
                use_cache=use_cache,
                router_token_mask=router_token_mask,
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return MoeModelOutputWithPast(last_hidden_state=hidden_states, past_key_values=past_key_values)


@dataclass
class ModernLLMCausalLMOutputWithPast(MoeCausalLMOutputWithPast):
    """`MoeCausalLMOutputWithPast` (`aux_loss` = load-balancing loss) plus the router `z_loss`."""

    z_loss: torch.FloatTensor | None = None


class ModernLLMForCausalLM(ModernLLMPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: ModernLLMConfig):
        super().__init__(config)
        self.model = ModernLLMModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_router_logits: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ModernLLMCausalLMOutputWithPast:
        r"""With experts and `labels`, `loss = lm_loss + router_aux_loss_coef * aux_loss + router_z_loss_coef *
        z_loss`; `output_router_logits` (or the config's) also reports `aux_loss` and `z_loss` without labels.

        The balancing loss enters by value here, as in Mixtral, and TRL adds it itself where it computes the loss
        (SFT's fused LM head, DPO). The z-loss, which no trainer knows, enters by gradient inside the MoE blocks
        (`AddAuxiliaryLoss`), whoever computes the loss; `z_loss` and its term here are values without gradient, so
        it is never counted twice."""
        if output_router_logits is None:
            output_router_logits = self.config.output_router_logits
        output_router_logits = self.config.num_experts > 0 and (output_router_logits or labels is not None)
        outputs: MoeModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_router_logits=output_router_logits,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        aux_loss = z_loss = None
        if output_router_logits:
            token_mask = current_token_mask(attention_mask, outputs.last_hidden_state.shape[1])
            aux_loss = load_balancing_loss_func(
                outputs.router_logits, self.config.num_experts, self.config.num_experts_per_tok, token_mask
            )
            z_loss = router_z_loss_func(outputs.router_logits, token_mask).detach()  # its gradient: the MoE blocks
            if loss is not None:
                loss = loss + self.config.router_aux_loss_coef * aux_loss + self.config.router_z_loss_coef * z_loss

        return ModernLLMCausalLMOutputWithPast(
            loss=loss,
            aux_loss=aux_loss,
            z_loss=z_loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            router_logits=outputs.router_logits,
        )

    def generate(self, *args, streaming_window: int | None = None, streaming_sink_tokens: int = 4, **kwargs):
        """`GenerationMixin.generate`, plus StreamingLLM decoding: with `streaming_window=W` the cache keeps the first
        `streaming_sink_tokens` tokens and the last W, so generation can run past `max_position_embeddings`."""
        if streaming_window is not None:
            if kwargs.get("past_key_values") is not None:
                raise ValueError("Pass either `streaming_window` or `past_key_values` to generate, not both.")
            kwargs["past_key_values"] = StreamingSinkCache(self.config, streaming_sink_tokens, streaming_window)
        return super().generate(*args, **kwargs)


class ModernLLMForSequenceClassification(GenericForSequenceClassification, ModernLLMPreTrainedModel):
    """Verifier / reward head `score` on the last non-pad token (needs `config.pad_token_id` for batches)."""

    def __init__(self, config: ModernLLMConfig):
        # Built directly rather than through `AutoModel.from_config`, so the head never depends on the Auto registry
        # (which a remote-code process does not have).
        ModernLLMPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.model = ModernLLMModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.injected_loss_scale = 1.0  # the trainer's loss scale under gradient accumulation (AddAuxiliaryLoss)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutputWithPast:
        r"""`GenericForSequenceClassification.forward` (the score of each row's last non-pad token). With experts, the
        load-balancing loss's gradient joins the backward pass (`AddAuxiliaryLoss` on the scores): reward trainers
        compute their loss from the scores alone and add no router loss. The z-loss comes from the MoE blocks."""
        coef = self.config.router_aux_loss_coef if self.config.num_experts > 0 else 0.0
        add_balancing = coef > 0 and torch.is_grad_enabled()
        if add_balancing:
            kwargs["output_router_logits"] = True
        outputs: MoeModelOutputWithPast = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.score(outputs.last_hidden_state)  # (B, T, labels)
        batch_size = logits.shape[0]
        pad_token_id = self.config.pad_token_id
        if pad_token_id is None and batch_size != 1:
            raise ValueError("Cannot handle batch sizes > 1 if no padding token is defined.")
        if pad_token_id is None or input_ids is None:
            last_real = -1
        else:  # the rightmost non-pad token, so left and right padding both work
            non_pad = (input_ids != pad_token_id).to(logits.device, torch.int32)
            last_real = (torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32) * non_pad).argmax(-1)
        pooled_logits = logits[torch.arange(batch_size, device=logits.device), last_real]  # (B, labels)

        if add_balancing and outputs.router_logits:
            aux_loss = load_balancing_loss_func(
                outputs.router_logits, self.config.num_experts, self.config.num_experts_per_tok,
                current_token_mask(attention_mask, logits.shape[1]),
            )
            pooled_logits = AddAuxiliaryLoss.apply(pooled_logits, coef * self.injected_loss_scale * aux_loss)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=pooled_logits, config=self.config)
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled_logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "ATTENTION_CAPABILITIES",
    "attention_capabilities",
    "check_attention_implementation",
    "ModernLLMForCausalLM",
    "ModernLLMForSequenceClassification",
    "ModernLLMModel",
    "ModernLLMPreTrainedModel",
    "StreamingSinkCache",
]
