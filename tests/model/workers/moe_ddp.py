"""Worker of tests/model/test_moe_ddp.py, one per rank:

    torchrun --standalone --nproc_per_node 2 tests/model/workers/moe_ddp.py SUMMARY.json

Trains a 16-expert top-2 ModernLLM for a few steps under DDP over gloo with `find_unused_parameters=False` and
gradient checkpointing (Trainer's settings when checkpointing is on), 2 tokens per rank so most experts see no token,
and writes what rank 0 saw. A parameter without a gradient makes DDP raise at the next step.
"""

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM


def main(summary_path: str, steps: int = 4):
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # same initial weights on every rank (DDP broadcasts rank 0's anyway)
    config = ModernLLMConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        num_experts=16,
        num_experts_per_tok=2,
    )
    model = ModernLLMForCausalLM(config).train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ddp_model = DistributedDataParallel(model, find_unused_parameters=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own tokens
    losses, idle_experts, missing_grads = [], [], 0
    for _ in range(steps):
        input_ids = torch.randint(3, 128, (1, 2), generator=generator)
        loss = ddp_model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        missing_grads += sum(p.grad is None for p in model.parameters())
        # Experts no token of any rank chose in layer 0: their (all-reduced) gradient is exactly zero.
        gate_up_grad = model.model.layers[0].mlp.experts.gate_up_proj.grad
        idle_experts.append(int((gate_up_grad.flatten(1).abs().sum(1) == 0).sum()))
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        with open(summary_path, "w") as handle:
            json.dump(
                {
                    "world_size": world_size,
                    "steps": steps,
                    "losses": losses,
                    "idle_experts": idle_experts,
                    "missing_grads": missing_grads,
                    "max_rank_difference": max((g - flat).abs().max().item() for g in gathered),
                },
                handle,
            )
    # DDP's reducer goes before its process group: torn down after destroy_process_group, it hung about one exit in two.
    del ddp_model
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
