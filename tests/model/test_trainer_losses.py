"""With experts, the loss TRL's SFTTrainer (fused LM-head path), DPOTrainer, RewardTrainer and GRPOTrainer optimise
includes the load-balancing loss and the router z-loss with the config's coefficients, each exactly once, and scaled
like the task loss under gradient accumulation.

For each trainer: the gradient of its first-step loss on a MoE model equals the gradient of the same trainer's loss on
a copy whose router coefficients are 0 (the task loss alone), plus the gradient of `aux_coef * aux + z_coef * z`
computed directly from that copy's router logits on the same batch. Under accumulation the trainer's own loop runs one
optimizer step over two micro-batches; the gradient it steps with must be the copy's (the task loss, scaled by the
trainer itself) plus the mean over the micro-batches of the router terms' gradients.
"""

import copy

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

from modeling_modern_llm import ModernLLMForCausalLM, ModernLLMForSequenceClassification
from modeling_modern_llm import modeling_modern_llm as modern
from modeling_modern_llm import moe_modern_llm as moe
from modeling_modern_llm.tokenizer import train_tokenizer
from modeling_modern_llm.training import InjectedLossScaleCallback

from .conftest import tiny_config

AUX_COEF, Z_COEF = 0.05, 0.2  # large, so that a missing or doubled term shows in the gradients
WORDS = "the cat sat on a mat and a dog ran to the big red ball while birds sang"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([WORDS] * 8, vocab_size=300)


def twin_models(model_class, tokenizer, **extras):
    """The MoE model under test and a copy with the same weights whose router coefficients are 0."""
    settings = dict(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_experts=4, num_experts_per_tok=2, **extras
    )
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
        args = SFTConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=4,
            bf16=False,
            gradient_checkpointing=False,
            report_to=[],
            max_length=32,
        )
        return SFTTrainer(model=m, args=args, train_dataset=rows, processing_class=tokenizer)

    loss, task_loss = assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference)
    assert loss > task_loss  # TRL adds the balancing term's value itself; the z-loss enters by gradient only


def test_dpo_trainer_optimises_both_router_losses(tmp_path, tokenizer):
    from trl import DPOConfig, DPOTrainer

    model, reference = twin_models(ModernLLMForCausalLM, tokenizer)
    rows = Dataset.from_list(
        [{"prompt": f"the cat {i}", "chosen": " sat on a mat", "rejected": " ran to the ball"} for i in range(8)]
    )

    def make_trainer(m):
        args = DPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=4,
            bf16=False,
            gradient_checkpointing=False,
            report_to=[],
            max_length=32,
        )
        return DPOTrainer(
            model=m, ref_model=copy.deepcopy(m).eval(), args=args, train_dataset=rows, processing_class=tokenizer
        )

    assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference)


def test_reward_trainer_optimises_both_router_losses(tmp_path, tokenizer):
    from trl import RewardConfig, RewardTrainer

    model, reference = twin_models(ModernLLMForSequenceClassification, tokenizer, num_labels=1)
    rows = Dataset.from_list(
        [{"chosen": f"the cat sat {i}", "rejected": f"a dog ran to the big ball {i}"} for i in range(8)]
    )

    def make_trainer(m):
        args = RewardConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=4,
            bf16=False,
            gradient_checkpointing=False,
            report_to=[],
            max_length=32,
        )
        return RewardTrainer(model=m, args=args, train_dataset=rows, processing_class=tokenizer)

    loss, task_loss = assert_trainer_optimises_task_plus_router_losses(make_trainer, model, reference)
    torch.testing.assert_close(loss, task_loss)  # the reward loss itself is unchanged: both enter by gradient


# ---------------------------------------------------------------- gradient accumulation, through each trainer's loop
def common_args(tmp_path, accumulation: int) -> dict:
    """One optimizer step over `accumulation` micro-batches of 2 rows, unclipped, nothing saved."""
    return dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        max_grad_norm=0.0,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )


class _StepGradients(TrainerCallback):
    """The gradients the optimizer steps with (before any update)."""

    def __init__(self):
        self.grads = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def one_accumulated_step(trainer):
    """Train one optimizer step with the recipes' callback; returns its gradients and each micro-batch's inputs."""
    recorded, compute_loss, capture = [], trainer.compute_loss, _StepGradients()

    def recording(model, inputs, *args, **kwargs):
        recorded.append(dict(inputs))
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = recording
    trainer.add_callback(capture)
    trainer.add_callback(InjectedLossScaleCallback(trainer))
    trainer.train()
    return capture.grads, recorded


