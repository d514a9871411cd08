"""GRPO is a chat policy stage after DPO: the evaluation prompts it through its chat template, records its stage, and
the stage gains measure it against DPO."""

import pytest

from modeling_modern_llm.evaluation import results
from modeling_modern_llm.evaluation.harness import EvaluationArguments, model_specs
from modeling_modern_llm.stages import POLICY_STAGES, get_stage, infer_stage


def test_grpo_is_the_policy_stage_after_dpo():
    assert POLICY_STAGES == ("pretrain", "sft", "dpo", "grpo")
    assert get_stage("grpo").previous == "dpo" and get_stage("grpo").chat
    assert infer_stage("experiments/runs/demo/grpo_final") == infer_stage("runs/demo/grpo/checkpoint-40") == "grpo"


def test_the_evaluation_asks_grpo_through_its_chat_template():
    (spec,) = model_specs(EvaluationArguments(model=["me/policy"], stages=["grpo"], chat_template=True))
    assert spec.stage == "grpo" and spec.chat


def _row(stage, greedy):
    cells = dict.fromkeys(results.COLUMNS)
    cells["GSM8K greedy"] = {"value": greedy, "stderr": 0.02, "n": 300, "task": "embedded_gsm8k_chat"}
    return {
        "model": f"{stage}_final",
        "display_name": get_stage(stage).display_name,
        "stage": stage,
        "status": "ok",
        "cells": cells,
    }


def test_the_stage_gains_measure_grpo_against_dpo():
    rows = [_row("sft", 0.80), _row("grpo", 0.91), _row("dpo", 0.85)]  # in any order, as the index lists them
    gains = {g["stage"]: g for g in results.stage_gains(None, rows) if g["measure"] == "GSM8K greedy"}
    assert list(gains) == ["sft", "dpo", "grpo"]
    assert gains["grpo"]["delta_vs_previous_stage"] == pytest.approx(0.06)
    assert gains["grpo"]["delta_stderr"] == pytest.approx(0.02 * 2**0.5)
