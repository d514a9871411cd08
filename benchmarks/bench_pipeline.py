"""Wall time, throughput, MFU and peak memory of a finished pipeline run, stage by stage, and the gpu-full estimate.

    python benchmarks/bench_pipeline.py --run_dir experiments/runs/demo
    python benchmarks/bench_pipeline.py --rehearse gpu-full      # time `pipeline.py --rehearse` of a scale here
    bash benchmarks/gpu_check.sh                                 # on one GPU: the gpu-smoke pipeline, then this table

1. Stage by stage: wall time (from pipeline_summary.json) and its share of the whole, tokens/s, the training
   MFU = 6 x parameters x tokens/s over the peak of the hardware the stage ran on (a GPU's dense bf16 peak from its
   datasheet; on a CPU the fp32 matmul peak measured here in the same run, a 2048 x 2048 matmul, the largest this
   CPU runs at full speed), and the peak GPU memory the stage allocated.
2. The gpu-full estimate: parameters from recipes/configs/gpu-full/pretrain.yaml's model (built on the meta
   device), tokens per stage from the gpu-full YAMLs, FLOPs = (6 N + 6 L d T) per trained token (the second
   term is causal attention), 8 N for DPO (policy forward+backward plus the reference forward), and an
   H100 MFU that is an ASSUMPTION (no GPU here): 30 % nominal, 15 % pessimistic, of 989 TFLOP/s dense bf16.
   Generation (the verifier's samples, GRPO's completions) is memory-bound decoding: an ASSUMED 20 ms per decode
   step of a 256-sequence batch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import yaml

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM
from modeling_modern_llm.stages import STAGE_NAMES, stage_final

H100_BF16_PEAK = 989e12  # dense, SXM, per NVIDIA's datasheet
GPU_BF16_PEAKS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}  # dense, datasheets
ASSUMED_MFU = {"nominal": 0.30, "pessimistic": 0.15}


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """The best fp32 FLOP/s of a size x size matmul on this machine."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def hardware_peak(hardware: str, cpu_peak: float) -> float | None:
    """The dense bf16 peak of the GPU a stage ran on (by name), or the measured CPU matmul peak."""
    if hardware.startswith("cpu"):
        return cpu_peak
    return next((peak for name, peak in GPU_BF16_PEAKS.items() if name in hardware), None)


def run_report(run_dir: str) -> None:
    with open(os.path.join(run_dir, "pipeline_summary.json")) as handle:
        steps = json.load(handle)["steps"]
    cpu_peak = matmul_peak()
    total = sum(step.get("wall_time_s", 0) for step in steps.values())
    print(f"fp32 matmul peak on this CPU ({torch.get_num_threads()} threads): {cpu_peak / 1e9:.0f} GFLOP/s")
    print(f"{'step':<11}{'wall s':>8}{'share':>8}{'tokens/s':>10}{'params':>11}{'MFU':>8}{'peak GiB':>10}  hardware")
    for name, step in steps.items():
        wall = step.get("wall_time_s", 0)
        speed = params = mfu = memory = hardware = ""
        summary_path = os.path.join(stage_final(run_dir, name), "training_summary.json")
        if name in STAGE_NAMES and os.path.isfile(summary_path):
            with open(summary_path) as handle:
                summary = json.load(handle)
            tokens_per_s, n, hardware = summary["tokens_per_s"] or 0.0, summary["num_parameters"], summary["hardware"]
            peak = hardware_peak(hardware, cpu_peak)
            speed, params = f"{tokens_per_s:.0f}", f"{n / 1e6:.2f}M"
            mfu = f"{6 * n * tokens_per_s / peak:.1%}" if peak else "n/a"
            memory = f"{summary['peak_memory_gib']:.1f}" if summary.get("peak_memory_gib") is not None else "-"
        print(
            f"{name:<11}{wall:>8.0f}{wall / max(total, 1e-9):>8.0%}{speed:>10}{params:>11}{mfu:>8}{memory:>10}  "
            f"{hardware} {step['status']}"
        )
    print(f"{'total':<11}{total:>8.0f}  ({total / 60:.1f} min)")


def rehearse(scale: str, runs_dir: str) -> str:
    """Run `pipeline.py --rehearse` of a scale into ``runs_dir``; returns the rehearsal's run folder."""
    config = f"recipes/configs/{scale}/pipeline.yaml"
    subprocess.run(
        [sys.executable, "recipes/pipeline.py", "--config", config, "--rehearse", "--runs_dir", runs_dir], check=True
    )
    with open(config) as handle:
        run_name = yaml.safe_load(handle)["run_name"]
    return os.path.join(runs_dir, f"{run_name}-rehearsal")


