"""The pipeline's bookkeeping: a failed step stops it, a rerun adds the earlier attempt's time, and each seed of
`--seeds` gets its own folder and seed. The steps live in the library (`training.supervision`,
`training.pipeline_steps`); the arguments in `recipes/pipeline.py`."""

import importlib.util
import json
import os
import shlex
import sys

import pytest
from training_helpers import REPO

from modeling_modern_llm.training import pipeline_steps, supervision

spec = importlib.util.spec_from_file_location("recipes_pipeline", os.path.join(REPO, "recipes", "pipeline.py"))
pipeline = sys.modules["recipes_pipeline"] = importlib.util.module_from_spec(spec)  # dataclasses look it up there
spec.loader.exec_module(pipeline)


def test_failed_then_rerun_step_is_recorded_with_summed_time(tmp_path):
    path, summary = str(tmp_path / "pipeline_summary.json"), {"steps": {}}
    with pytest.raises(SystemExit, match="exit code 3"):
        supervision.run_step(
            "sft", [sys.executable, "-c", "import sys, time; time.sleep(0.3); sys.exit(3)"], summary, path
        )
    with open(path) as handle:
        failed = json.load(handle)["steps"]["sft"]
    assert failed["status"] == "failed (exit code 3)" and failed["attempts"] == 1 and failed["wall_time_s"] >= 0.3
    supervision.run_step("sft", [sys.executable, "-c", "pass"], summary, path)
    with open(path) as handle:
        done = json.load(handle)
    assert done["steps"]["sft"]["status"] == "ok" and done["steps"]["sft"]["attempts"] == 2
    assert done["steps"]["sft"]["wall_time_s"] >= failed["wall_time_s"] and done["total_wall_time_s"] >= 0.3


def test_stage_commands_chain_the_final_folders(tmp_path):
    args = pipeline.PipelineArguments(
        run_name="r",
        stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        launcher="accelerate launch --config_file accelerate_configs/single_gpu.yaml",
        verifier_policy="sft",
        stage_args={"dpo": "--beta 0.2"},
    )
    # accelerate runs under this interpreter, so an unactivated virtual environment still works
    assert supervision.launcher_command(args.launcher) == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "accelerate_configs/single_gpu.yaml",
    ]
    dpo = pipeline_steps.recipe_argv(args, "dpo", "runs/r")
    assert dpo[:2] == ["--config", args.stage_configs["dpo"]]
    assert dpo[dpo.index("--model_name_or_path") + 1] == "runs/r/sft_final" and dpo[-2:] == ["--beta", "0.2"]
    verifier = pipeline_steps.recipe_argv(args, "verifier", "runs/r")
    assert verifier[verifier.index("--model_name_or_path") + 1] == "runs/r/sft_final"
    assert "--model_name_or_path" not in pipeline_steps.recipe_argv(args, "pretrain", "runs/r")
    grpo = pipeline_steps.recipe_argv(args, "grpo", "runs/r")
    assert grpo[grpo.index("--model_name_or_path") + 1] == "runs/r/dpo_final"
    assert grpo[grpo.index("--reward_model_name_or_path") + 1] == "runs/r/verifier_final"  # for its verifier reward
    with pytest.raises(ValueError, match="verifier_policy"):
        pipeline.PipelineArguments(run_name="r", stage_configs=args.stage_configs, verifier_policy="verifier")


@pytest.mark.parametrize("launcher", [None, "python", "python3 -X faulthandler"])
def test_stages_run_with_the_interpreter_running_the_pipeline(launcher):
    """`python` from PATH may be another environment's (an unactivated venv): every stage uses sys.executable."""
    assert supervision.launcher_command(launcher)[0] == sys.executable
    command, env = supervision.stage_launcher(launcher, None)
    assert command[0] == sys.executable and env == {"MODERN_LLM_LAUNCHER": shlex.join(command)}


