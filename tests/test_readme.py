"""Every command the README shows runs as written after the main job.

The test walks the README's fenced bash blocks. Each command runs in a folder laid out as the main job leaves the
repository (tiny ModernLLMs with sinks and QK-norm, as the demo's, in experiments/runs/demo/<stage>_final, finished
results in experiments/results/), as the README writes it, with only the work shrunk where it trains or evaluates
(`--max_steps 2`, `--limit 2`, `--quick`). What this machine cannot do is checked up to that point: the Hub's
commands offline or against the local stand-in of its API, the GPU commands by their configs and what they need
first. Commands that other tests run (the test command, the rehearsal, the SLURM script) name those tests. A README
command with no check here fails: a new command needs one.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
LINKED = ("recipes", "eval", "report", "benchmarks", "accelerate_configs", "constraints", "modeling_modern_llm")
TOKEN = "hf_standinTOKEN0123456789abcdef"


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks, comments and blank lines left out, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def marked_block(marker: str) -> str:
    """What .ci/run runs: the fenced block after <!-- marker -->."""
    return re.search(rf"<!-- {marker} -->\n```bash\n(.*?)\n```", README, re.S).group(1)


@pytest.fixture(scope="module")
def after_main_job(tmp_path_factory) -> Path:
    """A working copy as the main job leaves it: the code linked in, the demo's four final models, its results."""
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM, ModernLLMForSequenceClassification
    from modeling_modern_llm.tokenizer import train_tokenizer
    from modeling_modern_llm.training.model_card import write_model_card, write_training_summary

    root = tmp_path_factory.mktemp("checkout")
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    tokenizer = train_tokenizer([f"a story of {i} cats and {i * 3} dogs ." for i in range(100)], vocab_size=300)
    for stage in ("pretrain", "sft", "dpo", "verifier"):
        torch.manual_seed(0)
        config = ModernLLMConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=256,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )  # sinks and QK-norm on, as the demo's
        model_class = ModernLLMForSequenceClassification if stage == "verifier" else ModernLLMForCausalLM
        final = root / "experiments" / "runs" / "demo" / f"{stage}_final"
        model_class(config).save_pretrained(final)
        tokenizer.save_pretrained(final)
        summary = {
            "stage": stage,
            "datasets": ["embedded-text"],
            "command": f"python recipes/{stage}.py",
            "config_path": f"recipes/configs/cpu-demo/{stage}.yaml",
            "steps": 2,
            "train_tokens": 512,
            "per_device_batch_size": 2,
            "learning_rate": 1e-3,
            "hardware": "cpu",
            "wall_time_s": 1.0,
            "tokens_per_s": 512.0,
        }  # what a finished stage records (recipes' save_final)
        write_training_summary(str(final), summary)
        write_model_card(str(final), summary, config.to_dict(), None, {})
    results = root / "experiments" / "results"
    results.mkdir()
    (results / "run_index.json").write_text(json.dumps({"schema_version": 2, "models": []}))
    return root


def run(command: str, cwd: Path, timeout: int = 600, **env) -> subprocess.CompletedProcess:
    """A README command through bash, with this interpreter as `python` (and as the scripts' ${PYTHON:-python})."""
    bin_dir = Path(cwd) / ".bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "PYTHONPATH": str(REPO),
        "MODERN_LLM_CACHE": str(Path(cwd) / ".cache"),
        **env,
    }
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def shrink(command: str, **flags: str) -> str:
    """The command with these flags' values replaced, or appended where it has none."""
    words = shlex.split(command)
    for flag, value in flags.items():
        if flag in words:
            words[words.index(flag) + 1] = value
        else:
            words += [flag, value]
    return shlex.join(words)


def last_line(result: subprocess.CompletedProcess) -> str:
    return (result.stderr.strip().splitlines() or [""])[-1]


def check_test_command(command, root):
    assert command == marked_block("test-command") and command.endswith("python -m pytest -q")  # this run is it
    lint = subprocess.run(["ruff", "check", "."], cwd=REPO, capture_output=True, text=True)  # the command's first step
    assert lint.returncode == 0, lint.stdout[-2000:]


