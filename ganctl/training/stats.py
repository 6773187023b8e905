"""Named training statistics, summed on the device and read back once per log interval.

The step reports scalars by name (``stats.add("g_loss", loss)``); nothing is read to the host
there, since ``.item()`` is a CPU-GPU sync that would stall every iteration. ``read()`` turns
the interval's sums into means with one transfer, in the order the names were first reported
(so ``metrics.jsonl`` keeps its keys in a stable order).
"""

from __future__ import annotations

import torch


class StepStats:
    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        if name in self.sums:
            self.sums[name] += value
            self.counts[name] += 1
        else:
            self.sums[name] = value.clone()
            self.counts[name] = 1

    def __bool__(self) -> bool:
        return bool(self.sums)

    def read(self) -> dict[str, float]:
        """Means since the last ``reset``: the one host sync of a log interval."""
        if not self.sums:
            return {}
        names = list(self.sums)
        values = torch.stack([self.sums[n] for n in names]).tolist()
        return {n: v / self.counts[n] for n, v in zip(names, values)}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()

    # --- resume: a checkpoint taken mid-interval continues the interval's sums --------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
        return {n: v.cpu() for n, v in self.sums.items()}, {"names": list(self.sums), "counts": self.counts}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, object], device: torch.device) -> None:
        self.sums = {n: tensors[n].to(device) for n in meta["names"]}
        self.counts = {n: int(c) for n, c in meta["counts"].items()}
