"""The one table of modern-llm's training stages, and of the baselines the evaluation compares them with.

The pipeline runs `STAGES` in order; the evaluation infers a checkpoint's stage from its folder and prompts chat
stages through their chat template; the report names rows by `display_name`; the model cards say `purpose`.
Imports nothing from the package.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    name: str  # folder and command-line name: <run>/<name>_final
    display_name: str  # in the report's tables
    purpose: str  # one sentence for the model card: "This is <purpose>."
    previous: str | None  # the stage whose final model it starts from (the verifier: its default policy)
    model_class: str  # the Auto class its checkpoint loads with
    chat: bool  # evaluated through its chat template


STAGES = (
    Stage(
        "pretrain",
        "pretrain",
        "a base language model pretrained from scratch on plain text (causal LM loss on packed sequences)",
        None,
        "AutoModelForCausalLM",
        chat=False,
    ),
    Stage(
        "sft",
        "SFT",
        "a chat model: the pretrained model fine-tuned on instructions in ChatML, loss on assistant tokens only",
        "pretrain",
        "AutoModelForCausalLM",
        chat=True,
    ),
    Stage(
        "dpo",
        "DPO",
        "the SFT model aligned with Direct Preference Optimization against a frozen copy of itself",
        "sft",
        "AutoModelForCausalLM",
        chat=True,
    ),
    Stage(
        "verifier",
        "verifier",
        "a GSM8K verifier (reward model, one score per solution) trained on the policy's "
        "own samples labelled by final-answer correctness (Cobbe et al. 2021)",
        "dpo",
        "AutoModelForSequenceClassification",
        chat=False,
    ),
    Stage(
        "grpo",
        "GRPO",
        "the DPO model trained with Group Relative Policy Optimization on GSM8K training problems, "
        "rewarded for a correct final answer (and optionally by the verifier)",
        "dpo",
        "AutoModelForCausalLM",
        chat=True,
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
POLICY_STAGES = tuple(stage.name for stage in STAGES if stage.model_class == "AutoModelForCausalLM")
BASELINES = {"gpt2": "GPT-2", "distilgpt2": "DistilGPT-2"}  # Hub id -> display name; scored like our stages


FINAL_SUFFIX = "_final"  # a stage's finished model: <output_dir>_final, so <run>/<stage>_final in a pipeline run


def final_folder(output_dir: str) -> str:
    """Where a stage writing checkpoints to `output_dir` puts its finished model."""
    return output_dir.rstrip("/") + FINAL_SUFFIX


def stage_final(run_dir, stage: str) -> str:
    """`<run_dir>/<stage>_final`, the finished model of `stage` in a pipeline run."""
    return final_folder(os.path.join(run_dir, stage))


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def infer_stage(path: str) -> str | None:
    """The stage of a checkpoint folder named `<stage>_final` or `<stage>/checkpoint-N`; None for any other model."""
    pattern = "|".join(STAGE_NAMES)
    for part in reversed(Path(path).parts[-2:]):
        if match := re.fullmatch(rf"({pattern})(?:_final)?", part):
            return match.group(1)
    return None
