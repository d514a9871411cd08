"""Pushing a stage to the Hub, against a local stand-in of its HTTP API (`hub_standin.py`) with the real
huggingface_hub client: by the command, by a stage config's `push_to_hub`, by the pipeline. What arrives is loaded
back with `trust_remote_code=True` in a process that cannot import this package: same logits, tokenizer and card.
The token reaches the Hub and no written file."""

import json
import os
import shutil
import site
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from hub_standin import StandInHub
from training_helpers import CONFIGS, REPO, run_recipe
from transformers import AutoTokenizer

import modeling_modern_llm  # noqa: F401  (registers the Auto classes)
from modeling_modern_llm.training import final_model_problem

TOKEN = "hf_standinTOKEN0123456789abcdef"
SAMPLE = "Once upon a time there was a little robot. It liked numbers: 12 + 30 = 42."
STAGE_FILES = {
    "config.json",
    "model.safetensors",
    "configuration_modern_llm.py",
    "modeling_modern_llm.py",
    "attention_kernels_modern_llm.py",
    "moe_modern_llm.py",
    "streaming_modern_llm.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "README.md",
    "training_summary.json",
}


@pytest.fixture
def hub():
    with StandInHub(max_requests=400, lifetime_s=600) as hub:
        yield hub


def _env(hub_url, tmp_path, token=TOKEN):
    """The stand-in as the Hub: online (tests/conftest.py set offline; "0" also undoes it in `run_recipe`'s merge),
    LFS uploads (no Xet), an empty HF_HOME, the token only in HF_TOKEN."""
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        HF_ENDPOINT=hub_url,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(tmp_path / "hf_home"),
        HF_TOKEN=token or "",
        HUGGING_FACE_HUB_TOKEN="",
    )
    return env


def _push(folder, repo_id, env, *extra):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "recipes", "push_to_hub.py"), str(folder), repo_id, *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


LOAD_FROM_HUB = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = json.loads(sys.argv[1])  # site-packages, without the .pth hook that adds this package
    try:
        import modeling_modern_llm
        raise SystemExit("modeling_modern_llm is importable: the remote-code check would prove nothing")
    except ModuleNotFoundError:
        pass
    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    repo_id, head, folder, sample = sys.argv[2:6]
    auto_class = AutoModelForCausalLM if head == "causal" else AutoModelForSequenceClassification
    model = auto_class.from_pretrained(repo_id, trust_remote_code=True).eval()
    assert "transformers_modules" in type(model).__module__, type(model).__module__
    tokenizer = AutoTokenizer.from_pretrained(repo_id)
    with torch.no_grad():
        logits = model(**torch.load(folder + "/inputs.pt")).logits
    card = ModelCard.load(repo_id)
    torch.save({"logits": logits, "ids": tokenizer(sample)["input_ids"], "chat_template": tokenizer.chat_template,
                "card": card.data.to_dict()}, folder + "/arrived.pt")
    """
)


def _load_from_hub(repo_id, head, folder, env, tmp_path):
    """Load ``repo_id`` from the stand-in in a clean process; returns what it saw and the local model's logits."""
    auto_class = "AutoModelForCausalLM" if head == "causal" else "AutoModelForSequenceClassification"
    import transformers

    local = getattr(transformers, auto_class).from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = dict(tokenizer([SAMPLE, SAMPLE[:30]], return_tensors="pt", padding=True))
    scratch = tmp_path / f"load-{head}"
    scratch.mkdir(exist_ok=True)
    torch.save(inputs, scratch / "inputs.pt")
    with torch.no_grad():
        expected = local(**inputs).logits
    site_dirs = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    clean_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    clean_env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LOAD_FROM_HUB, json.dumps(site_dirs), repo_id, head, str(scratch), SAMPLE],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    arrived = torch.load(scratch / "arrived.pt")
    assert torch.equal(arrived["logits"], expected)
    assert arrived["ids"] == tokenizer(SAMPLE)["input_ids"] and arrived["chat_template"] == tokenizer.chat_template
    return arrived


def _assert_no_token(*folders):
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    assert TOKEN.encode() not in handle.read(), os.path.join(root, name)


def write_results(results_dir, scores: dict) -> None:
    """An evaluation's output folder as eval/evaluate_tasks.py lays it out (run_index.json, and lm-eval's results file
    per model) with one task, `embedded_text`, scored for each model path in ``scores`` ({path: bits per byte})."""
    models = []
    for number, (path, bits) in enumerate(scores.items()):
        folder = os.path.join(results_dir, f"model{number}")
        os.makedirs(folder, exist_ok=True)
        results = {
            "results": {
                "embedded_text": {
                    "alias": "embedded_text",
                    "bits_per_byte,none": bits,
                    "bits_per_byte_stderr,none": 0.01,
                    "word_perplexity,none": bits * 10,
                }
            },
            "configs": {"embedded_text": {}},
            "n-shot": {"embedded_text": 0},
            "n-samples": {"embedded_text": {"original": 8, "effective": 8}},
        }
        with open(os.path.join(folder, "results_2026-01-01T00-00-00.json"), "w") as handle:
            json.dump(results, handle)
        models.append({"name": str(path), "path": str(path), "stage": "sft", "status": "ok", "dir": f"model{number}"})
    with open(os.path.join(results_dir, "run_index.json"), "w") as handle:
        json.dump({"schema_version": 2, "command": "python eval/evaluate_tasks.py", "models": models}, handle)