def assert_accumulated_step_includes_router_losses_once(make_trainer, model, reference, router_inputs, accumulation):
    frozen = copy.deepcopy(reference)  # the weights before the step, for the directly computed router terms
    got, batches = one_accumulated_step(make_trainer(model))
    task, reference_batches = one_accumulated_step(make_trainer(reference))
    assert len(batches) == accumulation
    for batch, twin in zip(batches, reference_batches):  # both loops saw the same micro-batches
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, twin[key]), key
    routers = sum(router_losses(frozen.model, router_inputs(batch)) for batch in batches)
    (routers / accumulation).backward()
    direct = {name: p.grad for name, p in frozen.named_parameters() if p.grad is not None}
    assert got.keys() == task.keys()
    for name, grad in task.items():
        torch.testing.assert_close(got[name], grad + direct.get(name, 0), rtol=1e-4, atol=1e-6, msg=name)
    router = "model.layers.0.mlp.router.weight"
    if accumulation > 1:  # undivided router terms (what the injected ones were) would not match
        assert not torch.allclose(got[router], task[router] + accumulation * direct[router], atol=1e-4)
    assert not torch.allclose(got[router], task[router], atol=1e-4)  # and the router terms matter here


def _causal_inputs(batch):
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _grpo_inputs(batch):
    return {
        "input_ids": torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
        "attention_mask": torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
    }


def test_sft_accumulation_scales_the_router_losses_like_the_loss(tmp_path, tokenizer):
    from trl import SFTConfig, SFTTrainer

    model, reference = twin_models(ModernLLMForCausalLM, tokenizer)
    rows = Dataset.from_list([{"text": f"{WORDS} {i}" * (1 + i % 3)} for i in range(8)])

    def make_trainer(m):
        return SFTTrainer(
            model=m,
            args=SFTConfig(**common_args(tmp_path, 2), max_length=48),
            train_dataset=rows,
            processing_class=tokenizer,
        )

    assert_accumulated_step_includes_router_losses_once(make_trainer, model, reference, _causal_inputs, 2)


def test_dpo_accumulation_scales_the_router_losses_like_the_loss(tmp_path, tokenizer):
    from trl import DPOConfig, DPOTrainer

    model, reference = twin_models(ModernLLMForCausalLM, tokenizer)
    rows = Dataset.from_list(
        [{"prompt": f"the cat {i}", "chosen": " sat on a mat", "rejected": " ran to the ball"} for i in range(8)]
    )

    def make_trainer(m):
        return DPOTrainer(
            model=m,
            ref_model=copy.deepcopy(m).eval(),
            args=DPOConfig(**common_args(tmp_path, 2), max_length=32),
            train_dataset=rows,
            processing_class=tokenizer,
        )

    assert_accumulated_step_includes_router_losses_once(make_trainer, model, reference, _causal_inputs, 2)


def test_reward_accumulation_scales_the_router_losses_like_the_loss(tmp_path, tokenizer):
    from trl import RewardConfig, RewardTrainer

    model, reference = twin_models(ModernLLMForSequenceClassification, tokenizer, num_labels=1)
    rows = Dataset.from_list(
        [{"chosen": f"the cat sat {i}", "rejected": f"a dog ran to the big ball {i}"} for i in range(8)]
    )

    def make_trainer(m):
        return RewardTrainer(
            model=m,
            args=RewardConfig(**common_args(tmp_path, 2), max_length=32),
            train_dataset=rows,
            processing_class=tokenizer,
        )

    assert_accumulated_step_includes_router_losses_once(make_trainer, model, reference, _causal_inputs, 2)


def _completion_length_reward(completions, **kwargs):
    return [float(len(text)) for text in completions]  # varies within a group, so the advantages are not all 0


@pytest.mark.parametrize("accumulation", [1, 2])
def test_grpo_optimises_both_router_losses_once_scaled_like_the_loss(tmp_path, tokenizer, accumulation):
    from trl import GRPOConfig, GRPOTrainer

    model, reference = twin_models(ModernLLMForCausalLM, tokenizer)
    rows = Dataset.from_list([{"prompt": f"the cat {i} sat on"} for i in range(8)])

    def make_trainer(m):
        args = GRPOConfig(
            **common_args(tmp_path, accumulation), num_generations=2, max_completion_length=8, temperature=1.0
        )
        return GRPOTrainer(
            model=m, reward_funcs=_completion_length_reward, args=args, train_dataset=rows, processing_class=tokenizer
        )

    assert_accumulated_step_includes_router_losses_once(make_trainer, model, reference, _grpo_inputs, accumulation)
