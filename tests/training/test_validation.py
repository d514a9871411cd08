"""A bad configuration fails in seconds, before any model, tokenizer or dataset loads: one line naming the field and
the fix. Each case of the H100 path's traps (docs/TRAINING.md, "Before you submit") has a test; the shipped GPU configs
must pass under every accelerate config they are meant for."""

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file
from training_helpers import CONFIGS, REPO

from modeling_modern_llm.errors import InputFileError, UsageError
from modeling_modern_llm.training import (
    AccelerateSetup,
    Problem,
    parse_stage_args,
    problems_error,
    stage_problems,
)

GPU_SCALES = ("gpu-smoke", "gpu-full")
STAGES = ("pretrain", "sft", "dpo", "verifier", "grpo")


def _args(stage, tmp_path, *overrides, scale="gpu-full"):
    config = os.path.join(REPO, "recipes", "configs", scale, f"{stage}.yaml")
    return parse_stage_args(
        stage, ["--config", config, "--output_dir", str(tmp_path / stage), *overrides], for_validation=True
    )


def _messages(problems):
    return [problem.message for problem in problems]


def _refusal(stage, tmp_path, *overrides, scale="gpu-full"):
    """The one problem the stage's argument dataclasses refuse while its command line is parsed."""
    with pytest.raises(UsageError) as error:
        _args(stage, tmp_path, *overrides, scale=scale)
    (problem,) = error.value.problems
    assert problem.stage == stage and problem.kind == "usage" and str(error.value) == str(problem)
    assert "\n" not in str(error.value)
    return problem


def _problems(stage, tmp_path, *overrides, accelerate=None, scale="gpu-full", **kwargs):
    return _messages(_found(stage, tmp_path, *overrides, accelerate=accelerate, scale=scale, **kwargs))


def _found(stage, tmp_path, *overrides, accelerate=None, scale="gpu-full", **kwargs):
    script, training, model = _args(stage, tmp_path, *overrides, scale=scale)
    architecture = {
        "attention_sinks": True,
        "max_position_embeddings": 1024,
        "num_experts": 0,
        **kwargs.pop("architecture", {}),
    }
    return stage_problems(
        stage, script, training, model, architecture=architecture, accelerate=accelerate, check_inputs=False, **kwargs
    )


def _accelerate(name):
    return AccelerateSetup.from_file(os.path.join(REPO, "accelerate_configs", f"{name}.yaml"))


@pytest.mark.parametrize("scale", GPU_SCALES)
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("engine", ["single_gpu", "multi_gpu", "fsdp"])
def test_shipped_gpu_configs_pass_under_their_engines(scale, stage, engine, tmp_path):
    assert _problems(stage, tmp_path, scale=scale, accelerate=_accelerate(engine)) == []


@pytest.mark.parametrize("stage", STAGES)
def test_shipped_gpu_configs_train_sinks_in_bf16_autocast_over_fp32_weights(stage, tmp_path):
    script, training, model = _args(stage, tmp_path)
    assert training.bf16 and model.dtype in (None, "auto", "float32")
    assert model.attn_implementation == "sdpa" and training.ddp_find_unused_parameters is False


def test_pure_bf16_weights_are_refused(tmp_path):
    (problem,) = _problems("dpo", tmp_path, "--dtype", "bfloat16")
    assert problem.startswith("`dtype: bfloat16`") and "remove `dtype`" in problem and "bf16: true" in problem


def test_a_kernel_that_drops_the_sinks_is_refused(tmp_path):
    problems = _problems("sft", tmp_path, "--attn_implementation", "flash_attention_2")
    assert any(p.startswith("`attn_implementation: flash_attention_2`") and "sdpa" in p for p in problems)
    # Without sinks the same kernel is the model's business, not a sink problem.
    assert not any(
        "sink" in p
        for p in _problems(
            "sft", tmp_path, "--attn_implementation", "flash_attention_2", architecture={"attention_sinks": False}
        )
    )


def test_padding_free_on_sdpa_is_refused_with_the_mask_size(tmp_path):
    (problem,) = _problems("pretrain", tmp_path, "--packing_strategy", "bfd_split")
    assert "(64x1024)^2 mask" in problem and "packing_strategy: wrapped" in problem


