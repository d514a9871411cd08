"""A NaN or infinite loss stops the stage with a clear message and keeps the last good checkpoint."""

import os

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback, TrainingArguments

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.training import (
    NonFiniteLossError,
    exclude_sinks_and_norms_from_weight_decay,
    stage_callbacks,
    train_with_resume,
)


class PoisonWeights(TrainerCallback):
    """Sets one weight to NaN after ``step``: the next forward pass has a NaN loss."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.model.norm.weight[0] = float("nan")


@pytest.mark.parametrize("logging_steps", [1, 5])  # 5: caught by the weight check before the step-6 save
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, logging_steps):
    config = ModernLLMConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    model = ModernLLMForCausalLM(config)
    ids = torch.randint(0, 64, (64, 16))
    dataset = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=12,
        per_device_train_batch_size=4,
        save_steps=2,
        logging_steps=logging_steps,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        callbacks=[*stage_callbacks(language_modelling=True), PoisonWeights(step=5)],
    )
    exclude_sinks_and_norms_from_weight_decay(trainer)
    with pytest.raises(NonFiniteLossError, match=r"checkpoint-4") as error:
        train_with_resume(trainer)
    assert "Lower learning_rate" in str(error.value)
    saved = sorted(name for name in os.listdir(tmp_path) if name.startswith("checkpoint-"))
    assert saved == ["checkpoint-2", "checkpoint-4"]  # nothing after the poisoned step 5
    weights = load_file(str(tmp_path / "checkpoint-4" / "model.safetensors"))
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
