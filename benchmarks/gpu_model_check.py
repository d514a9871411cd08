"""python benchmarks/gpu_model_check.py [--reduced] [--out results.json]

The GPU checks of the model in one script (under 8 minutes on one H100/H200; `--reduced`, the default without CUDA,
runs the same code at toy sizes on a CPU in about a minute):
  1. sinks under every attention kernel this machine has, against eager attention with the same weights, in float32
     and bfloat16: logits, loss, and the sinks' gradients (plus a q_proj gradient). Kernels that cannot run here
     (package or Hub download missing, no GPU, fp32 on a flash kernel) are listed as skipped, with the reason;
     inference-only kernels are also checked to be refused in training;
  2. the MoE experts kernels (grouped_mm, batched_mm) against the dense eager reference, outputs and gradients;
  3. throughput against transformers' LlamaForCausalLM of the same sizes, bf16 on CUDA with SDPA: a training step
     (forward + backward + AdamW) and cached greedy generation, as ratios, plus MFU against the bf16 matmul peak
     measured in the same run.
It prints tables, writes everything to --out, and exits 1 if a comparison that ran failed its tolerance.
"""

import argparse
import json
import statistics
import sys
import time
import traceback

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from bench_model import active_parameters  # the parameters each token goes through (k of E experts)
from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM, attention_capabilities

# Kernels with a sink input that a GPU may have (the capability table in the model says which train the sinks).
SINK_KERNELS = (
    "sdpa",
    "flex_attention",
    "flash_attention_4",
    "kernels-community/flash-attn4",
    "kernels-community/vllm-flash-attn3",
)
TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 5e-2}  # max |difference| / max |eager value|


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reduced", action="store_true", help="toy sizes (the default without CUDA)")
    parser.add_argument("--out", default="gpu_model_check.json")
    args = parser.parse_args()
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.reduced = args.reduced or args.device == "cpu"
    return args


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def check_config(attn_implementation, **overrides):
    """Head dim 64 (FA4 takes 64/96/128), grouped-query heads, sinks and QK-norm on."""
    settings = dict(
        vocab_size=512,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        tie_word_embeddings=False,
        attn_implementation=attn_implementation,
    )
    return ModernLLMConfig(**{**settings, **overrides})


def relative_difference(got, expected):
    return ((got.float() - expected.float()).abs().max() / expected.float().abs().max().clamp(min=1e-12)).item()


def run_model(model, input_ids, attention_mask, train):
    """Logits, loss and {name: gradient} of the sinks and one q_proj, with or without a backward pass."""
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    model.zero_grad(set_to_none=True)
    model.train(train)
    with torch.set_grad_enabled(train):
        output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        grads = {}
        if train:
            output.loss.backward()
            grads = {
                name: p.grad.detach().clone()
                for name, p in model.named_parameters()
                if name.endswith("self_attn.sinks") or name.endswith("layers.0.self_attn.q_proj.weight")
            }
    return output.logits.detach(), output.loss.detach(), grads


def check_sink_kernels(args):
    """Each kernel against eager, same weights and inputs (left padding on one row), per dtype."""
    rows = []
    device = args.device
    torch.manual_seed(0)
    reference = ModernLLMForCausalLM(check_config("eager"))
    with torch.no_grad():
        for layer in reference.model.layers:
            layer.self_attn.sinks.normal_(0.0, 1.0)  # away from their zero init, so that they matter
    length = 64 if args.reduced else 256
    input_ids = torch.randint(3, 512, (2, length), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, :9], attention_mask[1, :9] = 0, 0
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    for dtype in (torch.float32, torch.bfloat16):
        eager = ModernLLMForCausalLM(check_config("eager")).to(device, dtype)
        eager.load_state_dict(reference.state_dict())
        expected = {train: run_model(eager, input_ids, attention_mask, train) for train in (False, True)}
        for name in SINK_KERNELS:
            row = {"kernel": name, "dtype": str(dtype).removeprefix("torch."), **attention_capabilities(name)}
            rows.append(row)
            if device == "cpu" and name == "flex_attention":
                row["status"], row["skipped"] = "skipped", "transformers refuses flex attention with sinks on a CPU"
                continue
            if device == "cpu" and name != "sdpa":
                row["status"], row["skipped"] = "skipped", "a CUDA kernel"
                continue
            if name.startswith(("flash", "kernels")) and dtype == torch.float32:
                row["status"], row["skipped"] = "skipped", "flash kernels run in fp16/bf16 only"
                continue
            try:
                model = ModernLLMForCausalLM(check_config(name)).to(device, dtype)
            except Exception as error:  # package missing, no Hub access, unsupported GPU...
                row["status"] = "skipped"
                row["skipped"] = f"cannot load it here ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
                continue
            model.load_state_dict(reference.state_dict())
            try:
                logits, loss, _ = run_model(model, input_ids, attention_mask, train=False)
                real = attention_mask.bool()
                row["logits_rel_diff"] = relative_difference(logits[real], expected[False][0][real])
                row["loss_rel_diff"] = relative_difference(loss, expected[False][1])
                if row["sinks_backward"]:
                    _, _, grads = run_model(model, input_ids, attention_mask, train=True)
                    row["sink_grad_rel_diff"] = max(
                        relative_difference(grads[k], expected[True][2][k]) for k in grads if k.endswith("sinks")
                    )
                    row["q_proj_grad_rel_diff"] = relative_difference(
                        grads["model.layers.0.self_attn.q_proj.weight"],
                        expected[True][2]["model.layers.0.self_attn.q_proj.weight"],
                    )
                else:
                    try:
                        run_model(model, input_ids, attention_mask, train=True)
                        row["refused_in_training"] = False
                    except ValueError as error:
                        row["refused_in_training"] = "never train" in str(error)
                worst = max(v for k, v in row.items() if k.endswith("rel_diff"))
                ok = worst <= TOLERANCE[dtype] and row.get("refused_in_training", True)
                row["status"] = "ok" if ok else "FAILED"
            except Exception as error:
                row["status"] = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
                traceback.print_exc()
    return rows


