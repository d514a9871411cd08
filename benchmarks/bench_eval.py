"""python benchmarks/bench_eval.py [--quick True] [--model experiments/runs/<run>/dpo_final]

Evaluation speed through lm-eval's HF model class (`HFLM`), the engine of eval/evaluate_tasks.py, measured in this run on
the same threads, on a CPU-demo-sized ModernLLM (hidden 192, 4 layers, vocab 4096, context 256, untrained) or `--model`:
  - perplexity throughput (tokens/s) of `loglikelihood_rolling` on the embedded text;
  - GSM8K best-of-N throughput (problems/s): the N samples of each problem as lm-eval issues them for a task with
    `repeats: N` (N copies of the request, batched together, `--batch_size` sequences per `generate`), against one
    `generate` per sample (batch size 1), as a ratio (target >= 4x);
  - the same batched sampling with GSM8K's calculator at generation (`calculator: true`, modeling_modern_llm/calculator.py)
    against without it, as a time ratio, and how many samples wrote a `<<expression=result>>` step (an untrained model
    writes none: measure the calculator on a trained `--model`).
No path stops early (no stop sequence, eos masked: `max_gen_toks` tokens each), so all generate the same number of
tokens.
Other processes on the machine add noise: rerun before trusting a borderline ratio.
"""

import time
from dataclasses import dataclass, field

import torch
from lm_eval.api.instance import Instance
from modeling_modern_llm.evaluation.harness_lm import HarnessLM as HFLM
from transformers import HfArgumentParser

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.data import load_dataset_by_name
from modeling_modern_llm.task_formats import calculator_annotations, format_prompt
from modeling_modern_llm.tokenizer import train_tokenizer


@dataclass
class BenchArguments:
    quick: bool = field(default=False, metadata={"help": "Tiny sizes for a smoke check (numbers not meaningful)."})
    model: str | None = field(default=None, metadata={"help": "A saved causal LM instead of the untrained one."})
    threads: int = field(default=2, metadata={"help": "torch threads."})
    n_samples: int = field(default=8, metadata={"help": "Samples per GSM8K problem (N, the task's repeats)."})
    n_problems: int = field(default=8, metadata={"help": "GSM8K problems."})
    max_gen_toks: int = field(default=64, metadata={"help": "New tokens per sample."})
    n_documents: int = field(default=100, metadata={"help": "Embedded-text documents scored for perplexity."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per forward pass (the batched path)."})


def untrained_model(args: BenchArguments):
    texts = [row["text"] for row in load_dataset_by_name("embedded-text", "train", limit=3000)]
    tokenizer = train_tokenizer(texts, vocab_size=512 if args.quick else 4096)
    size = (
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1)
        if args.quick
        else dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4)
    )
    config = ModernLLMConfig(
        vocab_size=len(tokenizer),
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **size,
    )
    torch.manual_seed(0)
    return ModernLLMForCausalLM(config).eval(), tokenizer


def requests(kind: str, arguments: list[tuple]) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=0) for a in arguments]


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main(args: BenchArguments) -> None:
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_samples, args.n_problems, args.max_gen_toks, args.n_documents = 4, 2, 8, 10
    if args.model:
        batched = HFLM(
            pretrained=args.model, device="cpu", batch_size=args.batch_size, dtype="float32", trust_remote_code=True
        )
        model, tokenizer = batched.model, batched.tokenizer
    else:
        model, tokenizer = untrained_model(args)
        batched = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    one_by_one = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {args.threads} threads")

    texts = [row["text"] for row in load_dataset_by_name("embedded-text", "test", limit=args.n_documents)]
    _, seconds = timed(
        lambda: batched.loglikelihood_rolling(requests("loglikelihood_rolling", [(t,) for t in texts]), True)
    )
    tokens = sum(len(tokenizer(t)["input_ids"]) for t in texts)
    print(f"perplexity: {tokens} tokens in {seconds:.2f}s = {tokens / seconds:,.0f} tokens/s")

    problems = [row["question"] for row in load_dataset_by_name("embedded-gsm8k", "test", limit=args.n_problems)]
    # min_new_tokens: a trained model's eos is masked, so every path generates max_gen_toks tokens per sample
    options = {
        "until": ["<never>"],
        "do_sample": True,
        "temperature": 1.0,
        "max_gen_toks": args.max_gen_toks,
        "min_new_tokens": args.max_gen_toks,
    }
    samples = requests("generate_until", [(format_prompt(q), options) for q in problems for _ in range(args.n_samples)])
    torch.manual_seed(0)
    batched.generate_until(samples[:2], True)  # warm-up
    together, together_s = timed(lambda: batched.generate_until(samples, True))
    alone, alone_s = timed(lambda: one_by_one.generate_until(samples, True))
    assert len(together) == len(alone) == len(problems) * args.n_samples
    print(
        f"gsm8k best-of-{args.n_samples}: batched {len(problems) / together_s:.3f} problems/s, one generate per sample "
        f"{len(problems) / alone_s:.3f} problems/s -> {alone_s / together_s:.1f}x faster (target >= 4x)"
    )
    calculated = requests("generate_until", [(r.arguments[0], {**options, "calculator": True}) for r in samples])
    plain_s, calculator_s = [], []
    for _ in range(2):  # alternated, the faster of two each: less exposed to the machine's other load
        plain_s.append(timed(lambda: batched.generate_until(samples, True))[1])
        with_calculator, seconds = timed(lambda: batched.generate_until(calculated, True))
        calculator_s.append(seconds)
    steps = sum(len(calculator_annotations(text)) for text in with_calculator)
    print(
        f"calculator at generation: batched {len(problems) / min(calculator_s):.3f} problems/s, "
        f"{min(calculator_s) / min(plain_s):.2f}x the time without it (the faster of two runs each); {steps} "
        f"`<<expression=result>>` steps written in {len(calculated)} samples"
    )


if __name__ == "__main__":
    (arguments,) = HfArgumentParser(BenchArguments).parse_args_into_dataclasses()
    main(arguments)
