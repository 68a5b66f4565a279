"""Multi-process training with torch.distributed: set-up from torchrun's environment, sharding of
each epoch's sample order, and metric reduction across processes.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them training
runs in one process. The process group uses gloo on CPU and nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module initialised the process group (and destroys it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: torch.device) -> Context:
    """Join the process group when launched by torchrun (or use one already initialised);
    returns this process's rank context."""
    owns_group = False
    if not (dist.is_available() and dist.is_initialized()):
        if not launched_by_torchrun():
            return Context()
        if not dist.is_available():
            raise RuntimeError("torch.distributed is not available in this torch build")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns_group = True
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), owns_group)


def teardown(ctx: Context) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def device_for(requested: str, ctx: Context) -> torch.device:
    """The device of this process: "auto" is cuda:<local rank> when CUDA exists, else cpu."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool, ctx: Context, equal_shares: bool) -> list[int]:
    """This process's sample indices for one epoch.

    The permutation depends only on (seed, epoch), so a resumed run repeats the uninterrupted
    run's order. Under DDP each rank takes a strided share. ``equal_shares`` (training, where
    every step is a collective) cuts the order to a multiple of the world size so all ranks run
    the same number of steps; without it (evaluation) every sample is used exactly once.
    """
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(num_samples, generator=generator).tolist()
    else:
        order = list(range(num_samples))
    if not ctx.distributed:
        return order
    if equal_shares:
        order = order[: num_samples - num_samples % ctx.world_size]
    return order[ctx.rank :: ctx.world_size]


def all_reduce_sums(values: Sequence[float], ctx: Context, device: torch.device) -> list[float]:
    """Sum a few float counters over all processes (identity in one process)."""
    if not ctx.distributed:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (one one-element all-reduce; identity in one process)."""
    if not ctx.distributed:
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def replica_checksums(model: torch.nn.Module, ctx: Context, device: torch.device) -> list[list[float]]:
    """Per-parameter sums (float64) of every process's replica; DDP keeps them bit-identical."""
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).to(device)
    if not ctx.distributed:
        return [sums.tolist()]
    gathered = [torch.empty_like(sums) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, sums)
    return [g.tolist() for g in gathered]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