def test_padding_free_without_packing_is_refused_as_trl_would(tmp_path):
    (problem,) = _problems("sft", tmp_path, "--padding_free", "true")
    assert "`padding_free: true` without packing" in problem and "padding_free: false" in problem


def test_zero3_must_gather_the_weights_and_know_the_moe_block(tmp_path):
    zero3 = _accelerate("zero3")
    assert zero3.zero3_save_16bit_model and zero3.zero_stage == 3
    lost = AccelerateSetup(source="z.yaml", distributed_type="DEEPSPEED", zero_stage=3, mixed_precision="bf16")
    problems = _problems("sft", tmp_path, accelerate=lost, architecture={"num_experts": 4})
    assert any("zero3_save_16bit_model: true" in p for p in problems)
    assert any("deepspeed_moe_layer_cls_names: ModernLLMSparseMoeBlock" in p for p in problems)


def test_fsdp_must_wrap_the_decoder_layer(tmp_path):
    wrong = AccelerateSetup(
        source="f.yaml", distributed_type="FSDP", mixed_precision="bf16", fsdp_layer_classes=("LlamaDecoderLayer",)
    )
    (problem,) = _problems("pretrain", tmp_path, accelerate=wrong)
    assert "ModernLLMDecoderLayer" in problem


def test_mixed_precision_of_the_launcher_and_the_stage_must_agree(tmp_path):
    (problem,) = _problems("sft", tmp_path, "--bf16", "false", accelerate=_accelerate("single_gpu"))
    assert "mixed_precision: bf16" in problem and "make them agree" in problem


def test_ddp_must_say_whether_to_search_for_unused_parameters(tmp_path):
    script, training, model = _args("sft", tmp_path)
    training.ddp_find_unused_parameters = None
    problems = stage_problems(
        "sft", script, training, model, architecture={}, accelerate=_accelerate("multi_gpu"), check_inputs=False
    )
    assert [p.field for p in problems] == ["ddp_find_unused_parameters"]
    assert str(problems[0]).startswith("sft: `ddp_find_unused_parameters` is unset")


@pytest.mark.parametrize(
    "override, field",
    [
        (("--max_steps", "0"), "max_steps"),
        (("--learning_rate", "nan"), "learning_rate"),
        (("--per_device_train_batch_size", "-1"), "per_device_train_batch_size"),
        (("--save_steps", "0"), "save_steps"),
        (("--beta", "0"), "beta"),
        (("--max_eval_samples", "0"), "max_eval_samples"),
    ],
)
def test_numbers_out_of_range_are_refused_by_the_stage_config(override, field, tmp_path):
    problem = _refusal("dpo", tmp_path, *override)
    assert problem.field == field and str(problem).startswith(f"dpo: `{field}`"), problem


@pytest.mark.parametrize(
    "override, words",
    [
        (("--temperature", "0"), "`temperature`"),
        (("--top_p", "1.5"), "`top_p`"),
        (
            ("--samples_per_problem", "1", "--include_reference", "false", "--objective", "pairwise"),
            "`samples_per_problem`",
        ),
        (("--objective", "listwise"), "`objective`"),
        (("--lm_loss_coef", "-1"), "`lm_loss_coef`"),
    ],
)
def test_sampling_settings_out_of_range_are_refused_by_the_verifier_config(override, words, tmp_path):
    problem = _refusal("verifier", tmp_path, *override)
    assert problem.message.startswith(words) and f"`{problem.field}`" == words, problem


def test_grpo_generation_through_vllm_is_refused_naming_why(tmp_path):
    (problem,) = _problems("grpo", tmp_path, "--use_vllm", "true")
    assert problem.startswith("`use_vllm: true`: vLLM has no implementation of this remote-code architecture")
    assert "use_vllm: false" in problem


def test_grpo_completions_must_leave_room_for_the_prompt(tmp_path):
    # TRL's default max_completion_length (512) against the cpu-demo model's 512 positions
    (problem,) = _problems(
        "grpo",
        tmp_path,
        "--max_completion_length",
        "512",
        scale="cpu-demo",
        architecture={"max_position_embeddings": 512},
    )
    assert problem.startswith("`max_completion_length` 512") and "max_position_embeddings 512" in problem
    assert _problems("grpo", tmp_path, scale="cpu-demo", architecture={"max_position_embeddings": 512}) == []