def _results(tmp_path, folder):
    """Evaluation results that scored ``folder`` and another model."""
    results_dir = tmp_path / "results"
    write_results(results_dir, {str(folder): 2.5, "gpt2": 1.5})
    return results_dir


def _model_index(card: dict) -> dict:
    [entry] = card["model-index"]
    return {metric["type"]: metric["value"] for result in entry["results"] for metric in result["metrics"]}


@pytest.mark.slow
@pytest.mark.parametrize("stage, head", [("sft", "causal"), ("verifier", "classifier")])
def test_push_command_round_trip(tiny_run, hub, tmp_path, stage, head):
    folder = tmp_path / f"{stage}_final"
    shutil.copytree(tiny_run[stage], folder)  # copy2 keeps the times: the results file below is newer
    results = _results(tmp_path, folder)
    env = _env(hub.url, tmp_path)
    repo_id = f"me/tiny-{stage}"
    result = _push(folder, repo_id, env, "--private", "--results_dir", str(results))
    assert result.returncode == 0, result.stderr[-3000:]

    repo = hub.repos[repo_id]
    expected = STAGE_FILES if head == "causal" else STAGE_FILES - {"generation_config.json"}  # a classifier has none
    assert repo["private"] and expected <= set(repo["branches"]["main"])
    assert len(repo["commits"]) == 1 and hub.tokens == {TOKEN}  # the client sent the token from HF_TOKEN
    assert hub.unknown == []
    arrived = _load_from_hub(repo_id, head, str(folder), env, tmp_path)
    assert _model_index(arrived["card"]) == {"bits_per_byte": 2.5, "word_perplexity": 25.0}  # its records only
    assert arrived["card"]["pipeline_tag"] == ("text-generation" if head == "causal" else "text-classification")
    # --revision: a branch, created from main, then pushed to
    branch = _push(folder, repo_id, env, "--revision", "v1", "--results_dir", str(results))
    assert branch.returncode == 0, branch.stderr[-3000:]
    assert hub.files(repo_id, "v1") == hub.files(repo_id) and repo["commits"][-1]["revision"] == "v1"
    _assert_no_token(tmp_path)
    assert TOKEN not in result.stdout + result.stderr + branch.stdout + branch.stderr
    assert not any(TOKEN.encode() in content for content in hub.files(repo_id).values())


