"""The pipeline's bookkeeping: a failed step stops it, and a rerun adds the earlier attempt's time."""

import importlib.util
import json
import os
import sys

import pytest
from training_helpers import REPO

spec = importlib.util.spec_from_file_location("recipes_pipeline", os.path.join(REPO, "recipes", "pipeline.py"))
pipeline = sys.modules["recipes_pipeline"] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
spec.loader.exec_module(pipeline)


def test_failed_then_rerun_step_is_recorded_with_summed_time(tmp_path):
    path, summary = str(tmp_path / "pipeline_summary.json"), {"steps": {}}
    with pytest.raises(SystemExit, match="exit code 3"):
        pipeline.run_step("sft", [sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(3)"], summary, path)
    with open(path) as handle:
        failed = json.load(handle)["steps"]["sft"]
    assert failed["status"] == "failed (exit code 3)" and failed["attempts"] == 1 and failed["wall_time_s"] >= 0.3
    pipeline.run_step("sft", [sys.executable, "-c", "pass"], summary, path)
    with open(path) as handle:
        done = json.load(handle)
    assert done["steps"]["sft"]["status"] == "ok" and done["steps"]["sft"]["attempts"] == 2
    assert done["steps"]["sft"]["wall_time_s"] >= failed["wall_time_s"] and done["total_wall_time_s"] >= 0.3


def test_stage_commands_chain_the_final_folders(tmp_path):
    args = pipeline.PipelineArguments(
        run_name="r", stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        launcher="accelerate launch --config_file accelerate_configs/single_gpu.yaml", verifier_policy="sft",
        stage_args={"dpo": "--beta 0.2"})
    dpo = pipeline.stage_command(args, "dpo", "runs/r")
    # accelerate runs under this interpreter, so an unactivated virtual environment still works
    assert dpo[:5] == [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                       "accelerate_configs/single_gpu.yaml"]
    assert dpo[dpo.index("--model_name_or_path") + 1] == "runs/r/sft_final" and dpo[-2:] == ["--beta", "0.2"]
    verifier = pipeline.stage_command(args, "verifier", "runs/r")
    assert verifier[verifier.index("--model_name_or_path") + 1] == "runs/r/sft_final"
    assert "--model_name_or_path" not in pipeline.stage_command(args, "pretrain", "runs/r")
    with pytest.raises(ValueError, match="verifier_policy"):
        pipeline.PipelineArguments(run_name="r", stage_configs=args.stage_configs, verifier_policy="verifier")


@pytest.mark.parametrize("launcher", [None, "python", "python3 -X faulthandler"])
def test_stages_run_with_the_interpreter_running_the_pipeline(launcher):
    """`python` from PATH may be another environment's (an unactivated venv): every stage uses sys.executable."""
    args = pipeline.PipelineArguments(
        run_name="r", stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        launcher=launcher)
    assert pipeline.stage_command(args, "sft", "runs/r")[0] == sys.executable


def test_a_rehearsal_pushes_nothing_and_records_it(tmp_path):
    args = pipeline.PipelineArguments(
        run_name="r", stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        runs_dir=str(tmp_path), push_to_hub=True, hub_model_id="me/r", rehearse=True)
    path, summary = str(tmp_path / "pipeline_summary.json"), {"steps": {}}
    # A real push of these (missing) folders would fail and stop the pipeline
    pipeline.push_stages(args, {s: str(tmp_path / f"{s}_final") for s in pipeline.STAGES}, summary, path)
    steps = json.load(open(path))["steps"]
    assert [steps[f"push-{s}"]["status"] for s in pipeline.STAGES] == ["skipped: rehearsal"] * 4
    assert "me/r-verifier" in steps["push-verifier"]["command"]