def check_main_job(command, root):
    assert command == marked_block("main-command")  # what .ci/run runs after the tests; here its configs validate
    result = run(command.split("&&")[-1].strip() + " --validate_only true", root)
    assert result.returncode == 0 and "validated 5 stage config(s)" in result.stderr, result.stderr[-3000:]


def check_validates(command, root):
    if "--validate_only" not in command:
        command += " --validate_only true"
    result = run(command, root)
    assert result.returncode == 0 and "validated 5 stage config(s)" in result.stderr, result.stderr[-3000:]


def check_rehearsal(command, root):
    rehearsals = (REPO / "tests" / "training" / "test_rehearsal.py").read_text()
    assert '("gpu-full", "full")' in rehearsals and '"--rehearse"' in rehearsals  # run there, end to end


def check_slurm(command, root):
    slurm = (REPO / "tests" / "training" / "test_slurm.py").read_text()
    assert "recipes/slurm/tacc_pipeline.slurm" in slurm and "REHEARSE" in slurm  # run there with a fake scontrol


def check_one_gpu_stage(command, root):
    """A GPU stage: its config passes the checks a run makes, and what it starts from is what the line before writes."""
    from modeling_modern_llm.training import parse_stage_args, stage_problems

    words = shlex.split(command)
    stage, config = Path(words[words.index("accelerate") + 4]).stem, words[words.index("--config") + 1]
    script, training, model = parse_stage_args(stage, ["--config", str(REPO / config)], for_validation=True)
    assert stage_problems(stage, script, training, model, check_inputs=False) == []
    if stage != "pretrain":
        earlier = [c for c in readme_commands() if "accelerate launch" in c and c != command]
        previous = {"sft": "pretrain", "dpo": "sft", "verifier": "dpo"}[stage]
        [before] = [c for c in earlier if f"recipes/{previous}.py" in c]
        _, previous_training, _ = parse_stage_args(
            previous, ["--config", str(REPO / shlex.split(before)[-1])], for_validation=True
        )
        assert model.model_name_or_path == previous_training.output_dir + "_final"
        assert readme_commands().index(before) < readme_commands().index(command)


def check_tokenizer(command, root):
    result = run(command, root)
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(root / "tok")) > 1000


def check_pretrain_llama(command, root):
    result = run(shrink(command, **{"--max_steps": "2", "--eval_steps": "2", "--save_steps": "2"}), root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "experiments" / "runs" / "llama" / "pretrain_final" / "config.json").is_file()


def check_export(command, root):
    if not (root / "experiments" / "runs" / "llama" / "pretrain_final").is_dir():
        check_pretrain_llama(next(c for c in readme_commands() if "pretrain_llama.yaml" in c), root)
    result = run(command, root)
    assert result.returncode == 0, result.stderr[-3000:]
    exported = set(os.listdir(root / "llama_export"))
    assert {"config.json", "model.safetensors", "tokenizer.json", "model.gguf"} <= exported
    refused = run(
        command.replace("experiments/runs/llama/pretrain_final", "experiments/runs/demo/sft_final").replace(
            "llama_export", "demo_export"
        ),
        root,
    )  # the demo's own model: sinks and QK-norm
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "attention_sinks=True" in last_line(refused) and "qk_norm=True" in last_line(refused)
    assert not (root / "demo_export").exists()


def check_evaluation(command, root):
    finished = (root / "experiments" / "results" / "run_index.json").read_bytes()
    words = shlex.split(command)
    output = root / words[words.index("--output_dir") + 1]
    assert "--limit" in words and not output.exists() and output != root / "experiments" / "results"
    if "--include-baselines" in words:  # the real benchmarks need the Hub: offline, one line and nothing written
        result = run(shrink(command, **{"--limit": "2"}), root)
        assert result.returncode == 1 and "nothing could be scored" in last_line(result), result.stderr[-3000:]
        assert not output.exists()
    else:
        assert "--chat_template" in words
        result = run(shrink(command, **{"--limit": "2", "--n_samples": "2", "--max_gen_toks": "8"}), root)
        assert result.returncode == 0, result.stderr[-3000:]
        index = json.loads((output / "run_index.json").read_text())
        assert index["models"][0]["status"] == "ok" and index["models"][0]["chat_template"] is True
    assert (root / "experiments" / "results" / "run_index.json").read_bytes() == finished


