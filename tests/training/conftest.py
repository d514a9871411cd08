"""Fixtures of the training tests: one tiny pretrain -> SFT -> DPO -> verifier chain shared by the stage tests."""

import pytest
from training_helpers import run_recipe


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny run: {stage: final folder}, each stage started from the previous one's final model."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    finals = {}
    previous = None
    for stage in ("pretrain", "sft", "dpo", "verifier"):
        extra = ("--model_name_or_path", finals[previous]) if previous else ()
        run_recipe(stage, run_dir / stage, *extra)
        finals[stage] = str(run_dir / f"{stage}_final")
        previous = stage
    return finals
