"""Fixtures for the report tests: a tiny saved causal LM and a small results + run directory in the contract schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CORPUS = [
    "The film was slow at first, but the ending was truly wonderful.",
    "Maria lost her keys in the park, so she went back to find them.",
    "Tom has 3 apples and buys 5 more. How many apples does he have?",
] * 20


def _tiny_model():
    """Our model with learned sinks, set large enough to carry visible mass (trained sinks are far from their 0 init)."""
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM

    config = ModernLLMConfig(
        vocab_size=320,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        attention_sinks=True,
    )
    model = ModernLLMForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(2.0)
    return model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved causal LM + tokenizer folder, as a recipe's ``<stage>_final`` (without the summary)."""
    from modeling_modern_llm.tokenizer import train_tokenizer

    path = tmp_path_factory.mktemp("ckpt") / "sft_final"
    torch.manual_seed(0)
    tokenizer = train_tokenizer(CORPUS, vocab_size=320, min_frequency=1)
    model = _tiny_model()
    assert len(tokenizer) <= model.config.vocab_size
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _problem(index: int) -> dict:
    """A GSM8K problem record as ``evaluation.gsm8k.evaluate_gsm8k`` returns it, 4 candidates, patterns that separate the methods."""
    texts = (
        [f"{index} + 1 = {index + 1} #### {index % 3}", "3 + 4 = 7 #### 7", "2 * 3 = 7 #### 7", "no answer"]
        if index % 2
        else ["5 + 2 = 7 #### 7", f"#### {index}", "1 + 6 = 7 #### 7", f"{index} * 1 = {index + 2} #### {index}"]
    )
    candidates = [
        {
            "text": t,
            "answer": t.split("#### ")[1] if "####" in t else None,
            "verifier_score": round(0.1 * ((index + k) % 5), 1),
        }
        for k, t in enumerate(texts)
    ]
    for candidate in candidates:
        candidate["correct"] = candidate["answer"] == "7"
    greedy = "3 + 4 = 7 #### 7" if index == 0 else "4 * 4 = 17 #### 17"
    return {
        "question": f"Question {index}: what is three plus four?",
        "reference": "7",
        "greedy": greedy,
        "greedy_answer": greedy.split("#### ")[1],
        "candidates": candidates,
        "majority_answer": None,
        "verifier_choice": max(range(4), key=lambda i: candidates[i]["verifier_score"]),
    }


