"""No weight decay on the attention sinks and the norm weights under Trainer and TRL's SFTTrainer, once
`exclude_sinks_and_norms_from_weight_decay` is applied (each recipe calls it where it builds its trainer); without it,
Trainer decays the sinks."""

import pytest
import torch
from transformers import Trainer, TrainingArguments

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.training.optimization import decays, exclude_sinks_and_norms_from_weight_decay

NO_DECAY = (
    "model.layers.0.self_attn.sinks",
    "model.layers.0.self_attn.q_norm.weight",
    "model.layers.0.self_attn.k_norm.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.norm.weight",
)
DECAY = (
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.embed_tokens.weight",
    "lm_head.weight",
)


def tiny_model(**overrides):
    config = ModernLLMConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=False,
        **overrides,
    )
    return ModernLLMForCausalLM(config)


def optimizer_groups(trainer):
    """{parameter name: its group's weight decay} of the optimizer the trainer builds."""
    optimizer = trainer.create_optimizer()
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    return {name: decay_of[id(p)] for name, p in trainer.model.named_parameters()}


def trainer_for(model, tmp_path, kind):
    if kind == "trainer":
        args = TrainingArguments(output_dir=str(tmp_path), weight_decay=0.1, report_to=[], use_cpu=True)
        return Trainer(model=model, args=args)
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from modeling_modern_llm.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["a tiny corpus for a tiny tokenizer"] * 4, vocab_size=300)
    args = SFTConfig(output_dir=str(tmp_path), weight_decay=0.1, report_to=[], bf16=False, gradient_checkpointing=False)
    rows = Dataset.from_list([{"text": "a tiny corpus"}] * 4)
    return SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)


def test_trainer_alone_decays_the_sinks_but_spares_the_norms(tmp_path):
    """The gap this module closes (transformers 5.23): QK-norm weights already match Trainer's `_norm` pattern."""
    groups = optimizer_groups(trainer_for(tiny_model(), tmp_path, "trainer"))
    assert groups["model.layers.0.self_attn.sinks"] == 0.1
    assert groups["model.layers.0.self_attn.q_norm.weight"] == 0.0


@pytest.mark.parametrize("kind", ["trainer", "sft"])
def test_sinks_and_norm_weights_get_no_weight_decay(tmp_path, kind):
    trainer = trainer_for(tiny_model(num_experts=2, num_experts_per_tok=1), tmp_path, kind)
    exclude_sinks_and_norms_from_weight_decay(trainer)
    groups = optimizer_groups(trainer)
    for name in NO_DECAY:
        assert groups[name] == 0.0, name
    for name in DECAY + ("model.layers.0.mlp.experts.gate_up_proj", "model.layers.0.mlp.router.weight"):
        assert groups[name] == 0.1, name
    assert all(groups[name] == 0.1 for name in groups if decays(name))  # nothing else left out


def test_a_decayed_step_leaves_sinks_and_norms_as_their_gradients_move_them(tmp_path):
    """With zero gradients, AdamW moves only decayed parameters: the sinks and norm weights stay put."""
    model = tiny_model()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(2.0)
    trainer = trainer_for(model, tmp_path, "trainer")
    trainer.args.learning_rate = 0.1
    exclude_sinks_and_norms_from_weight_decay(trainer)
    optimizer = trainer.create_optimizer()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == (not decays(name)), name


def test_every_recipe_groups_weight_decay_where_it_builds_its_trainer():
    """Each recipe makes the call itself, visibly, between building its trainer and training it."""
    import ast
    import os

    recipes = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")
    for stage in ("pretrain", "sft", "dpo", "verifier", "grpo"):
        with open(os.path.join(recipes, f"{stage}.py")) as handle:
            tree = ast.parse(handle.read())
        calls = [
            node.func.id
            for node in sorted(ast.walk(tree), key=lambda node: getattr(node, "lineno", 0))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        ]
        assert "exclude_sinks_and_norms_from_weight_decay" in calls, stage
        assert calls.index("exclude_sinks_and_norms_from_weight_decay") < calls.index("train_with_resume"), stage


def _one_step_trainer(tmp_path):
    from datasets import Dataset

    from modeling_modern_llm.training.recipe_steps import stage_callbacks

    rows = Dataset.from_list([{"input_ids": [1, 2, 3, 4], "labels": [1, 2, 3, 4]}] * 2)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        weight_decay=0.1,
        report_to=[],
        use_cpu=True,
        max_steps=1,
        per_device_train_batch_size=2,
        save_strategy="no",
    )
    return Trainer(model=tiny_model(), args=args, train_dataset=rows, callbacks=stage_callbacks(False))


def test_train_with_resume_trains_with_the_grouping_and_refuses_a_trainer_without_it(tmp_path):
    """`train_with_resume` trains the optimizer built from the grouping the recipe applied, and does not apply it
    itself: a trainer without it is refused before any step."""
    from modeling_modern_llm.training.recipe_steps import train_with_resume

    trainer = _one_step_trainer(tmp_path)
    with pytest.raises(RuntimeError, match="exclude_sinks_and_norms_from_weight_decay"):
        train_with_resume(trainer)
    assert trainer.optimizer is None and trainer.state.global_step == 0
    exclude_sinks_and_norms_from_weight_decay(trainer)
    exclude_sinks_and_norms_from_weight_decay(trainer)  # twice is once
    train_with_resume(trainer)
    decay_of = {id(p): group["weight_decay"] for group in trainer.optimizer.param_groups for p in group["params"]}
    for name, parameter in trainer.model.named_parameters():
        assert decay_of[id(parameter)] == (0.1 if decays(name) else 0.0), name
