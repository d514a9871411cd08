"""The LoRA helpers in-process, on tiny models: which projections are adapted, the verifier's head, and the merged
model built both ways (in place, and from the base loaded again as QLoRA's final is)."""

import logging

import torch
from peft import get_peft_model
from torch import nn

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.training import ModelArguments, adapters

TINY = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


class _StackedExperts(nn.Module):
    """Attention projections as nn.Linear, the experts' as one stacked parameter (as a fused MoE stores them)."""

    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(8, 8) for _ in range(4))
        self.gate_up_proj = nn.Parameter(torch.zeros(4, 8, 32))


def test_lora_targets_the_projections_that_are_linear_layers_and_says_which_are_not(caplog):
    args = ModelArguments(use_peft=True)
    with caplog.at_level(logging.INFO, logger=adapters.__name__):
        config = adapters.stage_peft_config("sft", args, _StackedExperts())
    assert config.target_modules == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert "gate_proj, up_proj, down_proj: not nn.Linear layers in this model, not adapted" in caplog.text
    model = ModernLLMForCausalLM(ModernLLMConfig(**TINY))
    assert adapters.linear_projections(model) == list(adapters.PROJECTIONS)
    named = adapters.stage_peft_config("sft", ModelArguments(use_peft=True, lora_target_modules=["q_proj"]), model)
    assert named.target_modules == {"q_proj"}  # the user's choice stands (a name, not TRL's one-item string)
    assert len(get_peft_model(model, named).targeted_module_names) == TINY["num_hidden_layers"]
    assert adapters.stage_peft_config("sft", ModelArguments(), model) is None


def test_the_verifier_trains_its_score_head_in_full():
    config = adapters.stage_peft_config("verifier", ModelArguments(use_peft=True), _StackedExperts())
    assert config.task_type == "SEQ_CLS" and "score" in config.modules_to_save


def test_merged_from_the_reloaded_base_equals_merged_in_place(tmp_path, monkeypatch):
    base = ModernLLMForCausalLM(ModernLLMConfig(**TINY)).eval()
    base.save_pretrained(tmp_path / "base")
    config = adapters.stage_peft_config("sft", ModelArguments(use_peft=True, lora_r=4), base)
    peft_model = get_peft_model(base, config).eval()  # eval: no LoRA dropout in the outputs compared
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # a trained adapter (B starts at zero)
    input_ids = torch.randint(0, TINY["vocab_size"], (2, 12))
    with torch.no_grad():
        expected = peft_model(input_ids).logits
    # QLoRA's path: the base loaded again (unquantized, in the compute dtype) and the saved adapter merged into it
    monkeypatch.setattr(adapters, "_quantized", lambda model: True)
    base.config.dtype = "float32"
    reloaded = adapters.save_adapter_and_merge(peft_model, str(tmp_path / "final_a"), str(tmp_path / "base"))
    monkeypatch.setattr(adapters, "_quantized", lambda model: False)
    in_place = adapters.save_adapter_and_merge(peft_model, str(tmp_path / "final_b"), str(tmp_path / "base"))
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(input_ids).logits, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(in_place.eval()(input_ids).logits, expected, rtol=1e-5, atol=1e-5)
    assert (tmp_path / "final_a" / "adapter" / "adapter_model.safetensors").is_file()
    assert type(reloaded) is ModernLLMForCausalLM and not any("lora" in n for n, _ in reloaded.named_parameters())