@pytest.mark.parametrize(
    "override, words",
    [
        (("--reward_funcs", "exact_match", "lenght"), "unknown reward(s) ['lenght']"),
        (("--reward_funcs", "exact_match", "answer_format", "--reward_weights", "1.0"), "1 weight(s) for 2 reward(s)"),
        (("--reward_funcs", "verifier"), "needs `reward_model_name_or_path`"),
        (("--use_transformers_continuous_batching", "true"), "set it to false (plain generate)"),
        (("--dataset_name", "embedded-alpaca"), "GRPO's rewards check GSM8K answers"),
    ],
)
def test_grpo_settings_are_checked_before_loading(override, words, tmp_path):
    problems = _problems("grpo", tmp_path, *override)
    assert len(problems) == 1 and words in problems[0], problems


@pytest.mark.parametrize(
    "override, field",
    [
        (("--beta", "-0.1"), "beta"),
        (("--temperature", "0"), "temperature"),
        (("--top_p", "0"), "top_p"),
        (("--num_fewshot", "-1"), "num_fewshot"),
        (("--max_completion_length", "0"), "max_completion_length"),
        (("--verifier_batch_size", "0"), "verifier_batch_size"),
    ],
)
def test_grpo_numbers_out_of_range_are_refused_by_the_grpo_config(override, field, tmp_path):
    problem = _refusal("grpo", tmp_path, *override)
    assert problem.field == field and problem.message.startswith(f"`{field}`"), problem


@pytest.mark.parametrize(
    "stage, override, field",
    [
        ("sft", ("--max_train_samples", "0"), "max_train_samples"),
        ("pretrain", ("--tokenizer_vocab_size", "0"), "tokenizer_vocab_size"),
        ("sft", ("--weight_decay", "-0.1"), "weight_decay"),
        ("sft", ("--warmup_steps", "nan"), "warmup_steps"),
        ("sft", ("--max_grad_norm", "inf"), "max_grad_norm"),
        ("sft", ("--logging_steps", "-1"), "logging_steps"),
        ("sft", ("--max_length", "0"), "max_length"),
        ("pretrain", ("--max_steps", "-1", "--num_train_epochs", "0"), "num_train_epochs"),
    ],
)
def test_each_stage_config_refuses_its_own_numbers_out_of_range(stage, override, field, tmp_path):
    problem = _refusal(stage, tmp_path, *override)
    assert problem.field == field and problem.message.startswith(f"`{field}`"), problem


def test_what_transformers_refuses_itself_is_one_line_naming_the_stage(tmp_path):
    # TrainingArguments._validate_args: "Got warmup_steps = -3.0, Expected value warmup_steps >= 0"
    problem = _refusal("sft", tmp_path, "--warmup_steps", "-3")
    assert problem.field is None and "warmup_steps" in problem.message and str(problem).startswith("sft: ")


def test_a_problem_is_data_that_renders_as_its_line():
    value = Problem(stage="dpo", field="beta", message="`beta` must be a finite positive number, got 0.0")
    folder = Problem(field="model_name_or_path", message="`model_name_or_path` x does not exist", kind="file")
    assert str(value) == "dpo: `beta` must be a finite positive number, got 0.0" and value.exit_code == 2
    assert str(folder) == "`model_name_or_path` x does not exist" and folder.exit_code == 1
    assert str(folder.at("sft")) == "sft: `model_name_or_path` x does not exist" and folder.at("sft").kind == "file"
    assert value.at("sft") is value  # a problem keeps the stage it names
    error = problems_error([value, folder.at("sft")])
    assert isinstance(error, UsageError) and str(error).splitlines() == [str(value), str(folder.at("sft"))]
    assert isinstance(problems_error([folder]), InputFileError)  # every problem a file problem: exit 1
    with pytest.raises(ValueError):
        Problem(message="x", kind="warning")


