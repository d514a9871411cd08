"""ModernLLM: a Llama-style decoder (RMSNorm, RoPE, SwiGLU, GQA) with learned attention sinks that keep SDPA's own
kernels, optional QK-norm, an optional top-k mixture of experts, and a StreamingLLM cache for generating past the
trained context.

Read top-down, each piece before its user, as transformers' `modeling_llama.py`. The pieces that are not Llama's live
in flat siblings that travel with this file on `save_pretrained` (remote code): `attention_kernels_modern_llm.py` (which
kernels can apply the sinks, and the sink-aware SDPA kernel), `moe_modern_llm.py` (router, experts, MoE block, router
losses) and `streaming_modern_llm.py` (the StreamingLLM cache and its `generate` hook). All import only torch and
transformers.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    MoeCausalLMOutputWithPast,
    MoeModelOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import AttentionInterface, PreTrainedModel, slice_logits_to_keep
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .attention_kernels_modern_llm import check_attention_implementation, sdpa_attention_with_sinks
from .configuration_modern_llm import ModernLLMConfig
from .moe_modern_llm import (
    AddAuxiliaryLoss,
    ModernLLMExperts,
    ModernLLMSparseMoeBlock,
    ModernLLMTopKRouter,
    current_token_mask,
    router_z_loss_func,
)
from .streaming_modern_llm import StreamingGenerationMixin


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


# transformers' attention kernels, with this model's "sdpa": transformers' own without sinks, and with sinks PyTorch's
# fused kernels still, exact in outputs and gradients (attention_kernels_modern_llm.py). A local instance, as
# transformers prescribes for overriding a kernel for one model; every other kernel is transformers' (hub kernels
# included), and `_check_and_adjust_attn_implementation` refuses those that cannot apply the sinks.
ALL_ATTENTION_FUNCTIONS = AttentionInterface()
ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_attention_with_sinks


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

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )

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


# Every Auto class this model supports, written into `config.auto_map` on save so the folder loads as remote code.
AUTO_MAP = {
    "AutoConfig": "configuration_modern_llm.ModernLLMConfig",
    "AutoModel": "modeling_modern_llm.ModernLLMModel",
    "AutoModelForCausalLM": "modeling_modern_llm.ModernLLMForCausalLM",
    "AutoModelForSequenceClassification": "modeling_modern_llm.ModernLLMForSequenceClassification",
}


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

    def _check_and_adjust_attn_implementation(
        self, attn_implementation: str | None, is_init_check: bool = False, allow_all_kernels: bool = False
    ) -> str:
        """transformers' choice of kernel (at construction, `from_pretrained` and `set_attn_implementation`), refused
        when it cannot apply this config's sinks: the `_supports_*` flags say what the class runs (a sink-free config
        may use any kernel), this check what this config needs. Training's further need, the sinks' gradient, is
        checked by the forward pass that will train."""
        implementation = super()._check_and_adjust_attn_implementation(
            attn_implementation, is_init_check, allow_all_kernels
        )
        self._check_attention_kernel(implementation, training=False)
        return implementation

    def _check_attention_kernel(self, implementation: str, training: bool) -> None:
        """Raises `check_attention_implementation`'s sentence if `implementation` cannot serve (or train) this model."""
        problem = check_attention_implementation(implementation, self.config.attention_sinks, training)
        if problem is not None:
            raise ValueError(problem)

    @classmethod
    def _can_set_experts_implementation(cls) -> bool:
        # transformers' switch of experts kernels decorates ModernLLMExperts (moe_modern_llm.py); its own test of
        # whether a model has one reads only the model's file.
        return True

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records only the saved class in `auto_map`; list them all so any Auto class loads the folder.
        self.config.auto_map = {**(self.config.auto_map or {}), **AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)


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
        if self.training and torch.is_grad_enabled():  # a pass that trains needs the sinks' gradient too
            self._check_attention_kernel(self.config._attn_implementation, training=True)
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


# StreamingGenerationMixin: transformers' GenerationMixin, plus `generate(streaming_window=...)`.
class ModernLLMForCausalLM(ModernLLMPreTrainedModel, StreamingGenerationMixin):
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


class ModernLLMForSequenceClassification(ModernLLMPreTrainedModel):
    """Verifier / reward head `score` on the last non-pad token (needs `config.pad_token_id` for batches).

    What transformers' `GenericForSequenceClassification` computes, written out: that base builds its model through
    `AutoModel.from_config` (the Auto registry, which a remote-code process does not have), and this head also adds the
    balancing loss's gradient."""

    def __init__(self, config: ModernLLMConfig):
        super().__init__(config)
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
        r"""The score of each row's last non-pad token, as `GenericForSequenceClassification`. With experts, the
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
            last_real = (torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32) * non_pad).argmax(
                -1
            )
        pooled_logits = logits[torch.arange(batch_size, device=logits.device), last_real]  # (B, labels)

        if add_balancing and outputs.router_logits:
            aux_loss = load_balancing_loss_func(
                outputs.router_logits,
                self.config.num_experts,
                self.config.num_experts_per_tok,
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
    "ModernLLMForCausalLM",
    "ModernLLMForSequenceClassification",
    "ModernLLMModel",
    "ModernLLMPreTrainedModel",
]
