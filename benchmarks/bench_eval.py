"""python benchmarks/bench_eval.py [--quick True]

Evaluation speed on a CPU-demo-sized ModernLLM (hidden 192, 4 layers, vocab 4096, context 256, untrained),
measured in this run on the same threads:
  - perplexity throughput (tokens/s) of the sliding-window scorer on the embedded text;
  - GSM8K best-of-N throughput (problems/s): N candidates per problem sampled in batches with
    ``num_return_sequences`` (the library's way) against one ``generate`` call per sample, as a ratio
    (target >= 4x).
Neither path uses stop strings; an untrained model rarely samples eos, and when it does the one-by-one
path gains (a batch runs until its last sequence ends), so the ratio errs against batching. Other processes on the machine add noise: rerun before trusting a borderline ratio.
"""

import time
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.data import load_dataset_by_name
from modeling_modern_llm.evaluation.gsm8k_format import format_prompt
from modeling_modern_llm.evaluation.lm import CausalLM
from modeling_modern_llm.evaluation.perplexity import evaluate_perplexity
from modeling_modern_llm.tokenizer import train_tokenizer


@dataclass
class BenchArguments:
    quick: bool = field(default=False, metadata={"help": "Tiny sizes for a smoke check (numbers not meaningful)."})
    threads: int = field(default=2, metadata={"help": "torch threads."})
    n_samples: int = field(default=8, metadata={"help": "Candidates per GSM8K problem (N)."})
    n_problems: int = field(default=8, metadata={"help": "GSM8K problems."})
    max_new_tokens: int = field(default=64, metadata={"help": "New tokens per candidate."})
    perplexity_tokens: int = field(default=20_000, metadata={"help": "Size of the perplexity corpus."})
    batch_size: int = field(default=32, metadata={"help": "Sequences per forward pass (batched path)."})


def build_lm(args: BenchArguments) -> CausalLM:
    texts = [row["text"] for row in load_dataset_by_name("embedded-text", "train")]
    tokenizer = train_tokenizer(texts, vocab_size=512 if args.quick else 4096)
    size = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1) if args.quick else dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4)
    config = ModernLLMConfig(vocab_size=len(tokenizer), num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                             pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **size)
    torch.manual_seed(0)
    return CausalLM(ModernLLMForCausalLM(config), tokenizer, batch_size=args.batch_size)


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main(args: BenchArguments) -> None:
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_samples, args.n_problems, args.max_new_tokens, args.perplexity_tokens = 4, 2, 8, 2_000
    lm = build_lm(args)
    print(f"model: {sum(p.numel() for p in lm.model.parameters()) / 1e6:.2f}M parameters, {args.threads} threads")

    texts = [row["text"] for row in load_dataset_by_name("embedded-text", "test")]
    (_, counts), seconds = timed(lambda: evaluate_perplexity(lm, texts, max_tokens=args.perplexity_tokens))
    print(f"perplexity: {counts['num_tokens']} tokens in {seconds:.2f}s = {counts['num_tokens'] / seconds:,.0f} tokens/s")

    problems = [row["question"] for row in load_dataset_by_name("embedded-gsm8k", "test", limit=args.n_problems)]
    prompts = [format_prompt(question) for question in problems]
    options = dict(max_new_tokens=args.max_new_tokens, stop_sequences=(), do_sample=True, temperature=1.0)
    torch.manual_seed(0)
    lm.generate_until(prompts[:1], num_return_sequences=2, **options)  # warm-up
    batched, batched_s = timed(lambda: lm.generate_until(prompts, num_return_sequences=args.n_samples, **options))
    one_by_one, single_s = timed(lambda: [lm.generate_until([p], num_return_sequences=1, **options)[0][0]
                                          for p in prompts for _ in range(args.n_samples)])
    assert sum(len(c) for c in batched) == len(one_by_one) == len(prompts) * args.n_samples
    print(f"gsm8k best-of-{args.n_samples}: batched {len(prompts) / batched_s:.3f} problems/s, one generate per sample "
          f"{len(prompts) / single_s:.3f} problems/s -> {single_s / batched_s:.1f}x faster (target >= 4x)")


if __name__ == "__main__":
    (arguments,) = HfArgumentParser(BenchArguments).parse_args_into_dataclasses()
    main(arguments)
