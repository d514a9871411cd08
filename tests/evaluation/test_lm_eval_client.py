"""The real client: lm-evaluation-harness scores our saved checkpoint (remote code) on a local SST-2 task,
and its 0-shot accuracy equals ours on the same data and model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_modern_llm.data import load_dataset_by_name
from modeling_modern_llm.evaluation.lm import CausalLM
from modeling_modern_llm.evaluation.sst2 import evaluate_sst2

TASK_YAML = Path(__file__).resolve().parents[2] / "eval" / "lm_eval_tasks" / "sst2_local.yaml"


@pytest.mark.slow
def test_lm_eval_accuracy_equals_ours(modern_llm_run, tmp_path):
    checkpoint = modern_llm_run / "sft_final"
    assert (checkpoint / "modeling_modern_llm.py").is_file()  # lm-eval loads it as remote code, not through our import
    rows = list(load_dataset_by_name("embedded-sst2", "test", limit=40))
    data = tmp_path / "sst2_validation.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "sst2_local.yaml").write_text(TASK_YAML.read_text().replace("experiments/lm_eval_data/sst2/validation.jsonl", str(data)))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    command = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={checkpoint},trust_remote_code=True",
               "--tasks", "sst2_local", "--include_path", str(tasks), "--device", "cpu", "--batch_size", "8",
               "--log_samples", "--output_path", str(tmp_path / "lm_eval_out")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = (tmp_path / "lm_eval_out").rglob("results_*.json")
    theirs = json.loads(results_file.read_text())["results"]["sst2_local"]["acc,none"]

    [samples_file] = (tmp_path / "lm_eval_out").rglob("samples_sst2_local_*.jsonl")
    samples = sorted((json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda s: s["doc_id"])
    their_scores = [[float(response[0]) for response in sample["filtered_resps"]] for sample in samples]

    ours = evaluate_sst2(CausalLM.from_pretrained(str(checkpoint), device="cpu"), rows)
    assert ours["accuracy"] == theirs
    assert ours["predictions"] == [int(scores[1] > scores[0]) for scores in their_scores]  # example by example
    assert 0 < ours["accuracy"] < 1  # a tiny random model gets some right and some wrong: the comparison is not vacuous