@pytest.mark.slow
def test_stage_config_pushes_its_final_folder_at_the_end(tiny_run, hub, tmp_path):
    env = _env(hub.url, tmp_path)
    result = run_recipe(
        "sft",
        tmp_path / "sft",
        "--model_name_or_path",
        tiny_run["pretrain"],
        "--push_to_hub",
        "true",
        "--hub_model_id",
        "me/tiny-sft-stage",
        "--hub_private_repo",
        "false",
        "--max_steps",
        "2",
        env=env,
    )
    final = tmp_path / "sft_final"
    arrived = hub.files("me/tiny-sft-stage")
    # Exactly the finished folder, in one commit: Trainer pushed nothing while training
    local = {str(p.relative_to(final)): p.read_bytes() for p in final.rglob("*") if p.is_file()}
    assert arrived == local and len(hub.repos["me/tiny-sft-stage"]["commits"]) == 1
    assert not hub.repos["me/tiny-sft-stage"]["private"]
    _load_from_hub("me/tiny-sft-stage", "causal", str(final), env, tmp_path)
    _assert_no_token(tmp_path / "sft", final)
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.slow
def test_an_unreachable_hub_is_one_line_and_the_stage_is_kept(tiny_run, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = run_recipe(
        "sft",
        tmp_path / "sft",
        "--model_name_or_path",
        tiny_run["pretrain"],
        "--push_to_hub",
        "true",
        "--hub_model_id",
        "me/tiny-sft",
        "--max_steps",
        "2",
        env=_env(closed, tmp_path),
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    [line] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert f"cannot reach {closed}" in line and "is kept" in line and "recipes/push_to_hub.py" in line
    assert final_model_problem(str(tmp_path / "sft_final"), "sft") is None


@pytest.mark.slow  # subprocess commands under the Hub's environment variables
def test_an_offline_or_tokenless_push_is_refused_before_loading(tmp_path):
    common = ("--model_name_or_path", str(tmp_path / "nowhere"), "--push_to_hub", "true", "--hub_model_id", "me/x")
    offline = run_recipe(
        "sft", tmp_path / "a", *common, env={**_env("http://127.0.0.1:9", tmp_path), "HF_HUB_OFFLINE": "1"}, check=False
    )
    assert offline.returncode == 2 and "Traceback" not in offline.stderr
    assert "HF_HUB_OFFLINE=1" in offline.stderr and "recipes/push_to_hub.py" in offline.stderr
    tokenless = run_recipe(
        "sft", tmp_path / "b", *common, env=_env("http://127.0.0.1:9", tmp_path, token=None), check=False
    )
    assert tokenless.returncode == 2 and "needs a token: set HF_TOKEN or run `hf auth login`" in tokenless.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow  # subprocess commands under the Hub's environment variables
def test_the_push_target_leaves_the_stage_config_alone(tmp_path):
    """The recipe gets its push target and the trainer a copy of its config that does not push (Trainer would create
    the repo in __init__ and push output_dir at every save); a GRPOConfig copies though it refuses a second
    __post_init__."""
    from trl import GRPOConfig

    from modeling_modern_llm.training import PushTarget, push_target

    config = GRPOConfig(
        output_dir=str(tmp_path),
        push_to_hub=True,
        hub_model_id="me/x",
        hub_private_repo=True,
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=2,
        num_generations=2,
    )
    push, trainer_args = push_target(config)
    assert push == PushTarget("me/x", private=True, revision=None)
    assert config.push_to_hub and not trainer_args.push_to_hub and type(trainer_args) is GRPOConfig
    assert trainer_args.to_dict() == {**config.to_dict(), "push_to_hub": False}
    assert push_target(trainer_args) == (None, trainer_args)


def test_a_token_in_the_config_is_refused(tmp_path):
    result = run_recipe(
        "sft",
        tmp_path / "sft",
        "--model_name_or_path",
        str(tmp_path / "nowhere"),
        "--hub_token",
        TOKEN,
        env=_env("http://127.0.0.1:9", tmp_path),
        check=False,
    )
    assert result.returncode == 2 and "`hub_token` is set" in result.stderr and "HF_TOKEN" in result.stderr


@pytest.mark.slow  # subprocess commands under the Hub's environment variables
def test_push_command_refuses_a_folder_that_is_not_a_finished_stage(tmp_path):
    result = _push(tmp_path, "me/x", _env("http://127.0.0.1:9", tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is not a finished stage (missing config.json" in result.stderr


FAKE_EVALUATION = f"""
import os, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_push_to_hub import write_results
args = sys.argv[1:]
models, out = args[args.index("--model") + 1:args.index("--stages")], args[args.index("--output_dir") + 1]
os.makedirs(out, exist_ok=True)
write_results(out, {{model: 2.0 + number for number, model in enumerate(models)}})
"""
FAKE_REPORT = """
import os, sys
out = sys.argv[sys.argv.index("--output") + 1]
os.makedirs(os.path.join(os.path.dirname(out), "figures"), exist_ok=True)
open(out, "w").write("# Report\\n![loss](figures/loss.png)\\n")
open(os.path.join(os.path.dirname(out), "figures", "loss.png"), "wb").write(b"\\x89PNG fake")
"""


@pytest.mark.slow
def test_pipeline_pushes_every_stage_with_its_results_and_the_report(tiny_run, hub, tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    for stage, folder in tiny_run.items():  # a finished run: the pipeline skips every stage
        shutil.copytree(folder, run_dir / f"{stage}_final")
    (tmp_path / "evaluate.py").write_text(FAKE_EVALUATION)
    (tmp_path / "report.py").write_text(FAKE_REPORT)
    command = [
        sys.executable,
        os.path.join(REPO, "recipes", "pipeline.py"),
        "--config",
        os.path.join(CONFIGS, "pipeline.yaml"),
        "--runs_dir",
        str(tmp_path / "runs"),
        "--results_dir",
        str(tmp_path / "results"),
        "--eval_script",
        str(tmp_path / "evaluate.py"),
        "--report_script",
        str(tmp_path / "report.py"),
        "--report_output",
        str(tmp_path / "rep" / "report.md"),
        "--push_to_hub",
        "true",
        "--hub_model_id",
        "me/tiny",
    ]
    result = subprocess.run(command, cwd=REPO, env=_env(hub.url, tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    with open(run_dir / "pipeline_summary.json") as handle:
        steps = json.load(handle)["steps"]
    for index, stage in enumerate(("pretrain", "sft", "dpo")):
        files = hub.files(f"me/tiny-{stage}")
        assert STAGE_FILES <= set(files) and steps[f"push-{stage}"]["status"] == "ok"
        assert files["report/report.md"].startswith(b"# Report") and "report/figures/loss.png" in files
        front = yaml.safe_load(files["README.md"].decode().split("---\n")[1])
        assert _model_index(front)["bits_per_byte"] == 2.0 + index
    assert "config.json" in hub.files("me/tiny-verifier")
    _assert_no_token(tmp_path / "runs", tmp_path / "results")


def test_a_rehearsal_never_pushes(tmp_path):
    from modeling_modern_llm.training import parse_stage_args
    from modeling_modern_llm.training.rehearsal import stage_overrides

    _, training, model = parse_stage_args(
        "sft", ["--config", os.path.join(CONFIGS, "sft.yaml"), "--push_to_hub", "true", "--hub_model_id", "me/x"]
    )
    overrides, notes = stage_overrides("sft", training, model, None)
    assert overrides[overrides.index("--push_to_hub") + 1] == "false"
    assert any("a rehearsal never pushes" in note for note in notes)