def check_experts_kernels(args):
    """grouped_mm and batched_mm against the dense "eager" experts, per dtype: outputs and every gradient."""
    rows = []
    device = args.device
    torch.manual_seed(0)
    base = ModernLLMForCausalLM(check_config("sdpa", num_experts=8, num_experts_per_tok=2, attention_sinks=False))
    input_ids = torch.randint(3, 512, (2, 64), generator=torch.Generator().manual_seed(2)).to(device)
    for dtype in (torch.float32, torch.bfloat16):
        results = {}
        for kernel in ("eager", "grouped_mm", "batched_mm"):
            model = ModernLLMForCausalLM(base.config).to(device, dtype)
            model.load_state_dict(base.state_dict())
            model.set_experts_implementation(kernel)
            model.train()
            try:
                output = model(input_ids=input_ids, labels=input_ids)
                output.loss.backward()
                grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if "mlp." in n}
                results[kernel] = (output.logits.detach(), grads)
            except Exception as error:
                results[kernel] = error
        for kernel in ("grouped_mm", "batched_mm"):
            row = {"kernel": kernel, "dtype": str(dtype).removeprefix("torch.")}
            rows.append(row)
            if isinstance(results[kernel], Exception) or isinstance(results["eager"], Exception):
                error = results[kernel] if isinstance(results[kernel], Exception) else results["eager"]
                row["status"] = f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
                continue
            (logits, grads), (eager_logits, eager_grads) = results[kernel], results["eager"]
            row["logits_rel_diff"] = relative_difference(logits, eager_logits)
            row["grad_rel_diff"] = max(relative_difference(grads[k], eager_grads[k]) for k in grads)
            row["status"] = "ok" if max(row["logits_rel_diff"], row["grad_rel_diff"]) <= TOLERANCE[dtype] else "FAILED"
    return rows


