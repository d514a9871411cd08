"""How much disk a stage's outputs need: one checkpoint plus the final model, estimated before anything loads.

`validation` compares it with the free space of ``output_dir``'s disk, so a run does not fill the disk hours in.
"""

from __future__ import annotations

import os

BYTES_PER_PARAMETER_SAVED = 4 * 4  # one checkpoint (fp32 weights + AdamW's two moments) plus the final weights


def bytes_to_save(architecture: dict | None, model_args) -> int:
    """Disk one checkpoint plus the final model need, from the starting weights or the parameter count (0: unknown)."""
    folder = model_args.model_name_or_path
    if folder and os.path.isdir(folder):
        weights = sum(
            os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder) if name.endswith(".safetensors")
        )
        return weights * BYTES_PER_PARAMETER_SAVED // 4
    if not architecture:
        return 0
    hidden, layers = architecture.get("hidden_size", 0), architecture.get("num_hidden_layers", 0)
    intermediate = architecture.get("intermediate_size", 0) * max(1, architecture.get("num_experts", 0) or 0)
    vocab = architecture.get("vocab_size", model_args.tokenizer_vocab_size)
    parameters = layers * (4 * hidden * hidden + 3 * hidden * intermediate) + vocab * hidden
    return parameters * BYTES_PER_PARAMETER_SAVED


__all__ = ["BYTES_PER_PARAMETER_SAVED", "bytes_to_save"]
