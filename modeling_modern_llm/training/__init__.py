"""What the training recipes share: argument dataclasses, callbacks, checkpoint checks and resume, the final save."""

from .arguments import (
    DPOStageConfig,
    ModelArguments,
    PretrainConfig,
    ScriptArguments,
    SFTStageConfig,
    VerifierConfig,
    validate_args,
)
from .callbacks import NonFiniteLossCallback, NonFiniteLossError, PerplexityCallback, ThroughputCallback
from .checkpoints import checkpoint_problem, final_model_problem, last_valid_checkpoint, safetensors_problem
from .model_card import write_model_card, write_training_summary
from .stage import (
    build_model_config,
    build_tokenizer,
    final_dir,
    load_split,
    load_train_and_eval,
    model_load_kwargs,
    save_final,
    setup_stage,
    stage_callbacks,
    train_with_resume,
)

__all__ = [
    "DPOStageConfig",
    "ModelArguments",
    "PretrainConfig",
    "ScriptArguments",
    "SFTStageConfig",
    "VerifierConfig",
    "validate_args",
    "NonFiniteLossCallback",
    "NonFiniteLossError",
    "PerplexityCallback",
    "ThroughputCallback",
    "checkpoint_problem",
    "final_model_problem",
    "last_valid_checkpoint",
    "safetensors_problem",
    "write_model_card",
    "write_training_summary",
    "build_model_config",
    "build_tokenizer",
    "final_dir",
    "load_split",
    "load_train_and_eval",
    "model_load_kwargs",
    "save_final",
    "setup_stage",
    "stage_callbacks",
    "train_with_resume",
]
