"""python benchmarks/bench_model.py [--quick]

Speed of ModernLLM against transformers' `LlamaForCausalLM` of the same sizes, measured in the same run on the same
threads (2 by default), printed as ratios, for the plain model (sinks, QK-norm and experts off), sinks, sinks +
QK-norm and a 4-expert top-2 MoE:
  - one training step (forward + backward + AdamW); target with sinks + QK-norm <= 1.10x Llama;
  - greedy generation of 128 new tokens with the KV cache, batch 1; target with sinks + QK-norm <= 1.10x Llama;
  - per-token time with the cache stays flat: over 512 new tokens, the median of the last 32 steps <= 1.10x the
    median of the first 32 (the median of three generations);
  - training MFU = 6 * active params * tokens/s over the fp32 peak of a 2048x2048 matmul measured in the same run.
Timings are medians of interleaved repetitions (a load spike hits every model alike); run it alone on the machine
(e.g. `flock /tmp/cpu.lock python benchmarks/bench_model.py`), and rerun before trusting a borderline ratio.
`--quick` shrinks everything for a smoke check (its numbers are not meaningful).
"""

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM


def active_parameters(model) -> int:
    """The parameters each token goes through: with experts, only k of the E experts' weights (what MFU counts)."""
    config, total = model.config, model.num_parameters()
    if not getattr(config, "num_experts", 0):
        return total
    experts = sum(p.numel() for name, p in model.named_parameters() if ".mlp.experts." in name)
    return total - experts + experts * config.num_experts_per_tok // config.num_experts


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions, for a smoke check")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden_size", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=6)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_size", type=int, default=768)
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--train_steps", type=int, default=10, help="timed steps per model (after one warm-up)")
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--long_new_tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="generation repetitions per model")
    args = parser.parse_args()
    if args.quick:
        args.hidden_size, args.num_layers, args.intermediate_size, args.vocab_size = 64, 2, 192, 512
        args.batch_size, args.seq_len, args.train_steps, args.new_tokens, args.long_new_tokens = 2, 64, 2, 16, 64
        args.repeats = 1
    return args


def build_models(args):
    sizes = dict(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        num_key_value_heads=args.num_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    plain = dict(attention_sinks=False, qk_norm=False)
    models = {
        "llama": LlamaForCausalLM(LlamaConfig(**sizes)),
        "modern (plain)": ModernLLMForCausalLM(ModernLLMConfig(**sizes, **plain)),
        "modern (sinks)": ModernLLMForCausalLM(ModernLLMConfig(**sizes, attention_sinks=True, qk_norm=False)),
        "modern (sinks+qk_norm)": ModernLLMForCausalLM(ModernLLMConfig(**sizes)),
        "modern (moe 4x top-2)": ModernLLMForCausalLM(
            ModernLLMConfig(
                **{**sizes, "intermediate_size": args.intermediate_size // 2},
                **plain,
                num_experts=4,
                num_experts_per_tok=2,
            )
        ),
    }
    return models


def time_training_steps(models, args):
    """Median seconds per step, repetitions interleaved across models so load spikes hit all of them alike."""
    batch = torch.randint(0, args.vocab_size, (args.batch_size, args.seq_len))
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}

    def step(name):
        model = models[name]
        start = time.perf_counter()
        model(input_ids=batch, labels=batch).loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for model in models.values():
        model.train()
    for name in models:  # warm-up (allocations, kernel selection)
        step(name)
    times = {name: [] for name in models}
    for _ in range(args.train_steps):
        for name in models:
            times[name].append(step(name))
    return {name: statistics.median(values) for name, values in times.items()}


class StepClock(LogitsProcessor):
    """Records the time of every decoding step (called once per new token)."""

    def __init__(self):
        self.stamps = []

    def __call__(self, input_ids, scores):
        self.stamps.append(time.perf_counter())
        return scores


@torch.no_grad()
def generate_timed(model, prompt, new_tokens):
    clock = StepClock()
    start = time.perf_counter()
    model.generate(
        prompt,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=True,
        logits_processor=LogitsProcessorList([clock]),
        pad_token_id=0,
        eos_token_id=None,
    )
    return time.perf_counter() - start, [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]


def time_generation(models, names, args):
    prompt = torch.randint(0, args.vocab_size, (1, 32))
    times = {name: [] for name in names}
    for name in names:
        models[name].eval()
        generate_timed(models[name], prompt, 4)  # warm-up
    for _ in range(args.repeats):
        for name in names:
            times[name].append(generate_timed(models[name], prompt, args.new_tokens)[0])
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_peak_flops(size=2048, repeats=10):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = build_models(args)
    tokens_per_step = args.batch_size * args.seq_len
    print(
        f"threads={args.threads} hidden={args.hidden_size} layers={args.num_layers} heads={args.num_heads} "
        f"vocab={args.vocab_size} batch={args.batch_size}x{args.seq_len} quick={args.quick}"
    )

    peak = matmul_peak_flops()
    step_seconds = time_training_steps(models, args)
    llama_step = step_seconds["llama"]
    print(f"\nTraining step (fwd+bwd+AdamW), fp32 matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'model':26s} {'params':>8s} {'s/step':>7s} {'tok/s':>7s} {'vs llama':>8s} {'MFU':>6s}")
    for name, seconds in step_seconds.items():
        params = models[name].num_parameters()  # tied embeddings counted once: the lm_head matmul
        mfu = 6 * active_parameters(models[name]) * tokens_per_step / seconds / peak
        print(
            f"{name:26s} {params / 1e6:7.2f}M {seconds:7.3f} {tokens_per_step / seconds:7.0f} "
            f"{seconds / llama_step:7.2f}x {mfu:6.1%}"
        )

    generation_names = list(models)
    generation_seconds = time_generation(models, generation_names, args)
    print(f"\nGreedy generation of {args.new_tokens} new tokens with the cache (batch 1, prompt 32)")
    for name in generation_names:
        seconds = generation_seconds[name]
        print(
            f"{name:26s} {seconds:7.3f} s {args.new_tokens / seconds:7.1f} tok/s "
            f"{seconds / generation_seconds['llama']:6.2f}x llama"
        )

    window = 32
    print(
        f"\nPer-token time with the cache over {args.long_new_tokens} new tokens (median of the last {window} steps "
        f"/ median of the first {window}; median of 3 generations)"
    )
    prompt = torch.randint(0, args.vocab_size, (1, 32))
    for name in ("llama", "modern (sinks+qk_norm)"):
        firsts, lasts, ratios = [], [], []
        for _ in range(3):
            _, intervals = generate_timed(models[name], prompt, args.long_new_tokens)
            first, last = statistics.median(intervals[:window]), statistics.median(intervals[-window:])
            firsts.append(first)
            lasts.append(last)
            ratios.append(last / first)
        print(
            f"{name:26s} first {statistics.median(firsts) * 1e3:6.2f} ms  last {statistics.median(lasts) * 1e3:6.2f} ms"
            f"  ratio {statistics.median(ratios):5.2f}"
        )

    print("\nTargets: sinks+qk_norm training step <= 1.10x llama, generation <= 1.10x llama, per-token ratio <= 1.10.")


if __name__ == "__main__":
    main()
