"""FSDP2 over gloo on the CPU (run by tests/training/test_fsdp2.py under `torchrun --nproc_per_node 2`).

accelerate drops FSDP on a CPU, so Trainer cannot run it here; this script does what Trainer does under FSDP2 with
accelerate's own functions: train a few steps of a `fully_shard`-ed ModernLLM, write `checkpoint-3` with accelerate's
`save_fsdp_model`/`save_fsdp_optimizer` (SHARDED_STATE_DICT, Trainer's layout), gather the full state dict as
`save_final` does (`get_model_state_dict(full_state_dict=True)`, what `Accelerator.get_state_dict` calls under FSDP2)
into a `save_pretrained` folder, then resume a fresh sharded model and optimizer from the checkpoint with
`load_fsdp_model`/`load_fsdp_optimizer` and check that one more step matches the uninterrupted run.
"""

import json
import os
import sys

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import (
    load_fsdp_model,
    load_fsdp_optimizer,
    save_fsdp_model,
    save_fsdp_optimizer,
)
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
)
from torch.distributed.fsdp import fully_shard

from modeling_modern_llm import ModernLLMConfig, ModernLLMForCausalLM


def sharded_model_and_optimizer():
    torch.manual_seed(0)
    config = ModernLLMConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attention_sinks=True,
        qk_norm=True,
    )
    model = ModernLLMForCausalLM(config)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def step(model, optimizer, batch) -> float:
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def main(output_dir: str) -> None:
    dist.init_process_group("gloo")
    state = PartialState(cpu=True)  # what accelerate's FSDP helpers read of the accelerator: rank, size, barrier
    rank = dist.get_rank()
    batches = torch.randint(0, 96, (5, 2, 16), generator=torch.Generator().manual_seed(rank))
    model, optimizer = sharded_model_and_optimizer()
    for batch in batches[:3]:
        step(model, optimizer, batch)

    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, state_dict_type="SHARDED_STATE_DICT")
    checkpoint = os.path.join(output_dir, "checkpoint-3")
    save_fsdp_model(plugin, state, model, checkpoint)
    save_fsdp_optimizer(plugin, state, optimizer, model, checkpoint)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    probe = torch.arange(16).reshape(1, 16)
    logits = model(input_ids=probe).logits.detach()
    if rank == 0:
        torch.save({"last_epoch": 3}, os.path.join(checkpoint, "scheduler.pt"))
        with open(os.path.join(checkpoint, "trainer_state.json"), "w") as handle:
            json.dump({"global_step": 3}, handle)
        model.save_pretrained(os.path.join(output_dir, "final"), state_dict=full)
        torch.save(logits, os.path.join(output_dir, "final_logits.pt"))
    dist.barrier()

    uninterrupted = step(model, optimizer, batches[3])
    resumed_model, resumed_optimizer = sharded_model_and_optimizer()  # fresh weights, fresh optimizer
    load_fsdp_model(plugin, state, resumed_model, checkpoint)
    load_fsdp_optimizer(plugin, state, resumed_optimizer, resumed_model, checkpoint)
    resumed = step(resumed_model, resumed_optimizer, batches[3])
    if rank == 0:
        with open(os.path.join(output_dir, "resume.json"), "w") as handle:
            json.dump({"uninterrupted": uninterrupted, "resumed": resumed, "world_size": dist.get_world_size()}, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
