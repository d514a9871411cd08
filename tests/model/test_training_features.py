"""What trainers rely on: gradient checkpointing gives the same gradients, and PEFT LoRA (with the documented target
modules, and the stacked expert weights as target parameters) trains and merges back into a plain ModernLLM."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from modeling_modern_llm import ModernLLMForCausalLM

from .conftest import left_padded_batch, tiny_model

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_EXPERT_PARAMETERS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]  # stacked 3D weights, not modules


@pytest.mark.parametrize("extras", [dict(), dict(num_experts=4, num_experts_per_tok=2)])
def test_gradient_checkpointing_gives_the_same_gradients(extras):
    model = tiny_model("sdpa", **extras).train()
    input_ids, attention_mask = left_padded_batch([10, 6])
    labels = input_ids.masked_fill(attention_mask == 0, -100)

    def gradients():
        model.zero_grad()
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    checkpointed = gradients()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_lora_on_the_documented_targets_trains_and_merges():
    model = tiny_model("sdpa", num_experts=2, num_experts_per_tok=1)
    input_ids = torch.randint(3, 128, (2, 8))
    base_logits = model(input_ids).logits
    lora = get_peft_model(
        model,
        LoraConfig(
            r=4, lora_alpha=8, target_modules=LORA_TARGETS, target_parameters=LORA_EXPERT_PARAMETERS, lora_dropout=0.0
        ),
    )
    wrapped = {name for name, _ in lora.named_parameters() if "lora_A" in name}
    assert any(".self_attn.q_proj." in name for name in wrapped)
    assert sum(".mlp.experts." in name for name in wrapped) == 2 * 2  # both stacked weights of both layers
    trainable = [p for p in lora.parameters() if p.requires_grad]
    assert trainable and all(p.requires_grad == ("lora_" in n) for n, p in lora.named_parameters())
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    lora.train()
    for _ in range(3):
        lora(input_ids=input_ids, labels=input_ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    lora.eval()
    adapted_logits = lora(input_ids).logits
    assert not torch.allclose(adapted_logits, base_logits, atol=1e-4)  # the adapter changed the model

    merged = lora.merge_and_unload()
    assert type(merged) is ModernLLMForCausalLM
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids).logits, adapted_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extras", [dict(), dict(num_experts=2, num_experts_per_tok=1)])
def test_trl_sft_trainer_trains_the_model_with_its_default_router_settings(tmp_path, extras):
    """TRL asks any config with a non-zero `router_aux_loss_coef` for router logits: a dense model must not crash
    there, and a MoE model must hand TRL its aux loss."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from modeling_modern_llm.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["a tiny corpus for a tiny tokenizer"] * 4, vocab_size=300)
    model = tiny_model("sdpa", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **extras).train()
    assert (model.config.router_aux_loss_coef > 0) == bool(extras)
    rows = [{"text": f"a tiny corpus for a tiny tokenizer number {i}"} for i in range(8)]
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    assert trainer.aux_loss_enabled == bool(extras)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    if extras:  # TRL logged the router's aux loss it added
        assert any("aux_loss" in entry for entry in trainer.state.log_history)