def test_the_grpo_verifier_reward_needs_a_verifier_folder(tmp_path):
    policy = _model_folder(tmp_path / "dpo_final")
    (policy / "config.json").write_text('{"architectures": ["ModernLLMForCausalLM"]}')
    verifier = ["--reward_funcs", "exact_match", "verifier", "--reward_weights", "1", "0.1"]
    script, training, model = _args(
        "grpo", tmp_path, *verifier, "--model_name_or_path", str(policy), "--reward_model_name_or_path", str(policy)
    )
    (found,) = stage_problems("grpo", script, training, model, architecture={"attention_sinks": True})
    assert "is a ModernLLMForCausalLM, not a verifier" in found.message and "verifier_final" in found.message
    assert found.field == "reward_model_name_or_path" and found.kind == "file"
    training.reward_model_name_or_path = str(tmp_path / "missing")
    (found,) = stage_problems("grpo", script, training, model, architecture={"attention_sinks": True})
    assert found.message.startswith("`reward_model_name_or_path`") and "does not exist" in found.message


def test_a_model_config_the_model_refuses_fails_before_the_tokenizer_is_trained(tmp_path):
    fields = {
        "hidden_size": 100,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 3,
        "num_key_value_heads": 3,
        "max_position_embeddings": 1024,
    }
    (problem,) = _problems("pretrain", tmp_path, "--model_config", json.dumps(fields))
    assert problem.startswith("model_config: `hidden_size` (100) must be divisible by `num_attention_heads` (3)")
    assert "Invalid ModernLLMConfig" not in problem
    (problem,) = _problems(
        "pretrain", tmp_path, "--model_config", json.dumps({**fields, "hidden_size": 96, "num_key_value_heads": 2})
    )  # two sentences of the model's own checks, on one line
    assert "`num_key_value_heads` (2) must divide" in problem and "\n" not in problem


def test_the_model_config_error_is_a_type_with_its_problems():
    from modeling_modern_llm.configuration_modern_llm import InvalidModernLLMConfig, ModernLLMConfig

    with pytest.raises(InvalidModernLLMConfig) as error:
        ModernLLMConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=3, num_experts=-1)
    assert isinstance(error.value, ValueError) and len(error.value.problems) == 2


def test_data_problems_name_the_dataset_split_and_file(tmp_path):
    assert any(
        "'gsm9k' is not in the registry" in p for p in _problems("verifier", tmp_path, "--dataset_name", "gsm9k")
    )
    assert any(
        "no split 'test'" in p and "eval_strategy" in p
        for p in _problems("sft", tmp_path, "--eval_strategy", "steps", "--eval_steps", "10")
    )
    local = tmp_path / "local"
    (local / "gsm8k").mkdir(parents=True)
    (local / "gsm8k" / "train.jsonl").write_text("{}\n")
    problems = _problems("verifier", tmp_path, "--local_data_dir", str(local))
    assert len(problems) == 1 and "test.jsonl" in problems[0]


def test_outputs_a_finished_final_is_kept_unless_overwrite_final(tmp_path):
    final = tmp_path / "sft_final"
    final.mkdir()
    for name, text in (
        ("config.json", '{"model_type": "modern_llm"}'),
        ("training_summary.json", '{"stage": "sft"}'),
        ("tokenizer_config.json", "{}"),
        ("README.md", "x"),
    ):
        (final / name).write_text(text)
    save_file({"w": torch.ones(2)}, str(final / "model.safetensors"))
    (problem,) = _problems("sft", tmp_path)
    assert "already holds a finished model" in problem and "--overwrite_final true" in problem
    assert _problems("sft", tmp_path, "--overwrite_final", "true") == []
    assert _problems("sft", tmp_path, finished_ok=True) == []


def _model_folder(folder):
    folder.mkdir()
    save_file({"w": torch.ones(64)}, str(folder / "model.safetensors"))
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    return folder


@pytest.mark.parametrize(
    "damage, words",
    [
        (
            lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
            "model.safetensors is truncated",
        ),
        (lambda f: os.remove(f / "config.json"), "missing config.json"),
        (lambda f: (f / "tokenizer.json").write_bytes(b"\x80garbage"), "tokenizer.json is corrupt"),
        (lambda f: None, None),
    ],
)
def test_a_starting_model_folder_is_checked_without_loading_it(damage, words, tmp_path):
    folder = _model_folder(tmp_path / "sft_final")
    damage(folder)
    script, training, model = _args("dpo", tmp_path, "--model_name_or_path", str(folder))
    problems = stage_problems("dpo", script, training, model, architecture={"attention_sinks": True})
    if words is None:
        assert problems == []
    else:
        (problem,) = problems
        assert words in problem.message and str(problem).startswith("dpo: `model_name_or_path`")
        assert problem.field == "model_name_or_path" and problem.kind == "file" and problem.exit_code == 1


