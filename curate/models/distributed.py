"""Data-parallel training on one machine: N processes, one model replica each, gradients averaged.

``--nproc N`` on ``curate retrain`` and ``curate teacher train`` runs the training loop in N processes
(gloo on CPU, NCCL with one GPU per process), launched here rather than by ``torchrun`` so that only
the parent process talks to FiftyOne and SQL: the ranks get plain rows (path, label, split) and write
checkpoints (rank 0 only), and the parent registers what they wrote. That keeps the ledger's single
writer and makes a killed run resumable exactly as a one-process run is (``state.pt`` is the same file).

Why the epoch stays class-balanced across ranks: every rank draws the same balanced epoch
(imbalanced-learn, seeded by seed and epoch), permutes it with the same generator and takes every
N-th index from its rank on, so the ranks' shards are disjoint and together are the epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from curate.exceptions import CurateError
from curate.ports import free_port

__all__ = ["Group", "SINGLE", "shard", "launch"]


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


SINGLE = Group()


def shard(drawn: np.ndarray, group: Group, seed: int) -> np.ndarray:
    """This rank's disjoint share of an epoch's drawn indices (the same permutation on every rank).

    Trimmed to a multiple of the world size, so every rank runs the same number of steps (a rank with
    one step more would wait forever for the others' gradients)."""
    if not group.distributed:
        return drawn
    order = np.random.default_rng(seed).permutation(len(drawn))
    usable = len(drawn) - len(drawn) % group.world
    return drawn[order[:usable]][group.rank::group.world]


def _entry(rank: int, world: int, port: int, device_type: str, fn: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(rank)
    else:  # the ranks share the cores: without this each would start one thread per core and thrash
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        fn(*args, group=Group(rank, world))
    finally:
        dist.destroy_process_group()


def launch(world: int, device_type: str, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args, group=Group(rank, world))`` in ``world`` fresh processes and wait for all of them.

    A rank that fails makes the launch raise a one-line CurateError naming the rank and its error;
    ``fn`` and ``args`` must be picklable (spawned processes, never forked: a forked copy of a process
    that already ran OpenMP or CUDA can hang)."""
    import torch.multiprocessing as mp

    if device_type == "cuda":
        import torch

        if torch.cuda.device_count() < world:
            raise CurateError(f"--nproc {world} needs {world} GPUs; {torch.cuda.device_count()} visible")
    try:
        mp.spawn(_entry, args=(world, free_port(), device_type, fn, args), nprocs=world, join=True)
    except mp.ProcessRaisedException as exc:  # the rank's own traceback is in the message: keep its last line
        raise CurateError(f"training process {exc.error_index} of {world} failed: {str(exc).strip().splitlines()[-1][:300]}") from None
    except mp.ProcessExitedException as exc:
        raise CurateError(f"training process {exc.error_index} of {world} exited with code {exc.exit_code}") from None
