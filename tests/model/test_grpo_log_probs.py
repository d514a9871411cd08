"""TRL's GRPOTrainer scores completions through its own fused LM head (the base model's hidden states times the output
embeddings, in chunks, never the model's forward). On this model its per-token log-probabilities, their gradients and
the entropies equal those of `log_softmax(logits / temperature)` of the model's own forward, for the plain, the sinks +
QK-norm and the mixture-of-experts configurations, on a batch laid out as GRPO lays it out (left-padded prompts,
right-padded completions); with experts, its load-balancing loss equals the model's.
"""

import pytest
import torch
from datasets import Dataset

from modeling_modern_llm.tokenizer import train_tokenizer

from .conftest import tiny_model

CONFIGS = {
    "plain": dict(attention_sinks=False, qk_norm=False),
    "sinks_qk_norm": dict(attention_sinks=True, qk_norm=True),
    "moe": dict(attention_sinks=True, num_experts=4, num_experts_per_tok=2, router_aux_loss_coef=0.05),
}
TEMPERATURE = 0.7  # GRPO divides the logits by its sampling temperature; != 1 so that the division is checked
WORDS = "the cat sat on a mat and a dog ran to the big red ball while birds sang"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([WORDS] * 8, vocab_size=300)


def grpo_batch(tokenizer, prompt_lengths=(3, 6, 5), completion_lengths=(7, 2, 5), seed=0):
    """Prompts left-padded and completions right-padded, as GRPO concatenates them; random token ids."""
    generator = torch.Generator().manual_seed(seed)
    pad, vocab = tokenizer.pad_token_id, len(tokenizer)
    width_p, width_c = max(prompt_lengths), max(completion_lengths)
    rows, masks = [], []
    for p, c in zip(prompt_lengths, completion_lengths):
        ids = torch.randint(3, vocab, (p + c,), generator=generator)
        rows.append(torch.cat([torch.full((width_p - p,), pad), ids, torch.full((width_c - c,), pad)]))
        masks.append(torch.cat([torch.zeros(width_p - p), torch.ones(p + c), torch.zeros(width_c - c)]).long())
    return torch.stack(rows), torch.stack(masks), width_c


@pytest.mark.parametrize("name", CONFIGS)
def test_grpo_log_probs_are_the_models_log_softmax(name, tokenizer, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    model = tiny_model(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **CONFIGS[name]).train()
    args = GRPOConfig(
        output_dir=str(tmp_path),
        temperature=TEMPERATURE,
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=8,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_list([{"prompt": WORDS}] * 2),
        processing_class=tokenizer,
    )
    input_ids, attention_mask, keep = grpo_batch(tokenizer)
    weights = torch.randn(input_ids.shape[0], keep, generator=torch.Generator().manual_seed(1))

    moe = bool(model.config.num_experts)
    log_probs, entropy, aux_loss = trainer._get_per_token_logps_and_entropies(
        trainer.model, input_ids, attention_mask, keep, compute_entropy=True, compute_aux_loss=moe
    )
    mask = attention_mask[:, -keep:].bool()
    trainer.model.zero_grad()
    (weights * log_probs * mask).sum().backward()
    trl_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    output = model(input_ids=input_ids, attention_mask=attention_mask, output_router_logits=moe)  # the model's forward
    expected_all = torch.log_softmax(output.logits[:, :-1].float() / TEMPERATURE, dim=-1)
    expected = expected_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1)[:, -keep:]
    expected_entropy = -(expected_all.exp() * expected_all).sum(-1)[:, -keep:]
    torch.testing.assert_close(log_probs[mask], expected[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy[mask], expected_entropy[mask], rtol=1e-5, atol=1e-5)
    assert (log_probs[~mask] == 0).all()  # padding is not scored
    (weights * expected * mask).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert trl_grads.keys() == grads.keys()
    for key, grad in grads.items():
        torch.testing.assert_close(trl_grads[key], grad, rtol=1e-4, atol=1e-6, msg=key)
    if moe:
        torch.testing.assert_close(aux_loss, output.aux_loss)
    else:
        assert aux_loss is None