def check_push(command, root):
    sys.path.insert(0, str(REPO / "tests" / "training"))
    from hub_standin import NAMESPACE, StandInHub

    assert command.startswith("HF_TOKEN=hf_... ")
    with StandInHub(max_requests=400, lifetime_s=300) as hub:
        result = run(
            command.replace("hf_...", TOKEN).replace("<user>", NAMESPACE),
            root,
            HF_HUB_OFFLINE="0",
            TRANSFORMERS_OFFLINE="0",
            HF_ENDPOINT=hub.url,
            HF_HUB_DISABLE_XET="1",
            HF_HOME=str(root / ".hf_home"),
            HUGGING_FACE_HUB_TOKEN="",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "model.safetensors" in hub.files(f"{NAMESPACE}/modern-llm-sft")


def check_runs_quick(command, root):
    quick = {"bench_model.py": " --quick", "bench_eval.py": " --quick True"}.get(Path(shlex.split(command)[1]).name, "")
    result = run(command + quick, root)
    assert result.returncode == 0, result.stderr[-3000:]


def check_needs_a_gpu(command, root):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: benchmarks/gpu_check.sh runs it")
    result = run(command, root)
    assert result.returncode == 1 and last_line(result) == "gpu_check.sh: no CUDA device here"


def check_fast_tier(command, root):
    """The fast tier collects without error and still holds at least 3 tests in 4 (running it is the edit loop's
    job)."""
    counts = []
    for tier in ([], ["-m", "not slow"]):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tier],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:]
        counts.append(int(re.search(r"(\d+)(?:/\d+)? tests? collected", result.stdout).group(1)))
    assert command == 'python -m pytest -q -m "not slow"' and counts[1] >= 0.75 * counts[0], counts


def check_reference_report(command, root):
    """After the main job there is no reference run: one line naming the command that makes it, nothing written
    (tests/report/test_reference_report.py builds it from a run of two seeds)."""
    result = run(command, root)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "--run_name reference --seeds 0 1 2` first" in last_line(result)
    assert not (root / "docs").exists()


CHECKS = [  # (the command's pattern, its check), the first match wins
    (r"^pip install .* && ruff check \. && python -m pytest -q$", check_test_command),
    (r'^python -m pytest -q -m "not slow"$', check_fast_tier),
    (r"^pip install .* && python recipes/pipeline\.py", check_main_job),
    (r"^python recipes/pipeline\.py .*--rehearse", check_rehearsal),
    (r"^python recipes/pipeline\.py ", check_validates),
    (r"^accelerate launch .*recipes/\w+\.py --config recipes/configs/gpu-", check_one_gpu_stage),
    (r"sbatch .*recipes/slurm/tacc_pipeline\.slurm$", check_slurm),
    (r"^python report/reference_report\.py ", check_reference_report),
    (r"^python -m modeling_modern_llm\.tokenizer ", check_tokenizer),
    (r"^python recipes/pretrain\.py --config recipes/configs/cpu-demo/pretrain_llama\.yaml$", check_pretrain_llama),
    (r"^python -m modeling_modern_llm\.export_llama ", check_export),
    (r"^python eval/evaluate_tasks\.py ", check_evaluation),
    (r"^HF_TOKEN=hf_\.\.\. python recipes/push_to_hub\.py ", check_push),
    (r"^python benchmarks/(bench_model|bench_eval|bench_pipeline|gpu_model_check)\.py$", check_runs_quick),
    (r"^bash benchmarks/gpu_check\.sh$", check_needs_a_gpu),
]


def test_every_readme_command_has_a_check():
    unchecked = [c for c in readme_commands() if not any(re.search(p, c) for p, _ in CHECKS)]
    assert not unchecked, f"README commands without a check in tests/test_readme.py: {unchecked}"
    assert len(readme_commands()) >= 15


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: c[:60])
def test_the_readme_command_runs_as_written_after_the_main_job(command, after_main_job):
    check = next((check for pattern, check in CHECKS if re.search(pattern, command)), None)
    if check is None:
        pytest.fail(f"no check for the README command {command!r}")
    check(command, after_main_job)
