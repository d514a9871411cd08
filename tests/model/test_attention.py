"""Attention kernels and learned sinks: eager and SDPA agree on outputs AND gradients (the sink's included), SDPA
keeps its own fused kernel, attention maps are right, and kernels are accepted or refused by what they can do (sink
forward when the kernel is chosen, sink backward in a pass that trains) with an error naming the ones that can."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from modeling_modern_llm import ModernLLMForCausalLM
from modeling_modern_llm import attention_kernels_modern_llm as kernels
from modeling_modern_llm import modeling_modern_llm as modern

from .conftest import left_padded_batch, tiny_config, tiny_model


def loss_and_grads(model, input_ids, attention_mask):
    model.zero_grad()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    output.loss.backward()
    return output, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("qk_norm", [False, True])
def test_sinks_eager_equals_sdpa_forward_and_backward(padded, qk_norm):
    eager = tiny_model("eager", qk_norm=qk_norm)
    sdpa = tiny_model("sdpa", randomize_sinks=False, qk_norm=qk_norm)
    sdpa.load_state_dict(eager.state_dict())
    input_ids, attention_mask = left_padded_batch([9, 5, 2] if padded else [9, 9, 9])

    eager_out, eager_grads = loss_and_grads(eager, input_ids, attention_mask)
    sdpa_out, sdpa_grads = loss_and_grads(sdpa, input_ids, attention_mask)

    real = attention_mask.bool()
    torch.testing.assert_close(sdpa_out.logits[real], eager_out.logits[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sdpa_out.loss, eager_out.loss, rtol=1e-6, atol=1e-6)
    assert eager_grads.keys() == sdpa_grads.keys()
    assert "model.layers.0.self_attn.sinks" in sdpa_grads
    for name, grad in eager_grads.items():
        torch.testing.assert_close(sdpa_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert sdpa_grads["model.layers.0.self_attn.sinks"].abs().sum() > 0


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_sinks_under_bf16_autocast_train_on_sdpa_as_on_eager(padded, gradient_checkpointing):
    """What `bf16: true` runs on a CPU (the rehearsals): under autocast q/k leave RoPE and the QK-norm in float32 while
    v is bfloat16; the sink kernel runs them in the autocast dtype, as SDPA would, and matches eager to bf16 rounding."""
    eager = tiny_model("eager", qk_norm=True).train()
    sdpa = tiny_model("sdpa", randomize_sinks=False, qk_norm=True).train()
    sdpa.load_state_dict(eager.state_dict())
    if gradient_checkpointing:
        eager.gradient_checkpointing_enable()
        sdpa.gradient_checkpointing_enable()
    input_ids, attention_mask = left_padded_batch([9, 5, 2] if padded else [9, 9, 9])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager_out, eager_grads = loss_and_grads(eager, input_ids, attention_mask)
        sdpa_out, sdpa_grads = loss_and_grads(sdpa, input_ids, attention_mask)
    torch.testing.assert_close(sdpa_out.loss, eager_out.loss, rtol=2e-2, atol=2e-2)
    sink = "model.layers.0.self_attn.sinks"
    assert sdpa_grads[sink].dtype == torch.float32 and sdpa_grads[sink].abs().sum() > 0
    torch.testing.assert_close(sdpa_grads[sink], eager_grads[sink], rtol=5e-2, atol=5e-3)


def test_sinks_change_the_output():
    with_sinks = tiny_model("sdpa")
    without = ModernLLMForCausalLM(tiny_config(attention_sinks=False)).eval()
    without.load_state_dict(with_sinks.state_dict(), strict=False)
    input_ids = torch.randint(3, 128, (1, 8))
    assert not torch.allclose(with_sinks(input_ids).logits, without(input_ids).logits, atol=1e-3)


@pytest.mark.parametrize("padded", [False, True])
def test_sdpa_with_sinks_runs_on_pytorchs_flash_kernel_not_eager(padded, monkeypatch):
    model = tiny_model("sdpa")
    input_ids, attention_mask = left_padded_batch([8, 3] if padded else [8, 8])

    def refuse(*args, **kwargs):
        raise AssertionError("fell back to eager attention")

    monkeypatch.setattr(modern, "eager_attention_forward", refuse)
    assert modern.ALL_ATTENTION_FUNCTIONS.get_interface("sdpa", refuse) is kernels.sdpa_attention_with_sinks
    # Only the fused flash kernel is allowed: PyTorch raises if the call would need the math fallback.
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        model(input_ids=input_ids, attention_mask=attention_mask).logits.sum().backward()


def test_sdpa_without_sinks_is_transformers_own(monkeypatch):
    """A sink-free model's `sdpa` hands every call to transformers' SDPA function unchanged."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return sdpa_attention_forward(*args, **kwargs)

    monkeypatch.setattr(kernels, "sdpa_attention_forward", counting)
    model = tiny_model("sdpa", attention_sinks=False)
    model(torch.randint(3, 128, (1, 5)))
    assert calls == [layer.self_attn for layer in model.model.layers]  # one call per layer