def test_a_rehearsal_runs_every_stage_as_one_process_of_this_interpreter():
    accelerate = "accelerate_configs/multi_gpu.yaml"
    command, env = supervision.stage_launcher(f"accelerate launch --config_file {accelerate}", accelerate)
    assert command[1:3] == ["-m", "accelerate.commands.launch"] and env["MODERN_LLM_ACCELERATE_CONFIG"] == accelerate
    command, env = supervision.stage_launcher(f"accelerate launch --config_file {accelerate}", accelerate, True)
    assert command == [sys.executable] and env == {"MODERN_LLM_LAUNCHER": sys.executable, "MODERN_LLM_REHEARSAL": "1"}


def test_a_rerun_keeps_the_steps_of_the_interrupted_one(tmp_path):
    path = str(tmp_path / "pipeline_summary.json")
    assert supervision.start_summary(path, "r", rehearsal=False)["steps"] == {}
    earlier = {"steps": {"pretrain": {"status": "interrupted", "wall_time_s": 5.0, "attempts": 1}}}
    supervision.write_summary(earlier, path)
    summary = supervision.start_summary(path, "r", rehearsal=True)
    assert summary["steps"] == earlier["steps"] and summary["rehearsal"] and summary["python"] == sys.executable


def test_a_rehearsal_pushes_nothing_and_records_it(tmp_path):
    args = pipeline.PipelineArguments(
        run_name="r",
        stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        runs_dir=str(tmp_path),
        push_to_hub=True,
        hub_model_id="me/r",
        rehearse=True,
    )
    path, summary = str(tmp_path / "pipeline_summary.json"), {"steps": {}}
    # A real push of these (missing) folders would fail and stop the pipeline
    finals = {s: str(tmp_path / f"{s}_final") for s in pipeline.STAGES}
    pipeline_steps.push_stages(args, finals, summary, path, os.path.join(REPO, "recipes", "push_to_hub.py"))
    steps = json.load(open(path))["steps"]
    assert [steps[f"push-{s}"]["status"] for s in pipeline.STAGES] == ["skipped: rehearsal"] * len(pipeline.STAGES)
    assert "me/r-verifier" in steps["push-verifier"]["command"]


def test_each_seed_runs_in_its_own_folder_with_its_seed_everywhere_but_the_corpus(tmp_path):
    from modeling_modern_llm.training.seeds import seed_arguments, seed_finished

    args = pipeline.PipelineArguments(
        run_name="r",
        stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        runs_dir=str(tmp_path),
        stage_args={"dpo": "--beta 0.2"},
        seeds=[3, 7],
        rehearse=True,
    )
    one = seed_arguments(args, 7)
    run_dir = tmp_path / "r-rehearsal" / "seed-7"
    assert (one.runs_dir, one.run_name, one.seeds) == (str(tmp_path / "r-rehearsal"), "seed-7", None)
    assert one.results_dir == str(run_dir / "results") and one.report_output == str(run_dir / "final_report.md")
    assert one.rehearse and args.seeds == [3, 7] and args.stage_args == {"dpo": "--beta 0.2"}  # the original is kept
    for stage in pipeline.STAGES:
        argv = pipeline_steps.recipe_argv(one, stage, str(run_dir))
        assert argv[argv.index("--seed") + 1] == "7" and "--embedded_corpus_seed" not in argv
        assert argv[argv.index("--output_dir") + 1] == str(run_dir / stage)
    assert "--beta 0.2 --seed 7" in shlex.join(pipeline_steps.recipe_argv(one, "dpo", str(run_dir)))
    assert one.eval_args.endswith("--seed 7") and "--corpus_seed" not in one.eval_args
    assert not seed_finished(one)  # nothing trained yet


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"seeds": [1, 1]}, "different non-negative integers"),
        ({"seeds": [-1]}, "different non-negative integers"),
        ({"seeds": [0, 1], "push_to_hub": True, "hub_model_id": "me/r"}, "pushes nothing"),
    ],
)
def test_bad_seeds_are_one_line(extra, message):
    with pytest.raises(ValueError, match=message):
        pipeline.PipelineArguments(
            run_name="r",
            stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
            **extra,
        )


