"""Mixture of experts: every experts kernel equals a dense reference in outputs and gradients, every expert gets a
gradient in every step (zero where no token chose it), the block traces as one graph (no host sync on expert counts),
the Switch/Mixtral balancing loss and the z-loss reach the training loss once each, and a short run learns. Real DDP:
test_moe_ddp.py; the losses under TRL's trainers: test_trainer_losses.py."""

import pytest
import torch
import torch.nn.functional as F

from modeling_modern_llm import ModernLLMForCausalLM
from modeling_modern_llm import modeling_modern_llm as modern
from modeling_modern_llm import moe_modern_llm as moe

from .conftest import left_padded_batch, tiny_config

MOE = dict(num_experts=4, num_experts_per_tok=2)
KERNELS = ["grouped_mm", "batched_mm", "eager"]


def random_block(**overrides):
    """A MoE block outside a model (so nothing initialises it) with weights drawn here."""
    block = moe.ModernLLMSparseMoeBlock(tiny_config(**{**MOE, "router_z_loss_coef": 0.0, **overrides}))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return block


def dense_reference(block, tokens):
    """Every expert on every token, weighted by the renormalised softmax over its top-k: the definition, written out
    expert by expert from the stacked weights."""
    probs = torch.softmax(tokens @ block.router.weight.T, dim=-1)
    top_probs, top_index = probs.topk(block.router.top_k, dim=-1)
    if block.router.top_k > 1:
        top_probs = top_probs / top_probs.sum(-1, keepdim=True)
    gates = torch.zeros_like(probs).scatter(1, top_index, top_probs)
    output = torch.zeros_like(tokens)
    for expert in range(block.experts.num_experts):
        gate, up = (tokens @ block.experts.gate_up_proj[expert].T).chunk(2, dim=-1)
        output = output + gates[:, [expert]] * ((F.silu(gate) * up) @ block.experts.down_proj[expert].T)
    return output


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_experts_kernel_equals_the_dense_reference_in_outputs_and_gradients(kernel):
    block = random_block(experts_implementation=kernel)
    hidden = torch.randn(3, 5, 64)
    output = block(hidden)
    output.backward(torch.ones_like(output))
    got = {name: p.grad.clone() for name, p in block.named_parameters()}
    block.zero_grad()
    expected = dense_reference(block, hidden.reshape(-1, 64)).view(3, 5, 64)
    expected.backward(torch.ones_like(expected))
    torch.testing.assert_close(output, expected, rtol=1e-4, atol=1e-5)
    for name, parameter in block.named_parameters():
        torch.testing.assert_close(got[name], parameter.grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_expert_gets_a_gradient_every_step_zero_where_unrouted(kernel):
    """The issue's case: 2 tokens on 16 experts, top-2. DDP with find_unused_parameters=False, FSDP2 and ZeRO-3 need
    a gradient for every parameter in every step."""
    block = random_block(num_experts=16, num_experts_per_tok=2, experts_implementation=kernel)
    hidden = torch.randn(1, 2, 64)
    routed = set(block.router(hidden.reshape(-1, 64))[2].flatten().tolist())
    assert len(routed) <= 4
    block(hidden).square().sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    for expert in range(16):
        expert_grads = (block.experts.gate_up_proj.grad[expert], block.experts.down_proj.grad[expert])
        if expert in routed:
            assert all(g.abs().sum() > 0 for g in expert_grads), expert
        else:
            assert all(torch.all(g == 0) for g in expert_grads), expert


def test_the_moe_block_traces_as_one_graph_without_host_sync():
    """Reading expert counts on the host (`.tolist()`) breaks a torch.compile graph (and syncs a GPU every layer);
    `fullgraph=True` refuses any break. The z-loss injection is traced too."""
    model = ModernLLMForCausalLM(tiny_config(**MOE, router_z_loss_coef=0.01))
    assert model.config._experts_implementation == "grouped_mm"  # transformers' default kernel for stacked experts
    block = model.model.layers[0].mlp
    hidden = torch.randn(2, 6, 64, requires_grad=True)
    torch._dynamo.reset()
    compiled = torch.compile(block, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(hidden), block(hidden))


def test_balanced_routing_gives_the_smallest_aux_loss():
    num_tokens, num_experts = 64, 4
    balanced = torch.full((num_tokens, num_experts), -5.0)
    balanced[torch.arange(num_tokens), torch.arange(num_tokens) % num_experts] = 5.0
    balanced_loss = modern.load_balancing_loss_func((balanced,), num_experts, 1)
    torch.testing.assert_close(balanced_loss, torch.tensor(1.0), atol=1e-3, rtol=0)  # the Switch minimum
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        skewed = torch.randn(num_tokens, num_experts, generator=generator) * 3 + torch.tensor([2.0, 0, 0, 0])
        assert modern.load_balancing_loss_func((skewed,), num_experts, 1) > balanced_loss
    collapsed = torch.full((num_tokens, num_experts), -5.0)
    collapsed[:, 0] = 5.0
    assert modern.load_balancing_loss_func((collapsed,), num_experts, 1) > 3.9  # everything on one expert ~ E


def test_router_losses_are_added_to_the_lm_loss_and_ignore_padding():
    model = ModernLLMForCausalLM(tiny_config(**MOE, attention_sinks=False)).eval()
    input_ids, attention_mask = left_padded_batch([8, 4])
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert len(output.router_logits) == 2 and output.router_logits[0].shape == (16, 4)
    lm_loss = model.loss_function(logits=output.logits, labels=labels, vocab_size=128)
    expected = lm_loss + 0.01 * output.aux_loss + 0.001 * output.z_loss
    torch.testing.assert_close(output.loss, expected)
    real = attention_mask.reshape(-1).bool()
    z_reference = torch.stack([torch.logsumexp(logits[real], -1).square().mean() for logits in output.router_logits])
    torch.testing.assert_close(output.z_loss, z_reference.mean())
    assert output.z_loss.grad_fn is None  # a reported value: its gradient comes from the MoE blocks
    real_only = modern.load_balancing_loss_func(tuple(logits[real] for logits in output.router_logits), 4, 2)
    torch.testing.assert_close(output.aux_loss, real_only)
    # Without labels the router losses are only computed on request.
    assert model(input_ids=input_ids, attention_mask=attention_mask).aux_loss is None
    assert model(input_ids=input_ids, attention_mask=attention_mask, output_router_logits=True).aux_loss is not None


def test_the_z_loss_gradient_is_applied_exactly_once_with_padding():
    """The model's gradient equals autograd's on lm + aux_coef * aux + z_coef * z, computed by hand on a copy whose
    z coefficient is 0 (so nothing is injected there)."""
    model = ModernLLMForCausalLM(tiny_config(**MOE, router_z_loss_coef=0.5)).train()
    reference = ModernLLMForCausalLM(tiny_config(**MOE, router_z_loss_coef=0.0)).train()
    reference.load_state_dict(model.state_dict())
    input_ids, attention_mask = left_padded_batch([9, 5])
    labels = input_ids.masked_fill(attention_mask == 0, -100)

    model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    output = reference(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    z_loss = moe.router_z_loss_func(output.router_logits, attention_mask.reshape(-1))
    (output.loss + 0.5 * z_loss).backward()
    for (name, got), expected in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(got.grad, expected.grad, rtol=1e-4, atol=1e-6, msg=name)
    reference.zero_grad()
    reference(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    router = "model.layers.0.mlp.router.weight"
    assert not torch.allclose(
        dict(model.named_parameters())[router].grad, dict(reference.named_parameters())[router].grad, atol=1e-4
    )  # the z-loss mattered


def test_a_short_training_run_lowers_the_loss_of_a_moe_model():
    torch.manual_seed(0)
    model = ModernLLMForCausalLM(tiny_config(**MOE)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    input_ids = torch.randint(3, 128, (4, 16))
    router_before = model.model.layers[0].mlp.router.weight.detach().clone()
    losses = []
    for _ in range(15):
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert not torch.allclose(model.model.layers[0].mlp.router.weight, router_before)  # the router learned too