def throughput_models(args):
    if args.reduced:
        sizes = dict(
            vocab_size=1024,
            hidden_size=128,
            intermediate_size=384,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    else:  # the gpu-full recipe's model
        sizes = dict(
            vocab_size=32768,
            hidden_size=768,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=12,
            num_key_value_heads=4,
        )
    sizes.update(max_position_embeddings=2048, tie_word_embeddings=True, attn_implementation="sdpa")
    plain = dict(attention_sinks=False, qk_norm=False)
    return {
        "llama": LlamaForCausalLM(LlamaConfig(**sizes)),
        "modern (plain)": ModernLLMForCausalLM(ModernLLMConfig(**sizes, **plain)),
        "modern (sinks)": ModernLLMForCausalLM(ModernLLMConfig(**sizes, qk_norm=False)),
        "modern (sinks+qk_norm)": ModernLLMForCausalLM(ModernLLMConfig(**sizes)),
        "modern (moe 8x top-2)": ModernLLMForCausalLM(
            ModernLLMConfig(
                **{**sizes, "intermediate_size": sizes["intermediate_size"] // 2},
                **plain,
                num_experts=8,
                num_experts_per_tok=2,
            )
        ),
    }


def matmul_peak_flops(device, dtype, size):
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize(device)
    return 2 * size**3 * 10 / (time.perf_counter() - start)


def check_throughput(args):
    device = args.device
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    batch, seq_len, steps, new_tokens, repeats = (2, 64, 2, 16, 1) if args.reduced else (16, 1024, 10, 128, 3)
    torch.manual_seed(0)
    models = {name: model.to(device, dtype) for name, model in throughput_models(args).items()}
    vocab = models["llama"].config.vocab_size
    tokens = torch.randint(0, vocab, (batch, seq_len), device=device)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}

    def step(name):
        synchronize(device)
        start = time.perf_counter()
        models[name](input_ids=tokens, labels=tokens).loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        synchronize(device)
        return time.perf_counter() - start

    for model in models.values():
        model.train()
    for name in models:
        step(name)  # warm-up
    step_times = {name: [] for name in models}
    for _ in range(steps):  # interleaved, so drifts hit every model alike
        for name in models:
            step_times[name].append(step(name))
    peak = matmul_peak_flops(device, dtype, 1024 if args.reduced else 8192)

    prompt = torch.randint(0, vocab, (1, 32), device=device)

    @torch.no_grad()
    def generate(name, count):
        synchronize(device)
        start = time.perf_counter()
        models[name].generate(
            prompt,
            max_new_tokens=count,
            min_new_tokens=count,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
            eos_token_id=None,
        )
        synchronize(device)
        return time.perf_counter() - start

    for model in models.values():
        model.eval()
    for name in models:
        generate(name, 4)
    generation_times = {name: [] for name in models}
    for _ in range(repeats):
        for name in models:
            generation_times[name].append(generate(name, new_tokens))

    rows = []
    llama_step = statistics.median(step_times["llama"])
    llama_generation = statistics.median(generation_times["llama"])
    for name, model in models.items():
        seconds = statistics.median(step_times[name])
        params, flops = model.num_parameters(), 6 * active_parameters(model) * batch * seq_len
        rows.append(
            {
                "model": name,
                "params_M": params / 1e6,
                "step_s": seconds,
                "step_vs_llama": seconds / llama_step,
                "tokens_per_s": batch * seq_len / seconds,
                "mfu": flops / seconds / peak,
                "generate_s": statistics.median(generation_times[name]),
                "generate_vs_llama": statistics.median(generation_times[name]) / llama_generation,
            }
        )
    setting = dict(
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        batch=batch,
        seq_len=seq_len,
        new_tokens=new_tokens,
        matmul_peak_tflops=peak / 1e12,
    )
    return setting, rows


def print_table(title, rows, columns):
    print(f"\n{title}")
    print("  ".join(f"{c:>14s}" if i else f"{c:34s}" for i, c in enumerate(columns)))
    for row in rows:
        cells = []
        for i, column in enumerate(columns):
            value = row.get(column, "")
            text = f"{value:.3g}" if isinstance(value, float) else str(value)
            cells.append(f"{text:>14s}" if i else f"{text[:34]:34s}")
        print("  ".join(cells))


def main():
    args = parse_args()
    start = time.perf_counter()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"device: {device_name}, torch {torch.__version__}, reduced={args.reduced}")
    if args.device == "cpu":
        print("No CUDA here: GPU-only kernels are skipped (listed below), sizes are toys, timings are not meaningful.")
    results = {"device": device_name, "torch": torch.__version__, "reduced": args.reduced}

    results["sink_kernels"] = check_sink_kernels(args)
    print_table(
        "Sinks: kernel vs eager (relative max difference)",
        results["sink_kernels"],
        [
            "kernel",
            "dtype",
            "logits_rel_diff",
            "loss_rel_diff",
            "sink_grad_rel_diff",
            "q_proj_grad_rel_diff",
            "refused_in_training",
            "status",
        ],
    )
    for row in results["sink_kernels"]:
        if "skipped" in row:
            print(f"  skipped {row['kernel']} ({row['dtype']}): {row['skipped']}")

    results["experts_kernels"] = check_experts_kernels(args)
    print_table(
        "MoE experts kernels vs the dense eager reference",
        results["experts_kernels"],
        ["kernel", "dtype", "logits_rel_diff", "grad_rel_diff", "status"],
    )

    setting, rows = check_throughput(args)
    results["throughput"] = {"setting": setting, "rows": rows}
    print_table(
        f"Throughput ({setting})",
        rows,
        ["model", "params_M", "step_s", "step_vs_llama", "tokens_per_s", "mfu", "generate_s", "generate_vs_llama"],
    )
    print("Targets: training step and generation with sinks+qk_norm <= 1.10x llama.")

    results["seconds"] = time.perf_counter() - start
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)
    failed = [
        row for key in ("sink_kernels", "experts_kernels") for row in results[key] if row["status"].startswith("FAILED")
    ]
    print(f"\n{len(failed)} failed comparison(s); {results['seconds']:.0f} s; results in {args.out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