def _finished(folder, stage):
    """A final folder that passes `final_model_problem` (config, tokenizer, summary, card, whole weights)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    for name, text in (
        ("config.json", '{"model_type": "modern_llm"}'),
        ("tokenizer_config.json", "{}"),
        ("training_summary.json", json.dumps({"stage": stage})),
        ("README.md", "x"),
    ):
        (folder / name).write_text(text)
    save_file({"w": __import__("torch").ones(2)}, str(folder / "model.safetensors"))


def test_the_evaluation_scores_the_policies_and_verifier_the_run_finished(tmp_path):
    args = pipeline.PipelineArguments(
        run_name="r",
        stage_configs={s: os.path.join(REPO, "tests/training/configs", f"{s}.yaml") for s in pipeline.STAGES},
        runs_dir=str(tmp_path),
        eval_script="eval/not_written_yet.py",
    )
    finals = {s: tmp_path / f"{s}_final" for s in pipeline.STAGES}
    for stage in ("sft", "dpo", "grpo"):  # no pretrain_final (say, pruned) and no verifier
        _finished(finals[stage], stage)
    path, summary = str(tmp_path / "pipeline_summary.json"), {"steps": {}}
    pipeline_steps.evaluate_and_report(args, str(tmp_path), {s: str(f) for s, f in finals.items()}, summary, path)
    command = summary["steps"]["evaluation"]["command"]
    assert f"--model {finals['sft']} {finals['dpo']} {finals['grpo']} --stages sft dpo grpo --output_dir" in command
    assert "--verifier" not in command and summary["steps"]["evaluation"]["status"].startswith("skipped")


STEP = '''import os, subprocess, sys, time
from modeling_modern_llm.processes import die_with_parent_if_asked
die_with_parent_if_asked()
with open(sys.argv[1], "a") as handle:
    handle.write(f"{os.getpid()}\\n")
if sys.argv[2] == "launcher":  # as `accelerate launch` starts its workers
    subprocess.Popen([sys.executable, __file__, sys.argv[1], "worker"])
time.sleep(120)
'''


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_pipeline_leaves_no_step_running(tmp_path):
    """SIGKILL of the pipeline (no handler runs) still stops its step and the step's own children."""
    import signal
    import subprocess
    import time

    step, pids = tmp_path / "step.py", tmp_path / "pids"
    step.write_text(STEP)
    runner = (
        "import sys; from modeling_modern_llm.training.supervision import run_step; "
        f"run_step('evaluation', [sys.executable, {str(step)!r}, {str(pids)!r}, 'launcher'], {{'steps': {{}}}}, "
        f"{str(tmp_path / 'summary.json')!r})"
    )
    pipeline_process = subprocess.Popen([sys.executable, "-c", runner])
    deadline = time.time() + 60
    while time.time() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.1)
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 and all(map(_running, started))
    pipeline_process.send_signal(signal.SIGKILL)
    pipeline_process.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(map(_running, started)):
        time.sleep(0.1)
    assert not any(map(_running, started)), "a step outlived its killed pipeline"


def test_a_replaced_folder_gets_ordinary_permissions(tmp_path):
    """Results staged in a private `mkdtemp` folder end up readable as the umask allows (a collaborator on a shared
    file system can read them)."""
    import tempfile

    from modeling_modern_llm.files import replace_folder

    staging = tempfile.mkdtemp(dir=tmp_path, prefix=".results.staging-")
    assert os.stat(staging).st_mode & 0o777 == 0o700
    old_umask = os.umask(0o022)
    try:
        replace_folder(staging, str(tmp_path / "results"))
    finally:
        os.umask(old_umask)
    assert os.stat(tmp_path / "results").st_mode & 0o777 == 0o755