def _results_fixture(root: Path, checkpoint: Path) -> tuple[Path, Path]:
    """``root/results`` and ``root/runs/demo`` written by the evaluation's and the recipes' own writers (odd values on purpose)."""
    from modeling_modern_llm.evaluation.results import Record, write_results
    from modeling_modern_llm.evaluation.verifier_analysis import verifier_analysis
    from modeling_modern_llm.training.model_card import write_model_card, write_training_summary

    results, run = root / "results", root / "runs" / "demo"
    command = (
        "python eval/evaluate_tasks.py --model runs/demo/pretrain_final runs/demo/sft_final --limit 37 --seed 1234"
    )

    def record(model, stage, task, dataset, metrics, status="ok", protocol=None):
        path = str(run / f"{stage}_final") if stage in ("pretrain", "sft") else model
        return Record(
            model=model,
            model_path=path,
            stage=stage,
            task=task,
            dataset=dataset,
            split="test",
            protocol=protocol or {"num_fewshot": 0},
            seed=1234,
            limit=37,
            status=status,
            metrics=metrics,
            command=command,
        )

    records = [
        record(
            "demo-pretrain",
            "pretrain",
            "perplexity",
            "embedded-text",
            {
                "token_perplexity": 812.3417,
                "word_perplexity": 2213.5871,
                "byte_perplexity": 3.8173,
                "bits_per_byte": 1.9326,
            },
        ),
        record(
            "demo-sft",
            "sft",
            "perplexity",
            "embedded-text",
            {
                "token_perplexity": 845.9921,
                "word_perplexity": 2301.4417,
                "byte_perplexity": 3.9137,
                "bits_per_byte": 1.9685,
            },
        ),
        record("demo-pretrain", "pretrain", "sst2", "embedded-sst2", {"accuracy": 0.5137}),
        record("demo-sft", "sft", "sst2", "embedded-sst2", {"accuracy": 0.6419}),
        record(
            "demo-sft",
            "sft",
            "gsm8k",
            "embedded-gsm8k",
            {
                "exact_match_strict": 0.0513,
                "exact_match_flexible": 0.0769,
                "majority_vote": 0.1026,
                "verifier_best_of_n": 0.1282,
                "oracle_pass_at_n": 0.2308,
            },
            protocol={"num_fewshot": 5, "n_samples": 4},
        ),
        record(
            "gpt2",
            "baseline",
            "perplexity",
            "wikitext-2-raw-v1",
            {},
            status="unavailable: the Hugging Face Hub cannot be reached (offline)",
        ),
    ]
    analysis = verifier_analysis([_problem(i) for i in range(13)], n_samples=4, model="demo-sft")
    write_results(records, results, command, analysis)

    for stage, loss, steps in (("pretrain", 5.9137, 300), ("sft", 3.4129, 60), ("verifier", 0.6931, 20)):
        final = run / f"{stage}_final"
        final.mkdir(parents=True)
        for item in checkpoint.iterdir():  # both stages "saved" the tiny model, as far as the report can tell
            (final / item.name).write_bytes(item.read_bytes())
        summary = {
            "stage": stage,
            "config_path": f"recipes/configs/cpu-demo/{stage}.yaml",
            "command": f"python recipes/{stage}.py --config recipes/configs/cpu-demo/{stage}.yaml",
            "wall_time_s": 41.7 if stage == "sft" else 613.3,
            "steps": steps,
            "train_tokens": 121344 if stage == "sft" else 2457600,
            "tokens_per_s": 2907.8 if stage == "sft" else 4007.3,
            "final_loss": loss,
            "datasets": {"pretrain": ["embedded-text"], "sft": ["embedded-alpaca"]}.get(stage, ["embedded-gsm8k"]),
            "per_device_batch_size": 8 if stage == "sft" else 16,
            "learning_rate": 0.0003 if stage == "sft" else 0.0006,
            "hardware": "cpu (2 cores, 2 threads)",
            "world_size": 1,
            "num_parameters": 31337,
            "eval_metrics": {},
        }
        if stage == "verifier":
            summary.update(pairs={"train": 739, "eval": 166}, pair_accuracy={"train": 0.8086, "eval": 0.494},
                           train_pairs_scored=256)
        write_training_summary(str(final), summary)
        write_model_card(str(final), summary, json.loads((final / "config.json").read_text()), None, {})
        log = [{"step": s, "loss": round(loss + 3.0 / s, 4)} for s in (10, 20, 30, 40)]
        (run / stage).mkdir()
        (run / stage / "trainer_state.json").write_text(
            json.dumps({"log_history": log + [{"step": 40, "train_runtime": 12.5}]})
        )
    (run / "pipeline_summary.json").write_text(
        json.dumps(
            {
                "run_name": "demo",
                "command": "python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml --run_name demo",
                "steps": {"pretrain": {"command": "python recipes/pretrain.py", "wall_time_s": 655.1, "status": "ok"}},
                "total_wall_time_s": 655.1,
            }
        )
    )
    return results, run


@pytest.fixture(scope="session")
def make_results_fixture(tiny_checkpoint):
    """``make(root) -> (results_dir, run_dir)``, for fixtures of a wider scope than one test."""
    return lambda root: _results_fixture(root, tiny_checkpoint)


@pytest.fixture
def results_fixture(tmp_path, tiny_checkpoint) -> tuple[Path, Path]:
    """``(results_dir, run_dir)`` in the schemas of docs/DESIGN.md."""
    return _results_fixture(tmp_path, tiny_checkpoint)