@pytest.mark.parametrize("kernel", ["cpu_flash_attention_with_sinks", "widened_sdpa_attention_with_sinks"])
def test_sink_kernels_match_a_softmax_with_an_extra_column_in_outputs_and_gradients(kernel):
    """Each way `sdpa` applies the sinks, on its own, against the definition: grouped-query heads, a padding mask
    (with a fully padded query row), and the gradients of queries, keys, values and sinks. The CPU flash kernels run on
    CPUs; the widened keys run on GPUs (and are checked here on the CPU)."""
    attention = getattr(kernels, kernel)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal, module.training = 2, True, False
    query, key, value = torch.randn(2, 4, 6, 16), torch.randn(2, 2, 6, 16), torch.randn(2, 2, 6, 16)
    sinks = torch.randn(4)
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
    mask[1, :, :, :2] = False  # row 1 is left-padded by two tokens: its first two queries see no key at all
    grad_out = torch.randn(2, 6, 4, 16)
    for attention_mask in (None, mask):
        inputs = [t.clone().requires_grad_() for t in (query, key, value, sinks)]
        out, _ = attention(module, *inputs[:3], attention_mask, scaling=0.25, s_aux=inputs[3])
        grads = torch.autograd.grad(out, inputs, grad_out)

        reference = [t.clone().requires_grad_() for t in (query, key, value, sinks)]
        q, k, v, s = reference
        scores = q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) * 0.25
        allowed = torch.ones(6, 6, dtype=torch.bool).tril() if attention_mask is None else attention_mask
        scores = scores.masked_fill(~allowed, float("-inf"))
        scores = torch.cat([scores, s.view(1, 4, 1, 1).expand(2, 4, 6, 1)], dim=-1)
        expected = (F.softmax(scores, dim=-1)[..., :-1] @ v.repeat_interleave(2, dim=1)).transpose(1, 2)
        expected_grads = torch.autograd.grad(expected, reference, grad_out)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        for name, got, want in zip("qkvs", grads, expected_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("padded", [False, True])
def test_one_token_decoding_step_matches_the_prefill(padded):
    """A single decoding query against the same keys (the path `generate` takes after the prompt)."""
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal, module.training = 2, True, False
    query, key, value = torch.randn(2, 4, 6, 16), torch.randn(2, 2, 6, 16), torch.randn(2, 2, 6, 16)
    sinks = torch.randn(4)
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
    mask[1, :, :, :2] = False
    mask = mask if padded else None
    with torch.no_grad():
        full, _ = kernels.sdpa_attention_with_sinks(module, query, key, value, mask, scaling=0.25, s_aux=sinks)
        last_row = None if mask is None else mask[:, :, -1:]
        step, _ = kernels.sdpa_attention_with_sinks(
            module, query[:, :, -1:], key, value, last_row, scaling=0.25, s_aux=sinks
        )
    torch.testing.assert_close(step, full[:, -1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mask_dtype", [None, torch.bool, torch.float32])
def test_the_decoding_kernel_matches_a_softmax_with_an_extra_column(mask_dtype):
    """The one-query path devices other than the CPU take when decoding, on its own against the definition, with
    grouped-query heads, a padded row (boolean or additive mask) and the gradients of queries, keys, values and sinks."""
    query, key, value = torch.randn(2, 4, 1, 16), torch.randn(2, 2, 6, 16), torch.randn(2, 2, 6, 16)
    sinks, grad_out = torch.randn(4), torch.randn(2, 1, 4, 16)
    allowed = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    allowed[1, :, :, :2] = False  # row 1 is left-padded by two tokens
    if mask_dtype is None:
        mask, allowed = None, torch.ones_like(allowed)
    elif mask_dtype == torch.bool:
        mask = allowed
    else:
        mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    inputs = [t.clone().requires_grad_() for t in (query, key, value, sinks)]
    out, _ = kernels.decoding_attention_with_sinks(None, *inputs[:3], mask, scaling=0.25, s_aux=inputs[3])
    grads = torch.autograd.grad(out, inputs, grad_out)

    reference = [t.clone().requires_grad_() for t in (query, key, value, sinks)]
    q, k, v, s = reference
    scores = (q @ k.repeat_interleave(2, dim=1).transpose(-1, -2) * 0.25).masked_fill(~allowed, float("-inf"))
    scores = torch.cat([scores, s.view(1, 4, 1, 1).expand(2, 4, 1, 1)], dim=-1)
    expected = (F.softmax(scores, dim=-1)[..., :-1] @ v.repeat_interleave(2, dim=1)).transpose(1, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for name, got, want in zip("qkvs", grads, torch.autograd.grad(expected, reference, grad_out)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


def test_output_attentions_eager_shapes_and_rows_sum_to_one_minus_sink_mass():
    model = tiny_model("eager")
    input_ids = torch.randint(3, 128, (2, 7))
    output = model(input_ids, output_attentions=True)
    assert len(output.attentions) == 2
    for attentions in output.attentions:
        assert attentions.shape == (2, 4, 7, 7)
        assert torch.all(attentions.triu(diagonal=1) == 0)  # causal

    # Reference for layer 0: recompute its scores by hand and put the sink logit in an extra softmax column.
    attention = model.model.layers[0].self_attn
    hidden = model.model.layers[0].input_layernorm(model.model.embed_tokens(input_ids))
    cos, sin = model.model.rotary_emb(hidden, torch.arange(7)[None])
    q = attention.q_norm(attention.q_proj(hidden).view(2, 7, 4, 16)).transpose(1, 2)
    k = attention.k_norm(attention.k_proj(hidden).view(2, 7, 2, 16)).transpose(1, 2)
    q, k = modern.apply_rotary_pos_emb(q, k, cos, sin)
    scores = (q @ k.repeat_interleave(2, dim=1).transpose(-1, -2)) * 16**-0.5
    scores = scores.masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(), float("-inf"))
    sink_mass = F.softmax(torch.cat([scores, attention.sinks.view(1, 4, 1, 1).expand(2, 4, 7, 1)], -1), -1)[..., -1]
    layer0 = output.attentions[0]
    torch.testing.assert_close(layer0.sum(-1), 1 - sink_mass, rtol=1e-5, atol=1e-5)
    assert torch.all(sink_mass > 0)


def test_flash_attention_2_without_the_package_gives_transformers_error():
    with pytest.raises(ImportError, match="FlashAttention2.*installed"):
        ModernLLMForCausalLM(tiny_config(attn_implementation="flash_attention_2"))


def test_a_kernel_without_sink_support_is_refused_when_chosen_instead_of_dropping_sinks():
    AttentionInterface.register("sinkless_test_kernel", modern.eager_attention_forward)
    with pytest.raises(ValueError, match="not a kernel this model knows.*'sdpa'"):
        ModernLLMForCausalLM(tiny_config(attn_implementation="sinkless_test_kernel"))
    model = tiny_model("sdpa")
    with pytest.raises(ValueError, match="not a kernel this model knows"):
        model.set_attn_implementation("sinkless_test_kernel")
    assert model.config._attn_implementation == "sdpa"
    dense = ModernLLMForCausalLM(tiny_config(attention_sinks=False, attn_implementation="sinkless_test_kernel"))
    assert dense(torch.randint(3, 128, (1, 4))).logits.shape == (1, 4, 128)


def test_capability_table_answers_before_any_model_exists():
    import modeling_modern_llm

    assert modeling_modern_llm.check_attention_implementation is kernels.check_attention_implementation  # public
    assert kernels.attention_capabilities("flash_attention_4") == {
        "sinks_forward": True,
        "sinks_backward": True,
        "varlen": True,
    }
    assert kernels.attention_capabilities("kernels-community/flash-attn4") == kernels.attention_capabilities(
        "flash_attention_4"
    )  # transformers' name for FA4 loaded through `kernels`
    assert kernels.attention_capabilities("kernels-community/vllm-flash-attn3")["sinks_backward"] is False
    assert kernels.attention_capabilities("some/unknown-kernel") == {
        "sinks_forward": False,
        "sinks_backward": False,
        "varlen": False,
    }
    check = kernels.check_attention_implementation
    for name in ("eager", "sdpa", "flash_attention_4", "kernels-community/flash-attn4"):
        assert check(name, attention_sinks=True, training=True) is None, name
    assert check("kernels-community/vllm-flash-attn3", attention_sinks=True, training=False) is None
    assert check("flash_attention_2", attention_sinks=False, training=True) is None  # no sinks: any kernel
    problem = check("kernels-community/vllm-flash-attn3", attention_sinks=True, training=True)
    assert "no gradient" in problem and "'flash_attention_4'" in problem and "'sdpa'" in problem
    assert "'kernels-community/vllm-flash-attn3'" not in problem.split(":")[-1]  # not offered as one that trains
    problem = check("flash_attention_2", attention_sinks=True, training=False)
    assert "silently drop" in problem and "'kernels-community/vllm-flash-attn3'" in problem.split(":")[-1]
    assert "'flash_attention_2'" not in problem.split(":")[-1]


def choose_kernel_as_on_a_gpu(model, name, monkeypatch):
    """`model.set_attn_implementation(name)` as on a GPU that has the kernel: transformers' own loading and checks are
    skipped (the package or Hub kernel is missing here), the model's are not, and the kernel runs as eager."""
    monkeypatch.setattr(PreTrainedModel, "_check_and_adjust_attn_implementation", lambda self, name, *args: name)
    monkeypatch.setitem(modern.ALL_ATTENTION_FUNCTIONS, name, modern.eager_attention_forward)
    model.set_attn_implementation(name)


@pytest.mark.parametrize(
    "name, trains",
    [
        ("kernels-community/vllm-flash-attn3", False),
        ("flash_attention_4", True),
        ("kernels-community/flash-attn4", True),
        ("flash_attention_3", None),
        ("kernels-community/flash-attn2", None),
    ],
)
def test_the_model_checks_a_kernel_once_for_serving_and_for_training(name, trains, monkeypatch):
    """A kernel without a sink input is refused when it is chosen; one that applies the sinks but returns no gradient
    for them serves, and is refused by a forward pass that would train."""
    model = tiny_model("sdpa")
    if trains is None:  # no sink input at all
        with pytest.raises(ValueError, match="silently drop"):
            choose_kernel_as_on_a_gpu(model, name, monkeypatch)
        assert model.config._attn_implementation == "sdpa"  # unchanged
        dense = tiny_model("sdpa", attention_sinks=False)
        choose_kernel_as_on_a_gpu(dense, name, monkeypatch)  # the `_supports_*` flags: fine without sinks
        assert dense.config._attn_implementation == name
        return
    choose_kernel_as_on_a_gpu(model, name, monkeypatch)
    assert model.config._attn_implementation == name
    input_ids = torch.randint(3, 128, (1, 5))
    assert model(input_ids).logits.shape == (1, 5, 128)  # eval mode serves
    model.train()
    with torch.no_grad():
        model(input_ids)  # a train-mode model without gradients needs no sink gradient either
    if trains:
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        assert model.model.layers[0].self_attn.sinks.grad.abs().sum() > 0
    else:
        with pytest.raises(ValueError, match="never train.*kernels that train the sinks: 'eager', 'sdpa'"):
            model(input_ids=input_ids, labels=input_ids)
