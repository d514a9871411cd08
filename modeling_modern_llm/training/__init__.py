"""What the training recipes share: argument dataclasses, checks before anything loads, callbacks, checkpoint checks
and resume, LoRA adapters, weight-decay groups, the final save and its push to the Hub, and the rehearsal of a run on
a small machine; and what `recipes/pipeline.py` runs: its steps (`pipeline_steps`), each launched and stopped as a
process of its own (`supervision`)."""

from .adapters import ADAPTER_DIR, stage_peft_config

from .arguments import (
    DPOStageConfig,
    GRPOStageConfig,
    ModelArguments,
    PretrainConfig,
    ScriptArguments,
    SFTStageConfig,
    VerifierConfig,
)
from .callbacks import (
    GracefulStopCallback,
    InjectedLossScaleCallback,
    NonFiniteLossCallback,
    NonFiniteLossError,
    PerplexityCallback,
    ThroughputCallback,
)
from .checkpoints import (
    checkpoint_layout,
    checkpoint_problem,
    final_model_problem,
    last_valid_checkpoint,
    safetensors_problem,
    torch_file_problem,
)
from .hub import PushTarget, push_folder, push_target
from .model_card import write_model_card, write_training_summary
from .problems import Problem, problems_error
from .optimization import exclude_sinks_and_norms_from_weight_decay
from .recipe_steps import (
    STOPPED_EXIT_CODE,
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
from .validation import (
    STAGE_ARGUMENTS,
    AccelerateSetup,
    parse_stage_args,
    stage_main,
    stage_problems,
    validate_stage,
)

__all__ = [
    "ADAPTER_DIR",
    "stage_peft_config",
    "DPOStageConfig",
    "GRPOStageConfig",
    "ModelArguments",
    "PretrainConfig",
    "ScriptArguments",
    "SFTStageConfig",
    "VerifierConfig",
    "GracefulStopCallback",
    "InjectedLossScaleCallback",
    "NonFiniteLossCallback",
    "NonFiniteLossError",
    "PerplexityCallback",
    "ThroughputCallback",
    "checkpoint_layout",
    "checkpoint_problem",
    "final_model_problem",
    "last_valid_checkpoint",
    "safetensors_problem",
    "torch_file_problem",
    "PushTarget",
    "push_folder",
    "push_target",
    "write_model_card",
    "write_training_summary",
    "Problem",
    "problems_error",
    "exclude_sinks_and_norms_from_weight_decay",
    "STOPPED_EXIT_CODE",
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
    "STAGE_ARGUMENTS",
    "AccelerateSetup",
    "parse_stage_args",
    "stage_main",
    "stage_problems",
    "validate_stage",
]
