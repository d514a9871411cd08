"""Weight decay for ModernLLM under transformers' Trainer and TRL's trainers (which inherit its optimizer setup).

Trainer decays every parameter except those its name patterns call a bias or a norm
(`Trainer.get_decay_parameter_names`; in transformers 5.23: `bias`, `layernorm`, `rmsnorm`, `norm`, `*_norm`). That
already spares the QK-norm weights (`q_norm`, `k_norm`), but not the attention sinks (`self_attn.sinks`): they are
per-head logit biases, and decay would pull every head's sink logit towards 0 whatever the data says.

    trainer = SFTTrainer(...)
    exclude_sinks_and_norms_from_weight_decay(trainer)  # before trainer.train(), which builds the optimizer

Every recipe makes this call right after building its trainer, and `stage.train_with_resume` refuses a trainer
without it. The optimizer itself is still built by Trainer, inside `train()`, from these names: under FSDP it must be
built after the model is wrapped, and with LoRA from the adapter's parameters, which TRL's trainers create in their
`__init__` (from `peft_config`), so an optimizer made beforehand and passed as `optimizers=` would not be the same.
"""

import re

from torch import nn

# Parameters that never decay, on top of Trainer's own list (kept here too, so a change of Trainer's patterns cannot
# bring the norms back): the sink logits and the weight of every norm of the model.
NO_DECAY_PATTERNS = (
    re.compile(r"(?:^|\.)sinks$"),  # self_attn.sinks
    re.compile(r"norm\.weight$"),  # input_layernorm, post_attention_layernorm, q_norm, k_norm, model.norm
    re.compile(r"(?:^|\.)bias$"),
)


def decays(name: str) -> bool:
    """Whether the parameter called `name` (as in `model.named_parameters()`) should get weight decay."""
    return not any(pattern.search(name) for pattern in NO_DECAY_PATTERNS)


def decay_parameter_names(model: nn.Module, trainer_names: list[str] | None = None) -> list[str]:
    """The parameters of `model` to decay: `trainer_names` (Trainer's choice; every parameter when None) minus the
    sinks, norm weights and biases."""
    names = [name for name, _ in model.named_parameters()] if trainer_names is None else trainer_names
    return [name for name in names if decays(name)]


def exclude_sinks_and_norms_from_weight_decay(trainer) -> None:
    """Makes `trainer` (a transformers `Trainer`, or TRL's SFT/DPO/Reward trainers) put the attention sinks and all
    norm weights in its no-decay parameter group. Call it before `trainer.train()`: Trainer reads the names when it
    builds the optimizer (`create_optimizer`), through the method this replaces on the instance."""
    if excludes_sinks_and_norms(trainer):
        return
    trainer_decay_parameter_names = trainer.get_decay_parameter_names

    def get_decay_parameter_names(model: nn.Module) -> list[str]:
        return decay_parameter_names(model, trainer_decay_parameter_names(model))

    get_decay_parameter_names.excludes_sinks_and_norms = True
    trainer.get_decay_parameter_names = get_decay_parameter_names


def excludes_sinks_and_norms(trainer) -> bool:
    """Whether `exclude_sinks_and_norms_from_weight_decay` was applied to `trainer`."""
    return getattr(trainer.get_decay_parameter_names, "excludes_sinks_and_norms", False)