def test_a_named_checkpoint_must_be_resumable(tmp_path):
    (problem,) = _problems("sft", tmp_path, "--resume_from_checkpoint", str(tmp_path / "checkpoint-7"))
    assert "resume_from_checkpoint" in problem and "does not exist" in problem


def test_an_output_dir_that_cannot_be_written_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    (problem,) = _problems("sft", tmp_path, "--output_dir", str(blocker))
    assert "is a file, not a folder" in problem


def test_a_read_only_output_dir_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("root writes anywhere: the permission case cannot be produced here")
        assert any("not writable" in p for p in _problems("sft", tmp_path, "--output_dir", str(locked / "sft")))
    finally:
        locked.chmod(0o700)


def _pipeline(*args):
    """`python recipes/pipeline.py ARGS` from the repository, in this process (what it checks needs no other process):
    its exit status and what it wrote to stderr (its log included), and the seconds it took."""
    from modeling_modern_llm.errors import run_command

    pipeline, stderr, returncode = _pipeline_module(), io.StringIO(), 0
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGUSR1)}  # main sets its own
    log, handler = logging.getLogger("pipeline"), logging.StreamHandler(stderr)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    cwd, start = os.getcwd(), time.time()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stderr(stderr):
            run_command(lambda: pipeline.main(pipeline.parse_pipeline_args(list(args))))
    except SystemExit as exit_info:
        returncode = exit_info.code
    finally:
        os.chdir(cwd)
        log.removeHandler(handler)
        log.setLevel(level)
        for signum, handler_before in handlers.items():
            signal.signal(signum, handler_before)
    return subprocess.CompletedProcess(args, returncode, "", stderr.getvalue()), time.time() - start


