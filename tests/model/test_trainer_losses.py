"""With experts, the loss TRL's SFTTrainer (fused LM-head path), DPOTrainer and RewardTrainer optimise includes the
load-balancing loss and the router z-loss with the config's coefficients, each exactly once.

For each trainer: the gradient of its first-step loss on a MoE model equals the gradient of the same trainer's loss on
a copy whose router coefficients are 0 (the task loss alone), plus the gradient of `aux_coef * aux + z_coef * z`
computed directly from that copy's router logits on the same batch.
"""

import copy

import pytest
import torch
from datasets import Dataset

from modeling_modern_llm import ModernLLMForCausalLM, ModernLLMForSequenceClassification
from modeling_modern_llm import modeling_modern_llm as modern
from modeling_modern_llm import moe_modern_llm as moe
from modeling_modern_llm.tokenizer import train_tokenizer

from .conftest import tiny_config

AUX_COEF, Z_COEF = 0.05, 0.2  # large, so that a missing or doubled term shows in the gradients
WORDS = "the cat sat on a mat and a dog ran to the big red ball while birds sang"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([WORDS] * 8, vocab_size=300)


def twin_models(model_class, tokenizer, **extras):
    """The MoE model under test and a copy with the same weights whose router coefficients are 0."""
    settings = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_experts=4,
                    num_experts_per_tok=2, **extras)
    model = model_class(tiny_config(router_aux_loss_coef=AUX_COEF, router_z_loss_coef=Z_COEF, **settings)).train()
    reference = model_class(tiny_config(router_aux_loss_coef=0.0, router_z_loss_coef=0.0, **settings)).train()
    reference.load_state_dict(model.state_dict())
    return model, reference


def first_step(trainer, batch):
    """The trainer's loss on `batch` and the gradients it leaves (as in its first training step)."""
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}


def router_losses(base_model, batch):
    """`aux_coef * balancing + z_coef * z` from the router logits of `base_model` (which injects nothing)."""
    output = base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_router_logits=True)
    balancing = modern.load_balancing_loss_func(output.router_logits, 4, 2, batch["attention_mask"])
    z_loss = moe.router_z_loss_func(output.router_logits, batch["attention_mask"].reshape(-1))
    return AUX_COEF * balancing + Z_COEF * z_loss


def assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference):
    trainer = make_trainer(model)
    batch = next(iter(trainer.get_train_dataloader()))
    loss, got = first_step(trainer, batch)
    reference_trainer = make_trainer(reference)
    task_loss, _ = first_step(reference_trainer, batch)
    router_losses(reference.model, batch).backward()  # accumulates onto the task loss's gradients
    expected = {name: p.grad for name, p in reference.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # The router terms matter at these coefficients: without them the router's gradient is far off.
    reference_trainer.model.zero_grad()
    first_step(reference_trainer, batch)
    router = "model.layers.0.mlp.router.weight"
    assert not torch.allclose(dict(reference.named_parameters())[router].grad, got[router], atol=1e-4)
    return loss, task_loss


def test_sft_trainer_fused_lm_head_optimises_both_router_losses(tmp_path, tokenizer):
    from trl import SFTConfig, SFTTrainer

    model, reference = twin_models(ModernLLMForCausalLM, tokenizer)
    rows = Dataset.from_list([{"text": f"{WORDS} {i}"} for i in range(8)])

    def make_trainer(m):
        args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, bf16=False,
                         gradient_checkpointing=False, report_to=[], max_length=32)
        return SFTTrainer(model=m, args=args, train_dataset=rows, processing_class=tokenizer)

    loss, task_loss = assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference)
    assert loss > task_loss  # TRL adds the balancing term's value itself; the z-loss enters by gradient only


def test_dpo_trainer_optimises_both_router_losses(tmp_path, tokenizer):
    from trl import DPOConfig, DPOTrainer

    model, reference = twin_models(ModernLLMForCausalLM, tokenizer)
    rows = Dataset.from_list([{"prompt": f"the cat {i}", "chosen": " sat on a mat", "rejected": " ran to the ball"}
                              for i in range(8)])

    def make_trainer(m):
        args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, bf16=False,
                         gradient_checkpointing=False, report_to=[], max_length=32)
        return DPOTrainer(model=m, ref_model=copy.deepcopy(m).eval(), args=args, train_dataset=rows,
                          processing_class=tokenizer)

    assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference)


def test_reward_trainer_optimises_both_router_losses(tmp_path, tokenizer):
    from trl import RewardConfig, RewardTrainer

    model, reference = twin_models(ModernLLMForSequenceClassification, tokenizer, num_labels=1)
    rows = Dataset.from_list([{"chosen": f"the cat sat {i}", "rejected": f"a dog ran to the big ball {i}"}
                              for i in range(8)])

    def make_trainer(m):
        args = RewardConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, bf16=False,
                            gradient_checkpointing=False, report_to=[], max_length=32)
        return RewardTrainer(model=m, args=args, train_dataset=rows, processing_class=tokenizer)

    loss, task_loss = assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference)
    torch.testing.assert_close(loss, task_loss)  # the reward loss itself is unchanged: both enter by gradient
