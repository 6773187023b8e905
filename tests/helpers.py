"""Helpers shared by the test modules: plain functions and constants, written once.

(Fixtures live in ``conftest.py``; run-folder and dataset writers in ``runfolders.py`` and
``formats.py``. No test module imports from another test module.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from safetensors import safe_open


def generator_hash(run: Path) -> str:
    """sha256 over a run's generator tensors (names, dtypes, shapes, bytes), not the file's metadata."""
    digest = hashlib.sha256()
    with safe_open(str(run / "generator.safetensors"), "pt") as f:
        for name in sorted(f.keys()):
            tensor = f.get_tensor(name).contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
