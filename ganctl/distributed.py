"""Training on several processes: ganctl under torchrun.

``torchrun --nproc-per-node N -m ganctl train ...`` starts N copies of ganctl and tells each its
place through the environment (RANK, LOCAL_RANK, WORLD_SIZE). This module is everything ganctl
does about it, so the trainer only asks questions of one ``Processes`` object:

- ``start`` reads that environment and creates the process group; ``stop`` destroys it. One
  group carries CPU tensors over gloo and CUDA tensors over NCCL, so small host-side agreements
  (an error, an interruption, the resolved options) never wait for the GPU;
- ``device_for``: each rank's device (``cuda:LOCAL_RANK``), ``rank_seed``: its own seed;
- ``is_writer``: rank 0 alone writes the run folder;
- the collectives of training: gradients averaged after each backward (``average_gradients``),
  statistics averaged at each log (``read_stats``), decisions taken together (``any_rank``,
  ``raise_together``), JSON and tensors shared from rank 0 (the options, a checkpoint),
  tensors gathered from every rank (``PerRankParts``: the random states a checkpoint keeps).

One process (no torchrun, or a world of one) has no process group and every helper is then the
identity: a single-process run computes exactly what it did before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ganctl.errors import GanctlError
from ganctl.torchrun_env import START_TIMEOUT_ENV, check_master_address, detect, start_timeout

BACKENDS = ("auto", "nccl", "gloo")
T = TypeVar("T")
Tensors = dict[str, torch.Tensor]


class PeerFailed(GanctlError):
    """Another process of the run failed and said why; this one leaves without a word."""

    quiet = True
    grace_seconds = 1.0  # how much later than the process that says why this one leaves


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    backend: str = "auto"  # as asked: auto | nccl | gloo
    restart: int = 0  # torchrun's restart count (TORCHELASTIC_RESTART_COUNT)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes the run folder: config, metrics, grids, generators, checkpoints, LATEST, the lock."""
        return self.rank == 0

    # --- devices and seeds --------------------------------------------------------------------
    def device_for(self, name: str) -> torch.device:
        """``--device`` for this rank: a CUDA device becomes the GPU of the rank's LOCAL_RANK."""
        from ganctl.device import resolve_device

        device = resolve_device(name)
        if not self.distributed:
            return device
        if device.type == "cuda":
            if device.index is not None:
                raise GanctlError(
                    f"under torchrun each process trains on the GPU of its LOCAL_RANK; use --device cuda (or auto), not {name}"
                )
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise GanctlError(
                    f"process {self.rank} has LOCAL_RANK {self.local_rank} but this machine has {count} CUDA GPU(s); "
                    f"start at most {count} processes per machine (--nproc-per-node)"
                )
            return torch.device("cuda", self.local_rank)
        if device.type != "cpu":
            raise GanctlError(f"training on several processes runs on CUDA GPUs or the CPU, not on {device.type}")
        if self.backend == "nccl":
            raise GanctlError(
                "--dist-backend nccl carries CUDA tensors only, and this run trains on the CPU; "
                "leave --dist-backend on auto (gloo on the CPU)"
            )
        return device

    def check_batch(self, batch_size: int, real_per_step: int, halves: bool) -> None:
        """The recipe's batch is the global batch: every rank must get an equal share of it."""
        if not self.distributed:
            return
        if batch_size % self.world:
            raise GanctlError(
                f"--batch-size {batch_size} cannot be shared equally by {self.world} processes; "
                f"use a multiple of {self.world} (or --batch-per-gpu)"
            )
        if halves and real_per_step % self.world:
            raise GanctlError(
                f"--batch-size {batch_size} is split into halves of {real_per_step} real and fake images, which "
                f"{self.world} processes cannot share equally; use a multiple of {2 * self.world}"
            )

    # --- collectives ------------------------------------------------------------------------------
    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """Every rank's gradients replaced by their mean over the ranks: one all-reduce per network."""
        if not self.distributed:
            return
        grads = [p.grad for p in params if p.grad is not None]  # the same on every rank: the same phases ran
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        with _collective("averaging gradients"):
            torch.distributed.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view(g.shape))
            offset += g.numel()

    def average_tensor(self, tensor: torch.Tensor) -> None:
        """``tensor`` replaced, in place, by its mean over the ranks (a controller's statistics)."""
        if not self.distributed:
            return
        with _collective("averaging a statistic"):
            torch.distributed.all_reduce(tensor)
        tensor.div_(self.world)

    def read_stats(self, stats: Any) -> dict[str, float]:
        """A ``StepStats``' means, averaged over the ranks (every rank ran the same steps)."""
        if not self.distributed or not stats.sums:
            return stats.read()
        names = list(stats.sums)
        sums = torch.stack([stats.sums[n] for n in names])
        with _collective("averaging statistics"):
            torch.distributed.all_reduce(sums)
        values = (sums / self.world).tolist()
        return {n: v / stats.counts[n] for n, v in zip(names, values)}

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (a decision every rank then takes alike)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        with _collective("agreeing"):
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def raise_together(self, error: GanctlError | None) -> None:
        """If any rank failed, every rank stops: the first failed rank with its sentence, the others quietly."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        failed = torch.zeros(self.world, dtype=torch.int32)
        failed[self.rank] = int(error is not None)
        with _collective("agreeing"):
            torch.distributed.all_reduce(failed)
        if failed.any():
            first = int(failed.nonzero()[0])
            if self.rank == first:
                raise error
            raise PeerFailed(f"process {first} of the run failed")

    def together(self, work: Callable[[], T], *, writer_only: bool = False) -> T | None:
        """Run ``work`` (on rank 0 alone with ``writer_only``) and stop every rank if it fails on any."""
        result, error = None, None
        if self.is_writer or not writer_only:
            try:
                result = work()
            except GanctlError as exc:
                error = exc
        self.raise_together(error)
        return result

    def share_json(self, value: Any) -> Any:
        """Rank 0's JSON-able ``value``, on every rank."""
        if not self.distributed:
            return value
        data = json.dumps(value).encode() if self.is_writer else b""
        size = torch.tensor([len(data)], dtype=torch.int64)
        with _collective("sharing the options"):
            torch.distributed.broadcast(size, 0)
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8) if self.is_writer else torch.empty(int(size), dtype=torch.uint8)
            torch.distributed.broadcast(buffer, 0)
        return value if self.is_writer else json.loads(bytes(buffer.numpy()))

    def share_tensors(self, tensors: Tensors | None) -> Tensors:
        """Rank 0's named CPU tensors, on every rank (a checkpoint rank 0 read)."""
        if not self.distributed:
            return tensors or {}
        layout = self.share_json(
            {k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in tensors.items()} if self.is_writer else None
        )
        shared = {}
        with _collective("sharing the checkpoint"):
            for name, (dtype, shape) in layout.items():
                tensor = tensors[name].contiguous() if self.is_writer else torch.empty(shape, dtype=getattr(torch, dtype))
                torch.distributed.broadcast(tensor, 0)
                shared[name] = tensor
        return shared

    def gather_tensors(self, tensors: Tensors) -> list[Tensors]:
        """Every rank's tensors of the same names and shapes, in rank order, on every rank."""
        if not self.distributed:
            return [tensors]
        gathered: list[Tensors] = [{} for _ in range(self.world)]
        with _collective("gathering the random states"):
            for name, tensor in tensors.items():
                tensor = tensor.detach().cpu().contiguous()
                parts = [torch.empty_like(tensor) for _ in range(self.world)]
                torch.distributed.all_gather(parts, tensor)
                for rank, part in enumerate(parts):
                    gathered[rank][name] = part
        return gathered

    @torch.no_grad()
    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (batch norm's running statistics) on every rank, so all ranks sample alike."""
        if not self.distributed:
            return
        with _collective("sharing batch-norm statistics"):
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, 0)

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's rows (equal counts), rank 0's first: features measured on every rank, whole on each."""
        if not self.distributed:
            return rows
        rows = rows.contiguous()
        parts = [torch.empty_like(rows) for _ in range(self.world)]
        with _collective("gathering features"):
            torch.distributed.all_gather(parts, rows)
        return torch.cat(parts)


class PerRankParts:
    """Checkpoint parts each rank has its own of: its random streams, its unfinished statistics.

    Rank 0 saves every rank's tensors (``rank<r>.<key>``) with the world size; each rank loads its
    own. One process saves them as it always has. A checkpoint of another world size cannot hand
    each rank its stream: the rank starts new ones (``fresh``), and ``saved_world`` says so.
    """

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.saved_world: int | None = None  # the world size of the checkpoint restored, once one is

    def wrap(
        self, save: Callable[[], tuple[Tensors, Any]], load: Callable[[Tensors, Any], None], fresh: Callable[[], None]
    ) -> tuple[Callable[[], tuple[Tensors, Any]], Callable[[Tensors, Any], None]]:
        p = self.processes

        def save_every_rank() -> tuple[Tensors, Any]:
            tensors, values = save()
            if not p.distributed:
                return tensors, values
            every = p.gather_tensors(tensors)
            return {f"rank{r}.{k}": v for r, part in enumerate(every) for k, v in part.items()}, {"ranks": p.world, "values": values}

        def load_own(tensors: Tensors, values: Any) -> None:
            saved = values["ranks"] if isinstance(values, dict) and "ranks" in values else 1
            self.saved_world = saved
            if saved != p.world:
                fresh()
            elif saved == 1:
                load(tensors, values)
            else:
                prefix = f"rank{p.rank}."
                load({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, values["values"])

        return save_every_rank, load_own


def rank_seed(seed: int, rank: int, restart_step: int = 0) -> int:
    """The seed of a rank's own random streams: the run's seed for rank 0 (one process computes as
    before), a hash of (seed, rank, step) otherwise; ``restart_step`` > 0 starts new streams."""
    if rank == 0 and restart_step == 0:
        return seed
    digest = hashlib.sha256(f"ganctl-rank-seed/{seed}/{rank}/{restart_step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2  # leaves room for the +1..+5 stream offsets


# --- the process group ---------------------------------------------------------------------------
_current = Processes()


def current() -> Processes:
    return _current


def start(backend: str = "auto") -> Processes:
    """Join the run's process group when torchrun started this process (nothing to do for one process)."""
    global _current
    # a wrong environment is reported by every process that finds it (it may be the only one)
    rank, local, world, restart = detect()
    timeout = start_timeout()
    if world > 1:
        check_master_address()
    try:
        if backend not in BACKENDS:
            raise GanctlError(f"unknown --dist-backend '{backend}'; use auto, nccl or gloo")
        if world > 1:
            if not torch.distributed.is_available():
                raise GanctlError("this PyTorch was built without torch.distributed; train with one process")
            if backend == "nccl" and not torch.cuda.is_available():
                raise GanctlError("--dist-backend nccl needs CUDA GPUs and PyTorch sees none here; use gloo (or auto) on the CPU")
    except GanctlError as exc:
        raise quiet_unless_first(exc, rank) from None
    _current = Processes(rank, local, world, backend, restart)
    if world > 1:
        cuda = torch.cuda.is_available() and backend != "gloo"
        if cuda and local < torch.cuda.device_count():
            torch.cuda.set_device(local)  # NCCL's communicator of this rank lives on its own GPU
        with _joining(world, timeout):
            # torchrun's store outlives a restart (--max-restarts): the keys of each attempt are kept
            # apart, or the new processes could read the addresses of the ones that died. The store
            # waits at most `timeout` for the others (a WORLD_SIZE no launcher honours would wait forever).
            import datetime

            store, _, _ = next(torch.distributed.rendezvous("env://", rank, world, timeout=datetime.timedelta(seconds=timeout)))
            store = torch.distributed.PrefixStore(f"ganctl-attempt-{restart}/", store)
            torch.distributed.init_process_group(
                backend="cpu:gloo,cuda:nccl" if cuda else "gloo", store=store, rank=rank, world_size=world
            )
    return _current


@contextlib.contextmanager
def _joining(world: int, timeout: float) -> Iterator[None]:
    """Meeting the other processes: any failure (no peer within the timeout, a port in use, an
    address that does not resolve) is one sentence naming the environment that set it up."""
    try:
        yield
    except (RuntimeError, ValueError, OSError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise GanctlError(
            f"the {world} processes of WORLD_SIZE={world} did not all meet at MASTER_ADDR:MASTER_PORT {where} within "
            f"{timeout:g} s ({text[:160]}); start every process (torchrun --nproc-per-node {world}), or unset WORLD_SIZE "
            f"to train with one ({START_TIMEOUT_ENV} sets the wait)"
        ) from None


def stop() -> None:
    global _current
    if _current.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _current = Processes()


def quiet_unless_first(error: GanctlError, rank: int) -> GanctlError:
    """An error every rank finds alike (a bad option): rank 0 reports it, the others leave quietly."""
    return error if rank == 0 else PeerFailed(str(error))


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """A collective that fails because another process died is one sentence, not a traceback."""
    try:
        yield
    except RuntimeError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanctlError(
            f"lost contact with the other processes of the run while {what} (did one of them stop?): {text[:160]}"
        ) from None
