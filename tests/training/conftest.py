"""Fixtures of the training tests: one tiny pretrain -> SFT -> DPO -> verifier -> GRPO chain shared by the stage
tests."""

import pytest
from training_helpers import run_recipe


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny run: {stage: final folder}, each stage started from the previous one's final model."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    finals = {}
    previous = None
    for stage in ("pretrain", "sft", "dpo", "verifier", "grpo"):
        start = finals["dpo"] if stage == "grpo" else finals.get(previous)  # GRPO starts from DPO, as the table says
        extra = ("--model_name_or_path", start) if start else ()
        if stage == "grpo":
            extra += ("--reward_model_name_or_path", finals["verifier"])
        run_recipe(stage, run_dir / stage, *extra)
        finals[stage] = str(run_dir / f"{stage}_final")
        previous = stage
    return finals
