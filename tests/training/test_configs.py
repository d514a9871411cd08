"""Every shipped config parses and passes the checks a run makes before loading anything: recipe YAMLs of each scale,
pipeline YAMLs, accelerate configs (tests/training/test_validation.py has the failure cases)."""

import glob
import importlib.util
import os
import sys

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from training_helpers import REPO
from trl import TrlParser

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.training import (
    STAGE_ARGUMENTS,
    parse_stage_args,
    stage_problems,
)

SCALES = ("cpu-demo", "gpu-smoke", "gpu-full")


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("stage", list(STAGE_ARGUMENTS))
def test_recipe_config_parses_and_validates(scale, stage, tmp_path):
    path = os.path.join(REPO, "recipes", "configs", scale, f"{stage}.yaml")
    script, training, model = parse_stage_args(
        stage, ["--config", path, "--output_dir", str(tmp_path)], for_validation=True
    )
    assert stage_problems(stage, script, training, model, check_inputs=False) == []
    assert training.bf16 is (scale != "cpu-demo")
    if stage == "pretrain":  # the model the YAML describes builds (on the meta device: no memory)
        fields = {**model.model_config, "vocab_size": model.tokenizer_vocab_size}
        with torch.device("meta"):
            ModernLLMForCausalLM(ModernLLMConfig(**fields))
    if scale == "gpu-full":
        assert training.max_steps == {"pretrain": 40000, "sft": 5000, "dpo": 3000, "verifier": 7473, "grpo": 400}[stage]


@pytest.mark.parametrize("scale", SCALES)
def test_pipeline_config_parses(scale):
    spec = importlib.util.spec_from_file_location("recipes_pipeline", os.path.join(REPO, "recipes", "pipeline.py"))
    pipeline = sys.modules["recipes_pipeline"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    cwd = os.getcwd()
    os.chdir(REPO)  # stage config paths are relative to the repository
    try:
        (args,) = TrlParser((pipeline.PipelineArguments,)).parse_args_and_config(
            ["--config", f"recipes/configs/{scale}/pipeline.yaml"]
        )
    finally:
        os.chdir(cwd)
    assert args.stages == list(pipeline.STAGES)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "accelerate_configs", "*.yaml"))))
def test_accelerate_config_loads(path):
    config = load_config_from_file(path)
    expected = {"cpu_ddp": 2, "single_gpu": 1}.get(os.path.basename(path)[:-5], 8)
    assert config.num_processes == expected