def _load(path: str) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def gpu_full_estimate(config_dir: str = "recipes/configs/gpu-full") -> None:
    pretrain = _load(f"{config_dir}/pretrain.yaml")
    fields = {**pretrain["model_config"], "vocab_size": pretrain["tokenizer_vocab_size"]}
    with torch.device("meta"):
        model = ModernLLMForCausalLM(ModernLLMConfig(**fields))
    n = sum(p.numel() for p in model.parameters())
    layers, hidden = fields["num_hidden_layers"], fields["hidden_size"]

    def flops_per_token(context: int, model_passes: float = 6) -> float:
        return model_passes * n + 6 * layers * hidden * context

    sft, dpo, verifier, grpo = (_load(f"{config_dir}/{s}.yaml") for s in ("sft", "dpo", "verifier", "grpo"))
    grpo_completions = (
        grpo["max_steps"] * grpo["per_device_train_batch_size"] * grpo.get("gradient_accumulation_steps", 1)
    )
    # Tokens per step: packed pretraining rows are full; the other stages' lengths are typical ones (assumed):
    # Alpaca ~200 tokens per example, HH-RLHF ~300 per response (x2 per pair), verifier inputs ~200 (x2 per pair).
    rows = [
        (
            "pretrain",
            pretrain["max_steps"] * pretrain["per_device_train_batch_size"] * pretrain["max_length"],
            flops_per_token(pretrain["max_length"] / 2),
        ),
        ("sft", sft["max_steps"] * sft["per_device_train_batch_size"] * 200, flops_per_token(200 / 2)),
        ("dpo", dpo["max_steps"] * dpo["per_device_train_batch_size"] * 2 * 300, flops_per_token(300 / 2, 8)),
        # the token-level objective trains each sample once (question + solution ~250 tokens); pairwise, two per pair
        (
            "verifier",
            verifier["max_steps"]
            * verifier["per_device_train_batch_size"]
            * (250 if verifier.get("objective") == "token_level" else 2 * 200),
            flops_per_token(250 / 2),
        ),
        # GRPO trains every completion with its prompt: a 2-shot prompt ~430 tokens + a completion ~150 (assumed)
        ("grpo", grpo_completions * (430 + 150), flops_per_token((430 + 150) / 2)),
    ]
    print(
        f"\ngpu-full model: {n / 1e6:.1f}M parameters ({layers} layers, hidden {hidden}); "
        f"H100 bf16 peak {H100_BF16_PEAK / 1e12:.0f} TFLOP/s; MFU assumed (no GPU here): {ASSUMED_MFU}"
    )
    print(f"{'stage':<10}{'tokens':>10}{'FLOPs':>11}" + "".join(f"{k + ' h':>15}" for k in ASSUMED_MFU))
    totals = dict.fromkeys(ASSUMED_MFU, 0.0)
    for stage, tokens, per_token in rows:
        flops = tokens * per_token
        hours = {k: flops / (H100_BF16_PEAK * mfu) / 3600 for k, mfu in ASSUMED_MFU.items()}
        totals = {k: totals[k] + hours[k] for k in totals}
        print(f"{stage:<10}{tokens / 1e9:>9.2f}B{flops:>11.2e}" + "".join(f"{h:>15.2f}" for h in hours.values()))
    # Sampling the verifier's solutions for each of GSM8K's 7,473 training problems is memory-bound decoding:
    # assumed 20 ms per decode step of a 256-sequence batch (a 100M model is kernel-launch bound), proportionally
    # more for a larger batch (generation_batch_size problems x samples_per_problem sequences).
    sequences = verifier["generation_batch_size"] * verifier["samples_per_problem"]
    decode_steps = -(-7473 // verifier["generation_batch_size"]) * verifier["max_new_tokens"]
    sampling_h = decode_steps * 0.020 * max(1.0, sequences / 256) / 3600
    print(f"{'sampling':<10}{'':>21}" + "".join(f"{sampling_h:>15.2f}" for _ in ASSUMED_MFU))
    # GRPO generates every step's completions in one generate call (steps_per_generation = accumulation steps):
    # max_completion_length decode steps per optimizer step (a batch runs until its longest completion), at the same
    # assumed 20 ms per decode step for a batch of 256 sequences.
    grpo_h = grpo["max_steps"] * grpo["max_completion_length"] * 0.020 / 3600
    print(f"{'grpo gen.':<10}{'':>21}" + "".join(f"{grpo_h:>15.2f}" for _ in ASSUMED_MFU))
    print(f"{'total':<10}{'':>21}" + "".join(f"{totals[k] + sampling_h + grpo_h:>15.2f}" for k in ASSUMED_MFU))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", default="experiments/runs/demo")
    parser.add_argument(
        "--rehearse",
        metavar="SCALE",
        help="first run `pipeline.py --rehearse` of this scale "
        "(e.g. gpu-full) in a temporary folder, then report it (target: at most 10 minutes)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the matmul peak (the run's own)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rehearse:
        with tempfile.TemporaryDirectory() as runs_dir:
            run_report(rehearse(args.rehearse, runs_dir))
        print("target: a rehearsal of gpu-full in at most 10 minutes on 2 CPU cores (aim: 5)")
        return
    if os.path.isfile(os.path.join(args.run_dir, "pipeline_summary.json")):
        run_report(args.run_dir)
    else:
        print(
            f"{args.run_dir}/pipeline_summary.json not found: run the cpu-demo pipeline first "
            "(python recipes/pipeline.py --config recipes/configs/cpu-demo/pipeline.yaml)."
        )
    gpu_full_estimate()


if __name__ == "__main__":
    main()
