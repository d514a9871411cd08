"""Tiny checkpoints saved as the recipes save them, and one real evaluation of them (lm-eval on the embedded tasks)."""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TASKS = str(REPO / "eval" / "tasks")
CORPUS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: 3+4 = <<3+4=7>>7 apples.\n#### 7",
    "a great movie , full of charm .\nQuestion: Is this sentence positive or negative?\nAnswer: positive",
    "a dull , tedious mess .\nQuestion: Is this sentence positive or negative?\nAnswer: negative",
    "Once upon a time there was a little dog who liked to play in the park with 2 cats.",
] * 20


def build_run(root: Path, stages=("pretrain", "sft", "dpo", "verifier")) -> Path:
    """<root>/<stage>_final folders: a 1-layer ModernLLM (a 1-label verifier head for the verifier) and our tokenizer."""
    from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM, ModernLLMForSequenceClassification
    from modeling_modern_llm.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(CORPUS, vocab_size=300, min_frequency=1)
    for seed, stage in enumerate(stages):
        torch.manual_seed(seed)
        config = ModernLLMConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=512,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model_class = ModernLLMForSequenceClassification if stage == "verifier" else ModernLLMForCausalLM
        model_class(config).save_pretrained(root / f"{stage}_final")
        tokenizer.save_pretrained(root / f"{stage}_final")
    return root


def run_evaluate(*argv: str) -> Path:
    """eval/evaluate_tasks.py in this process (its exit status and one-line errors as SystemExit)."""
    from modeling_modern_llm.errors import run_command
    from modeling_modern_llm.evaluation.harness import main

    run_command(main, [TASKS], list(argv))
    return Path(argv[argv.index("--output_dir") + 1])


@pytest.fixture(scope="session")
def evaluate():
    return run_evaluate


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def evaluated(tiny_run, tmp_path_factory) -> Path:
    """The pipeline's evaluation of the tiny run: two stages (the SFT one through its chat template), the offline
    baselines, the verifier, the embedded suite; 8 documents per task, 3 samples per problem."""
    out = tmp_path_factory.mktemp("evaluation") / "results"
    return run_evaluate(
        "--model",
        str(tiny_run / "pretrain_final"),
        str(tiny_run / "sft_final"),
        "--include-baselines",
        "--verifier",
        str(tiny_run / "verifier_final"),
        "--embedded",
        "--chat_template",
        "--limit",
        "8",
        "--n_samples",
        "3",
        "--max_gen_toks",
        "12",
        "--output_dir",
        str(out),
    )
