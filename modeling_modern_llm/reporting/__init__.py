"""What the report scripts (report/) share: results loading with clear errors, attention statistics,
GSM8K exact-match curves, Markdown formatting, and the model card's evaluation section.

The report only reads files (docs/DESIGN.md); nothing here trains or evaluates a model.
"""

from .attention import head_statistics, layer_statistics
from .gsm8k_curves import exact_match_curve, sample_sizes
from .markdown import fmt, fmt_percent, fmt_signed, markdown_table
from .model_card import update_model_card_results
from .results import (
    ResultsFileError,
    count_parameters,
    final_checkpoints,
    load_loss_history,
    load_results_file,
    load_training_summaries,
    producing_command,
    read_json,
)

__all__ = [
    "ResultsFileError",
    "count_parameters",
    "exact_match_curve",
    "final_checkpoints",
    "fmt",
    "fmt_percent",
    "fmt_signed",
    "head_statistics",
    "layer_statistics",
    "load_loss_history",
    "load_results_file",
    "load_training_summaries",
    "markdown_table",
    "producing_command",
    "read_json",
    "sample_sizes",
    "update_model_card_results",
]