@pytest.mark.parametrize("scale", ["cpu-demo", *GPU_SCALES])
def test_every_shipped_pipeline_validates(scale):
    result, _ = _pipeline("--config", f"recipes/configs/{scale}/pipeline.yaml", "--validate_only", "true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validated 5 stage config(s)" in result.stderr


def test_a_broken_run_fails_in_seconds_listing_every_stage_problem_once(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "run_name: bad\nlauncher: accelerate launch --config_file accelerate_configs/single_gpu.yaml\nstage_configs:\n"
        + "".join(f"  {s}: recipes/configs/gpu-full/{s}.yaml\n" for s in STAGES)
        + "stage_args:\n  sft: --padding_free true\n  dpo: --dtype bfloat16\n  verifier: --bf16 false\n"
    )
    result, seconds = _pipeline("--config", str(config), "--runs_dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(("sft:", "dpo:", "verifier:"))]
    assert len(lines) == 3, result.stderr
    assert "3 problem(s)" in result.stderr and seconds < 60
    assert not (tmp_path / "runs").exists()  # nothing was created, let alone trained


def test_malformed_yaml_is_one_line_with_its_line_number(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("run_name: x\nstage_configs: {pretrain: a.yaml\n")
    result, _ = _pipeline("--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not valid YAML at line" in result.stderr


@pytest.mark.parametrize(
    "extra, status, line",
    [  # a value out of range is refused while parsing (SFTStageConfig.__post_init__), a folder by validate_stage
        (
            ("--learning_rate", "nan"),
            2,
            "sft.py: error: sft: `learning_rate` must be a finite positive number, got nan",
        ),
        ((), 1, "sft.py: error: sft: `model_name_or_path` "),
    ],
)
def test_a_recipe_checks_itself_before_loading(extra, status, line, tmp_path, monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(
        sys,
        "argv",
        [
            "recipes/sft.py",
            "--config",
            os.path.join(CONFIGS, "sft.yaml"),
            "--output_dir",
            str(tmp_path / "sft"),
            "--model_name_or_path",
            str(tmp_path / "nowhere"),
            *extra,
        ],
    )
    start = time.time()
    with pytest.raises(SystemExit) as exit_info:  # the recipe as `python recipes/sft.py` runs it, in this process
        runpy.run_path(os.path.join(REPO, "recipes", "sft.py"), run_name="__main__")
    stderr = capsys.readouterr().err
    assert exit_info.value.code == status and "Traceback" not in stderr, stderr[-2000:]
    (error,) = [text for text in stderr.splitlines() if ": error: " in text]  # one line
    assert error.startswith(line), stderr[-2000:]
    assert status == 2 or "nowhere does not exist" in error
    assert time.time() - start < 60 and not (tmp_path / "sft").exists()


def test_a_stage_value_out_of_range_is_one_pipeline_line_naming_the_stage_once(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(open(os.path.join(CONFIGS, "pipeline.yaml")).read() + "stage_args: {dpo: --learning_rate nan}\n")
    result, _ = _pipeline("--config", str(config), "--runs_dir", str(tmp_path / "runs"), "--skip_eval", "true")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "\ndpo: `learning_rate` must be a finite positive number, got nan" in result.stderr, result.stderr[-2000:]
    assert "1 problem(s)" in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "text, words",
    [
        ("distributed_type: NO\nnum_procesess: 2\n", "had unknown keys (['num_procesess'])"),
        ("num_processes: 2\n", "A `distributed_type` must be specified"),
        ("distributed_type: MULTI_GPUS\n", "MULTI_GPUS"),
        ("distributed_type: [NO\n", "is not valid YAML"),
        ("- NO\n", "must be a YAML mapping"),
    ],
)
def test_an_accelerate_config_is_read_as_accelerate_launch_reads_it(text, words, tmp_path):
    path = tmp_path / "accelerate.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as error:
        AccelerateSetup.from_file(str(path))
    assert words in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(InputFileError, match="no such file"):
        AccelerateSetup.from_file(str(tmp_path / "missing.yaml"))


def test_the_shipped_accelerate_configs_mean_what_they_say():
    zero3, fsdp, multi = _accelerate("zero3"), _accelerate("fsdp"), _accelerate("multi_gpu")
    assert (zero3.distributed_type, zero3.zero_stage, zero3.mixed_precision) == ("DEEPSPEED", 3, "bf16")
    assert zero3.zero3_save_16bit_model and zero3.moe_layer_classes == ()  # commented out for dense models
    assert fsdp.distributed_type == "FSDP" and fsdp.fsdp_layer_classes == ("ModernLLMDecoderLayer",)
    assert (multi.distributed_type, multi.num_processes) == ("MULTI_GPU", 8)
    assert _accelerate("cpu_ddp").mixed_precision == "no" and _accelerate("single_gpu").distributed_type == "NO"


def test_qlora_needs_a_gpu_and_lora(tmp_path):
    problems = _problems("sft", tmp_path, "--load_in_4bit", "true")
    assert any("QLoRA needs `use_peft: true`" in p for p in problems)
    if not torch.cuda.is_available():
        (problem,) = _problems("sft", tmp_path, "--load_in_4bit", "true", "--use_peft", "true")
        assert problem.startswith("`load_in_4bit: true` (QLoRA) needs bitsandbytes and a CUDA GPU")
        assert _problems("sft", tmp_path, "--load_in_4bit", "true", "--use_peft", "true", rehearsal=True) == []


def test_lora_is_refused_where_the_merged_final_cannot_be_built(tmp_path):
    (problem,) = _problems("sft", tmp_path, "--use_peft", "true", accelerate=_accelerate("fsdp"))
    assert "`use_peft: true` under" in problem and "whole model in one process" in problem
    assert _problems("sft", tmp_path, "--use_peft", "true", accelerate=_accelerate("multi_gpu")) == []
    (problem,) = _problems("pretrain", tmp_path, "--use_peft", "true")  # a LoRA adapter on a new model
    assert "instead of `model_config`" in problem
    (problem,) = _problems("pretrain", tmp_path, "--model_name_or_path", str(tmp_path))
    assert "not both" in problem


@pytest.mark.parametrize(
    "overrides, words",
    [
        (("--hub_strategy", "every_save"), "set hub_strategy: end"),
        ((), "`hub_model_id` is missing"),
        (("--hub_model_id", "just-a-name"), "needs its namespace"),
        (("--hub_model_id", "me/x"), "HF_HUB_OFFLINE=1"),  # tests/conftest.py switches the Hub off
    ],
)
def test_push_settings_are_checked_before_loading(overrides, words, tmp_path):
    problems = _problems("dpo", tmp_path, "--push_to_hub", "true", *overrides)
    assert any(words in p for p in problems), problems


def test_resume_from_checkpoint_means_the_same_from_yaml_and_command_line():
    from modeling_modern_llm.training.checkpoints import resume_request

    assert resume_request(False) == resume_request("false") == resume_request("False") == "fresh"
    assert resume_request(None) == resume_request(True) == resume_request("true") == "auto"
    assert resume_request("out/checkpoint-10") == "out/checkpoint-10"


def test_a_pipeline_push_is_checked_with_the_stages(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        open(os.path.join(CONFIGS, "pipeline.yaml")).read()
        + "push_to_hub: true\nhub_model_id: me/tiny\nstage_args:\n  dpo: --push_to_hub true --hub_model_id me/d\n"
    )
    result, _ = _pipeline("--config", str(config), "--runs_dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        "dpo: its config pushes it" in result.stderr
        and "pipeline: pushing to the Hub with HF_HUB_OFFLINE=1" in result.stderr
    )
    assert not (tmp_path / "runs").exists()


def _pipeline_module():
    """recipes/pipeline.py imported in this process (its checks run in-process: no interpreter start, no training)."""
    import importlib.util

    if "recipes_pipeline" not in sys.modules:
        spec = importlib.util.spec_from_file_location("recipes_pipeline", os.path.join(REPO, "recipes", "pipeline.py"))
        sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # its dataclasses look their module up there
        spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules["recipes_pipeline"]


@pytest.mark.parametrize("installed, words", [(None, "and it is not installed"), ("0.4.9", "and 0.4.9 is installed")])
def test_the_pipeline_checks_lm_eval_for_its_evaluation_step_before_anything_runs(
    installed, words, tmp_path, monkeypatch
):
    from importlib import metadata

    from modeling_modern_llm.errors import UsageError
    from modeling_modern_llm.training import validation
    from modeling_modern_llm.training.pipeline_steps import validate_run

    real_version = metadata.version

    def version(name):
        if name != "lm_eval":
            return real_version(name)
        if installed is None:
            raise metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(validation.metadata, "version", version)
    pipeline = _pipeline_module()
    argv = ["--config", os.path.join(CONFIGS, "pipeline.yaml"), "--runs_dir", str(tmp_path / "runs")]
    args = pipeline.parse_pipeline_args(argv)
    start = time.time()
    with pytest.raises(UsageError) as error:
        validate_run(args, str(tmp_path / "runs" / "tiny"), None)
    [line] = [line for line in str(error.value).splitlines() if line.startswith("evaluation:")]
    assert words in line and "`pip install 'lm-eval>=0.4.12'`" in line and "skip_eval: true" in line
    assert time.time() - start < 30 and not (tmp_path / "runs").exists()
    validate_run(pipeline.parse_pipeline_args([*argv, "--skip_eval", "true"]), str(tmp_path / "x"), None)
    monkeypatch.undo()
    validate_run(pipeline.parse_pipeline_args(argv), str(tmp_path / "runs" / "tiny"), None)  # installed here


def test_use_vllm_needs_the_vllm_package(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "vllm" else real_find_spec(name, *args)
    )
    script, training, model = _args("dpo", tmp_path)
    architecture = {"attention_sinks": True, "max_position_embeddings": 1024, "num_experts": 0}
    problems = stage_problems("dpo", script, training, model, architecture=architecture, check_inputs=False)
    assert not any("vllm" in problem.message for problem in problems)
    training.use_vllm = True  # as a TRL config with vLLM generation (GRPOConfig's use_vllm) says
    problems = stage_problems("dpo", script, training, model, architecture=architecture, check_inputs=False)
    assert "`use_vllm: true` needs the vllm package, which is not installed: `pip install vllm`" in "\n".join(
        _messages(problems)
    )
