"""Mixture of experts for ModernLLM: the top-k router, the stacked SwiGLU experts (transformers' experts kernels), the
sparse MoE block that replaces the MLP when `num_experts > 0`, and the router losses' pieces (the ST-MoE z-loss, the
mask of the tokens the routers saw, and `AddAuxiliaryLoss`, which puts a loss's gradient into the backward pass).

It travels with `save_pretrained` beside `modeling_modern_llm.py`, which imports it: torch and transformers only.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.integrations import use_experts_implementation


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
