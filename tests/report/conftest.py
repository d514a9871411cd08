"""A run folder as the recipes leave it (tiny models, training summaries, loss logs) and a real evaluation of it, whose
DPO GSM8K samples are then replaced by hand-made solutions and verifier scores, so every selector has something to pick."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "report"))
CORPUS = [
    "The film was slow at first, but the ending was truly wonderful.",
    "Maria lost her keys in the park, so she went back to find them.",
    "Question: Tom has 3 apples and buys 5 more. How many apples does he have?\nAnswer: 3+5 = <<3+5=8>>8\n#### 8",
] * 20


def _model(seed: int, classifier: bool = False):
    """Our model with learned sinks, set large enough to carry visible mass (trained sinks are far from their 0 init)."""
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM, ModernLLMForSequenceClassification

    torch.manual_seed(seed)
    config = ModernLLMConfig(
        vocab_size=320,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        attention_sinks=True,
        num_labels=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = (ModernLLMForSequenceClassification if classifier else ModernLLMForCausalLM)(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(2.0)
    return model


def _summary(stage: str, seed: int) -> dict:
    summary = {
        "stage": stage,
        "config_path": f"recipes/configs/cpu-demo/{stage}.yaml",
        "command": f"python recipes/{stage}.py --config recipes/configs/cpu-demo/{stage}.yaml",
        "wall_time_s": 41.7 + seed,
        "steps": 60 + 7 * seed,
        "train_tokens": 121344 + seed,
        "tokens_per_s": 2907.8,
        "final_loss": 3.4129 - seed / 7,
        "datasets": ["embedded-text"],
        "per_device_batch_size": 8,
        "learning_rate": 0.0003,
        "hardware": "cpu (2 cores, 2 threads)",
        "num_parameters": 31337,
        "eval_metrics": {},
    }
    if stage == "dpo":  # the fields the lead is adding: only one stage has them, the others must not break
        summary.update(
            mixed_precision="no",
            param_dtype="float32",
            attn_implementation="sdpa",
            packing_strategy="bfd",
            padding_free=False,
            world_size=1,
            accelerate_config="accelerate_configs/cpu_ddp.yaml",
            rehearsal=True,
        )
    if stage == "verifier":
        summary["pair_accuracy"] = {"train": 0.8086, "eval": 0.494}
    if stage == "grpo":
        summary.update(
            reward_funcs=["exact_match", "verifier"],
            reward_weights=[1.0, 0.25],
            num_generations=8,
            beta=0.0,
            reward_logged={"first": 0.6875, "last": 0.8125, "mean": 0.7531},
        )
    return summary


def make_run(root: Path) -> Path:
    from modeling_modern_llm.tokenizer import train_tokenizer
    from modeling_modern_llm.training.model_card import write_model_card, write_training_summary

    run = root / "runs" / "demo"
    tokenizer = train_tokenizer(CORPUS, vocab_size=320, min_frequency=1)
    for seed, stage in enumerate(("pretrain", "sft", "dpo", "verifier", "grpo")):  # GRPO trained, not evaluated
        final = run / f"{stage}_final"
        _model(seed, classifier=stage == "verifier").save_pretrained(final)
        tokenizer.save_pretrained(final)
        write_training_summary(str(final), _summary(stage, seed))
        write_model_card(str(final), _summary(stage, seed), json.loads((final / "config.json").read_text()), None, {})
        (run / stage).mkdir()
        log = [{"step": step, "loss": round(5.9137 - seed + 3.0 / step, 4)} for step in (10, 20, 30, 40)]
        if stage == "grpo":
            for entry, reward in zip(log, (0.6875, 0.75, 0.7, 0.8125)):
                entry.update({"reward": reward, "reward_std": 0.3125, "completions/mean_length": 41.5})
        (run / stage / "trainer_state.json").write_text(json.dumps({"log_history": log}))
    (run / "pipeline_summary.json").write_text(
        json.dumps(
            {
                "run_name": "demo",
                "command": "python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml",
                "steps": {},
                "total_wall_time_s": 655.1,
            }
        )
    )
    return run


# The DPO model's sampled solutions per problem (4 each), the verifier's scores and the greedy solution: patterns
# that set the selectors apart (majority right where the verifier is wrong and the other way round, unparsable ones).
SOLUTIONS = [
    (
        ["3+4 = <<3+4=7>>7\n#### {g}", "3+4 = <<3+4=8>>8\n#### 8", "#### {g}", "no idea"],
        [0.3, 2.1, -0.4, -1.0],
        "#### {g}",
    ),
    (["#### 8", "#### 8", "#### {g}", "2*3 = <<2*3=6>>6\n#### 6"], [-0.2, -0.5, 1.7, 0.1], "#### 9"),
    (["#### {g}", "#### 5", "#### 5", "#### 5"], [1.2, 0.4, 0.2, 0.3], "I cannot tell."),
]


def plant_gsm8k(results_dir: Path, model_dir: str = "dpo_final", solutions: list = SOLUTIONS) -> None:
    """Replace a model's logged GSM8K solutions (greedy and sampled) and the verifier's scores with `solutions`."""
    from modeling_modern_llm.files import atomic_write_json
    from modeling_modern_llm.evaluation.results import load_run, write_views

    folder = results_dir / model_dir
    scores = {}
    for path in folder.glob("samples_embedded_gsm8k_*.jsonl"):
        sampled = "sampled" in path.name
        lines = []
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            gold = sample["doc"]["answer"].rpartition("#### ")[2]
            candidates, doc_scores, greedy = solutions[sample["doc_id"] % len(solutions)]
            sample["resps"] = [[c.format(g=gold) for c in candidates]] if sampled else [[greedy.format(g=gold)]]
            scores[sample["doc_id"]] = doc_scores
            lines.append(json.dumps(sample))
        path.write_text("\n".join(lines) + "\n")
        if sampled:
            task = path.name.rpartition("_2")[0].removeprefix("samples_")
            atomic_write_json(
                str(folder / f"verifier_scores_{task}.json"), {"verifier": "planted", "task": task, "scores": scores}
            )
    write_views(load_run(results_dir), results_dir)


def make_results(root: Path, run: Path) -> Path:
    from modeling_modern_llm.errors import run_command
    from modeling_modern_llm.evaluation.harness import main

    out = root / "results"
    run_command(
        main,
        [str(REPO / "eval" / "tasks")],
        [
            "--model",
            *(str(run / f"{s}_final") for s in ("pretrain", "sft", "dpo")),
            "--include-baselines",
            "--verifier",
            str(run / "verifier_final"),
            "--embedded",
            "--chat_template",
            "--limit",
            "6",
            "--n_samples",
            "4",
            "--max_gen_toks",
            "8",
            "--output_dir",
            str(out),
        ],
    )
    plant_gsm8k(out)
    return out


@pytest.fixture(scope="session")
def report_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """`(results_dir, run_dir)`: a real evaluation (DPO's GSM8K solutions planted) of a run folder."""
    root = tmp_path_factory.mktemp("report")
    run = make_run(root)
    return make_results(root, run), run


@pytest.fixture(scope="session")
def second_seed_results(report_inputs, tmp_path_factory) -> Path:
    """The evaluation of report_inputs as a second seed would leave it: the same run, with two of the three planted
    GSM8K patterns, so its exact matches differ from the first seed's and everything else is equal."""
    import shutil

    second = tmp_path_factory.mktemp("seed-1") / "results"
    shutil.copytree(report_inputs[0], second)
    plant_gsm8k(second, solutions=SOLUTIONS[:2])
    return second
