"""The one-command evaluation: the pipeline's exact command line, result files by the contract, offline behaviour."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_modern_llm.evaluation.results import Record, stage_gain_rows
from modeling_modern_llm.evaluation.suite import EvalArguments, infer_stage, model_protocol, model_specs, plan_jobs, run_suite
from modeling_modern_llm.reporting.results import load_results_file

REPO = Path(__file__).resolve().parents[2]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(REPO / "eval" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_pipeline_command_writes_the_four_files(modern_llm_run, tmp_path):
    run, out = modern_llm_run, tmp_path / "results"
    result = run_script("evaluate_tasks.py", "--model", str(run / "pretrain_final"), str(run / "sft_final"), str(run / "dpo_final"),
                        "--verifier", str(run / "verifier_final"), "--embedded", "--include-baselines",
                        "--output_dir", str(out), "--limit", "4", "--n_samples", "2", "--max_new_tokens", "8",
                        "--perplexity_max_tokens", "600")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = load_results_file(out, "task_metrics.json")  # the report's own reader accepts every file
    records = metrics["records"]
    assert metrics["schema_version"] == 1 and "evaluate_tasks.py" in metrics["command"]
    ours = [r for r in records if r["stage"] in ("pretrain", "sft", "dpo")]
    assert {r["stage"] for r in ours} == {"pretrain", "sft", "dpo"} and all(r["status"] == "ok" for r in ours)
    assert {(r["task"], r["protocol"].get("num_fewshot")) for r in ours} == {("perplexity", None), ("sst2", 0), ("sst2", 2), ("gsm8k", 2)}
    assert all(r["dataset"].startswith("embedded-") and "NOT comparable" in r["note"] for r in records)
    gsm8k = next(r for r in ours if r["task"] == "gsm8k")
    assert set(gsm8k["metrics"]) == {"exact_match_strict", "exact_match_flexible", "majority_vote", "verifier_best_of_n", "oracle_pass_at_n"}
    assert gsm8k["protocol"]["n_samples"] == 2 and gsm8k["limit"] == 4 and gsm8k["seed"] == 0
    perplexity = next(r for r in ours if r["task"] == "perplexity")["metrics"]
    assert set(perplexity) == {"token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"}
    baselines = [r for r in records if r["stage"] == "baseline"]
    assert {r["model"] for r in baselines} == {"gpt2", "distilgpt2"}
    assert all(r["status"].startswith("unavailable: ") and "no network" in r["status"] for r in baselines)

    comparison = load_results_file(out, "baseline_comparison.json")
    assert {row["model"] for row in comparison["rows"]} == {"pretrain_final", "sft_final", "dpo_final", "gpt2", "distilgpt2"}
    gains = load_results_file(out, "stage_gains.csv")
    assert [g["stage"] for g in gains if g["task"] == "sst2/0-shot"] == ["pretrain", "sft", "dpo"]
    analysis = load_results_file(out, "gsm8k_analysis.json")
    assert analysis["model"] == "dpo_final" and analysis["n_samples"] == 2 and len(analysis["problems"]) == 4
    assert all(len(p["candidates"]) == 2 for p in analysis["problems"])
    assert sum(analysis["taxonomy"].values()) == round(4 * (100 - analysis["em_verifier"]) / 100)
    assert (out / "gsm8k_analysis.md").read_text().startswith("## GSM8K verifier impact (dpo_final)")


def test_nothing_scorable_exits_non_zero(tmp_path):
    result = run_script("eval_sst2.py", "--model", str(tmp_path / "missing_model"), "--embedded", "--output_dir", str(tmp_path))
    assert result.returncode == 1
    record = json.loads((tmp_path / "sst2_metrics.json").read_text())["records"][0]
    assert record["status"].startswith("unavailable: folder") and "missing_model' does not exist" in record["status"]


def test_unavailable_dataset_is_recorded_and_the_rest_runs(tiny_gpt2_dir):
    rows = {("embedded-sst2", "test"): [{"sentence": "great .", "label": 1, "idx": 0}, {"sentence": "bad .", "label": 0, "idx": 1}]}

    def loader(name, split, local_dir=None, limit=None):
        if (name, split) not in rows:
            raise ConnectionError(f"{name}: unreachable: no network")
        return rows[(name, split)][:limit]

    args = EvalArguments(model=[f"tiny={tiny_gpt2_dir}"], tasks=["perplexity", "sst2"], suite="embedded", num_fewshot=0,
                         perplexity_datasets=["wikitext-2-raw-v1"])
    records, _ = run_suite(args, "test", loader=loader)
    by_task = {r.task: r for r in records}
    assert by_task["perplexity"].status.startswith("unavailable: wikitext-2-raw-v1/test") and "no network" in by_task["perplexity"].status
    assert by_task["sst2"].ok and by_task["sst2"].model == "tiny" and by_task["sst2"].stage == "other"


def test_stage_inference_and_gains():
    assert [infer_stage(p) for p in ("runs/a/pretrain_final", "runs/a/sft/checkpoint-40", "runs/a/dpo_final", "gpt2")] == ["pretrain", "sft", "dpo", "other"]
    specs = model_specs(EvalArguments(model=["mine=runs/x/final", "runs/a/sft_final"], stages=["dpo", "sft"], include_baselines=True))
    assert [(s.name, s.stage) for s in specs] == [("mine", "dpo"), ("runs/a/sft_final", "sft"), ("gpt2", "baseline"), ("distilgpt2", "baseline")]
    with pytest.raises(ValueError, match="one stage per --model"):
        EvalArguments(model=["a", "b"], stages=["sft"])

    def record(stage, value):
        return Record(stage, stage, stage, "sst2", "sst2", "validation", {"num_fewshot": 0}, 0, None, "ok", {"accuracy": value})

    rows = stage_gain_rows([record("dpo", 0.7), record("pretrain", 0.5), record("sft", 0.65)])
    assert [(r["stage"], r["value"], r["delta_vs_previous_stage"]) for r in rows] == [
        ("pretrain", 0.5, None), ("sft", 0.65, pytest.approx(0.15)), ("dpo", 0.7, pytest.approx(0.05))]

    # Each stage in its own format: a chat model's 0-shot GSM8K compares with the base model's 2-shot one
    gsm8k = [Record("base", "b", "pretrain", "gsm8k", "g", "test", {"num_fewshot": 2}, 0, None, "ok", {"em": 0.3}),
             Record("chat", "c", "sft", "gsm8k", "g", "test", {"num_fewshot": 0, "chat_template": True}, 0, None, "ok", {"em": 0.4}),
             Record("chat", "c", "sft", "sst2", "s", "test", {"num_fewshot": 0, "chat_template": True}, 0, None, "ok", {"acc": 0.6}),
             Record("base", "b", "pretrain", "sst2", "s", "test", {"num_fewshot": 2}, 0, None, "ok", {"acc": 0.5})]
    rows = stage_gain_rows(gsm8k)
    assert [(r["stage"], r["task"], r["protocol"], r["delta_vs_previous_stage"]) for r in rows] == [
        ("pretrain", "gsm8k", "gsm8k/2-shot", None), ("pretrain", "sst2/2-shot", "sst2/2-shot", None),
        ("sft", "gsm8k", "gsm8k/0-shot-chat", pytest.approx(0.1)), ("sft", "sst2/0-shot", "sst2/0-shot-chat", None)]


def test_generation_script_path(tiny_gpt2_dir, tmp_path):
    from modeling_modern_llm.evaluation.suite import run_generation

    args = EvalArguments(model=[tiny_gpt2_dir, str(tmp_path / "absent")], tasks=["generation"], n_samples=2, max_new_tokens=4,
                         prompts=["Once upon a time", "Question: 2+2?\nAnswer:"])
    result = run_generation(args, "cmd")
    ok, missing = result["models"]
    assert ok["status"] == "ok" and [len(g["samples"]) for g in ok["generations"]] == [2, 2]
    assert all(isinstance(g["greedy"], str) for g in ok["generations"]) and missing["status"].startswith("unavailable: folder")


def test_chat_models_get_their_template_and_their_gsm8k_shot_count():
    def protocols(**options):
        args = EvalArguments(model=["runs/a/pretrain_final", "runs/a/sft_final"], suite="embedded", tasks=["sst2", "gsm8k"], **options)
        return {(spec.stage, job.task, job.protocol["num_fewshot"]): model_protocol(job, spec, args)
                for spec in model_specs(args) for job in plan_jobs(args)}

    chat = protocols(chat_template=True)
    assert chat[("pretrain", "gsm8k", 2)] == {**chat[("pretrain", "gsm8k", 2)], "num_fewshot": 2, "chat_template": False}
    assert (chat[("sft", "gsm8k", 2)]["num_fewshot"], chat[("sft", "gsm8k", 2)]["chat_template"]) == (0, True)
    assert (chat[("sft", "sst2", 2)]["num_fewshot"], chat[("sft", "sst2", 2)]["chat_template"]) == (2, True)
    assert protocols(chat_template=True, chat_gsm8k_fewshot=-1)[("sft", "gsm8k", 2)]["num_fewshot"] == 2
    assert protocols()[("sft", "gsm8k", 2)] == {**protocols()[("sft", "gsm8k", 2)], "num_fewshot": 2, "chat_template": False}
