"""Configuration of ModernLLM: a Llama-style decoder with optional attention sinks, QK-norm and mixture of experts.

Field names follow `LlamaConfig` wherever the concept is shared, so Llama tooling (and `export_llama.py`) can read
them. This file travels with `save_pretrained` as remote code: it imports only transformers.
"""

from dataclasses import field

from transformers import PreTrainedConfig


class InvalidModernLLMConfig(ValueError):
    """The fields of a `ModernLLMConfig` that cannot work together; ``problems``: one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("Invalid ModernLLMConfig:\n  " + "\n  ".join(self.problems))

    def __reduce__(self):
        return type(self), (self.problems,)


class ModernLLMConfig(PreTrainedConfig):
    r"""
    Args:
        vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
        head_dim, hidden_act, max_position_embeddings, initializer_range, rms_norm_eps, rope_theta, rope_parameters,
        attention_dropout, tie_word_embeddings, use_cache, pad/bos/eos_token_id:
            As in `LlamaConfig` (`num_key_value_heads=None` means one KV head per query head, `head_dim=None` means
            `hidden_size // num_attention_heads`).
        attention_sinks (`bool`):
            One learned sink logit per head ("softmax off by one", as in gpt-oss): each query may put attention mass on
            a virtual key whose value is zero, so heads can attend to nothing instead of dumping mass on token 0.
        qk_norm (`bool`):
            RMSNorm on each head's queries and keys before RoPE (as in OLMo-2 / Qwen3), which keeps logits bounded.
        num_experts (`int`):
            0 gives a dense SwiGLU MLP; N > 0 replaces it with N SwiGLU experts behind a top-k softmax router.
        num_experts_per_tok (`int`):
            The k of the top-k router.
        router_aux_loss_coef (`float`):
            Weight of the Switch/Mixtral load-balancing loss in the trained loss (the causal LM's `loss`; TRL's SFT
            and DPO add it themselves; the classifier adds its gradient). Defaults to 0.01 with experts and to 0.0
            for a dense model: TRL's trainers ask any model whose coefficient is non-zero for router logits.
        router_z_loss_coef (`float`):
            Weight of the ST-MoE router z-loss (mean squared logsumexp of the router logits). The MoE layers add its
            gradient in the backward pass, so every trainer optimises it; the causal LM's `loss` shows its value.
        output_router_logits (`bool`):
            Return the router logits (and the auxiliary losses) also when no `labels` are given (TRL's trainers set
            it when `router_aux_loss_coef` is non-zero).

    Impossible combinations raise an `InvalidModernLLMConfig` (a `ValueError`) naming the fields at construction;
    its ``problems`` hold one sentence each.
    """

    model_type = "modern_llm"
    keys_to_ignore_at_inference = ["past_key_values"]

    vocab_size: int = 8192
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_parameters: dict | None = None
    attention_dropout: float = 0.0
    tie_word_embeddings: bool = True
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    attention_sinks: bool = True
    qk_norm: bool = True
    num_experts: int = 0
    num_experts_per_tok: int = 2
    router_aux_loss_coef: float | None = None
    router_z_loss_coef: float = 0.001
    output_router_logits: bool = False
    # `{}` rather than None: TRL reads `config.auto_map` of registered (non-remote) models; save_pretrained fills it in.
    auto_map: dict = field(default_factory=dict)

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.num_attention_heads > 0 and self.hidden_size % self.num_attention_heads == 0:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.router_aux_loss_coef is None:
            self.router_aux_loss_coef = 0.01 if self.num_experts > 0 else 0.0
        super().__post_init__(**kwargs)
        # RoPE lives in `rope_parameters` in transformers 5; keep `rope_theta` as its readable mirror.
        self.rope_theta = self.rope_parameters["rope_theta"]
        self._check_consistency()

    def _check_consistency(self):
        problems = []
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                problems.append(f"`{name}` must be a positive integer, got {value!r}.")
        if problems:  # the checks below divide by these
            raise InvalidModernLLMConfig(problems)

        if self.head_dim is None:
            problems.append(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads}); change one of them or set `head_dim` explicitly."
            )
        elif self.head_dim <= 0 or self.head_dim % 2:
            problems.append(f"`head_dim` must be a positive even number (RoPE rotates pairs), got {self.head_dim}.")
        if self.num_attention_heads % self.num_key_value_heads:
            problems.append(
                f"`num_key_value_heads` ({self.num_key_value_heads}) must divide `num_attention_heads` "
                f"({self.num_attention_heads}) for grouped-query attention."
            )
        if self.num_experts < 0:
            problems.append(f"`num_experts` must be >= 0 (0 means a dense MLP), got {self.num_experts}.")
        elif self.num_experts > 0 and not 1 <= self.num_experts_per_tok <= self.num_experts:
            problems.append(
                f"`num_experts_per_tok` ({self.num_experts_per_tok}) must be between 1 and `num_experts` "
                f"({self.num_experts})."
            )
        for name in ("router_aux_loss_coef", "router_z_loss_coef"):
            if getattr(self, name) < 0:
                problems.append(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if not 0.0 <= self.attention_dropout < 1.0:
            problems.append(f"`attention_dropout` must be in [0, 1), got {self.attention_dropout}.")
        if self.rms_norm_eps <= 0 or self.rope_theta <= 0 or self.initializer_range <= 0:
            problems.append("`rms_norm_eps`, `rope_theta` and `initializer_range` must be positive.")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            problems.append(f"`pad_token_id` ({self.pad_token_id}) must lie in [0, `vocab_size`={self.vocab_size}).")
        if problems:
            raise InvalidModernLLMConfig(problems)


__all__ = ["InvalidModernLLMConfig", "ModernLLMConfig"]
