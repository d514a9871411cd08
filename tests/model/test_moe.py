"""Mixture of experts: sparse dispatch equals a dense reference, the Switch/Mixtral balancing loss and the z-loss
reach the training loss, gradients reach the router and the chosen experts, and a short run learns."""

import torch

from modeling_modern_llm import ModernLLMForCausalLM
from modeling_modern_llm import modeling_modern_llm as modern

from .conftest import left_padded_batch, tiny_config

MOE = dict(num_experts=4, num_experts_per_tok=2)


def test_sparse_dispatch_equals_dense_reference_with_the_same_weights():
    block = modern.ModernLLMSparseMoeBlock(tiny_config(**MOE))
    torch.nn.init.normal_(block.router.weight, std=0.5)
    hidden = torch.randn(3, 5, 64)
    tokens = hidden.reshape(-1, 64)
    # Dense reference: every expert on every token, weighted by the renormalised softmax over its top-k.
    probs = torch.softmax(tokens @ block.router.weight.T, dim=-1)
    top_probs, top_index = probs.topk(2, dim=-1)
    gates = torch.zeros_like(probs).scatter(1, top_index, top_probs / top_probs.sum(-1, keepdim=True))
    expected = sum(gates[:, [e]] * expert(tokens) for e, expert in enumerate(block.experts))
    torch.testing.assert_close(block(hidden), expected.view(3, 5, 64), rtol=1e-5, atol=1e-6)


def test_only_chosen_experts_run_and_receive_gradients():
    block = modern.ModernLLMSparseMoeBlock(tiny_config(num_experts=6, num_experts_per_tok=1))
    with torch.no_grad():  # route every token to expert 0 or 3
        block.router.weight.zero_()
        block.router.weight[0, 0], block.router.weight[3, 0] = 1.0, -1.0
    calls = []
    for index, expert in enumerate(block.experts):
        expert.register_forward_hook(lambda module, args, out, index=index: calls.append((index, args[0].shape[0])))
    hidden = torch.randn(2, 8, 64)
    block(hidden).square().sum().backward()
    chosen = {0, 3}
    assert {index for index, _ in calls} == chosen  # unchosen experts never run
    assert sum(rows for _, rows in calls) == 16  # and each token runs once per chosen slot
    assert block.router.weight.grad.abs().sum() > 0
    for index, expert in enumerate(block.experts):
        grads = [p.grad for p in expert.parameters()]
        if index in chosen:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), index
        else:
            assert all(g is None for g in grads), index


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
    real_only = modern.load_balancing_loss_func(tuple(logits[real] for logits in output.router_logits), 4, 2)
    torch.testing.assert_close(output.aux_loss, real_only)
    # Without labels the router losses are only computed on request.
    assert model(input_ids=input_ids, attention_mask=attention_mask).aux_loss is None
    assert model(input_ids=input_ids, attention_mask=attention_mask, output_router_logits=True).aux_loss is not None


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
