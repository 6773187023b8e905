"""Class labels: what a labelled dataset gives, and choosing classes of a conditional generator.

A dataset loader may return ``LabelledImages`` instead of a bare image array: the images,
one integer label per image, and the class names (label ``i`` is ``class_names[i]``).
``ganctl train --conditional`` needs one; a conditional generator file records the names.

The class-selection helpers (``--class cat``, ``--class 3``, ``--per-class K``) live here
too, so that ``sample``, ``latent-walk`` and ``eval`` parse and refuse alike. torch is
imported inside the functions that need it: the CLI checks names before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ganctl.errors import GanctlError

if TYPE_CHECKING:
    import torch

MAX_CLASSES = 100_000  # bounds what a generator file may ask to build


@dataclass(frozen=True)
class LabelledImages:
    """A loader's labelled answer: uint8 NHWC images, int64 labels ``(N,)``, the class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or len(labels) != len(self.images):
            raise GanctlError(f"a dataset gave {len(labels)} labels for {len(self.images)} images")
        if labels.dtype.kind not in "iu" or (len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names))):
            raise GanctlError(f"a dataset gave labels outside 0..{len(self.class_names) - 1} for its {len(self.class_names)} classes")
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        object.__setattr__(self, "class_names", tuple(str(name) for name in self.class_names))


def split_loader_output(output: object) -> tuple[object, np.ndarray | None, tuple[str, ...]]:
    """A loader's answer as ``(images, labels or None, class names)``: bare arrays are unlabelled."""
    if isinstance(output, LabelledImages):
        return output.images, output.labels, output.class_names
    return output, None, ()


def class_counts(labels: torch.Tensor | np.ndarray, num_classes: int) -> list[int]:
    """Images per class (a generator file records them: ``eval`` samples classes as training saw them)."""
    return np.bincount(np.asarray(labels).astype(np.int64), minlength=num_classes)[:num_classes].tolist()


def allocate(n: int, weights: Sequence[float]) -> list[int]:
    """``n`` split over the classes in proportion to ``weights`` (largest remainders): counts summing to ``n``."""
    total = float(sum(weights))
    shares = [n * w / total for w in weights] if total > 0 else [n / len(weights)] * len(weights)
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def labels_for(n: int, weights: Sequence[float]) -> torch.Tensor:
    """``n`` int64 labels, class by class, as many of each as ``allocate`` gives it."""
    import torch

    counts = allocate(n, weights)
    return torch.arange(len(counts)).repeat_interleave(torch.tensor(counts, dtype=torch.long))


def check_conditional_arch(arch) -> None:
    """``--conditional`` with an architecture whose factories take no ``num_classes``."""
    if not arch.conditional:
        raise GanctlError(f"--conditional: architecture '{arch.name}' cannot be built class-conditional (its factory takes no num_classes)")


def check_labelled(dataset: str, labels: object, class_names: Sequence[str]) -> None:
    """``--conditional`` on a dataset that gave no labels: say how to give it some."""
    if labels is None:
        how = (
            "put each class's images in a subfolder of its own (PATH/cat/*.png, PATH/dog/*.png)"
            if dataset.startswith("folder:")
            else "use a labelled dataset (see `ganctl list`), or put its label file beside its images"
        )
        raise GanctlError(f"--conditional needs labelled images, and {dataset} has no labels; {how}")
    if len(class_names) < 2:
        raise GanctlError(f"--conditional needs at least 2 classes; {dataset} has {len(class_names)} ({', '.join(class_names)})")
    for name in class_names:  # checked before training: the generator file must hold them all
        if problem := class_name_problem(name):
            raise GanctlError(f"--conditional: the class name {name!r} of {dataset} {problem}; rename that class (its subfolder)")


MAX_CLASS_NAME = 255  # characters: a folder name's limit on common file systems


def class_name_problem(name: object) -> str | None:
    """Why a generator file cannot hold ``name`` as a class name (None: it can)."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if len(name) > MAX_CLASS_NAME:
        return f"is longer than {MAX_CLASS_NAME} characters"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a folder name that is not UTF-8 (read with surrogate escapes)
        return "is not valid UTF-8 text"
    return None


@dataclass(frozen=True)
class GridLayout:
    """The training grids: a square of latents, or for a conditional run one row per class,
    the same ``columns`` latents in every row."""

    latents: int  # distinct latent points drawn
    rows_of_latents: int = 1  # how many times they repeat (one per class)
    columns: int | None = None  # images per row; None: a square
    num_classes: int = 0

    @classmethod
    def for_run(cls, sample_grid: int, num_classes: int) -> GridLayout:
        if not num_classes:
            return cls(sample_grid)
        columns = math.ceil(math.sqrt(sample_grid))
        return cls(columns, num_classes, columns, num_classes)

    def inputs(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the generator is called with: ``(z,)`` or ``(z, y)``, y class by class."""
        if not self.num_classes:
            return (z,)
        import torch

        return z, torch.arange(self.num_classes, device=z.device).repeat_interleave(self.columns)


# ----------------------------------------------------------------------------------------
# Choosing classes of a generator (--class, --per-class, --class-walk)


def parse_class(value: str, class_names: Sequence[str], option: str = "--class") -> int:
    """A class given by name (``cat``) or by index (``3``) -> its index; one sentence when unknown."""
    text = value.strip()
    if text in class_names:
        return list(class_names).index(text)
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(class_names):
            raise GanctlError(f"{option} {text}: class indices of this generator run from 0 to {len(class_names) - 1}")
        return index
    raise GanctlError(f"{option} '{text}' is not a class of this generator; its classes are {', '.join(class_names)}")


def parse_classes(values: Sequence[str], class_names: Sequence[str], option: str = "--class") -> list[int]:
    """Each value may itself be a comma list (``--class cat,dog``); a value that is a class's whole
    name is that class, commas and spaces included (a folder may be named ``a,b``). A value that
    names no class at all (``--class ""`` from an empty shell variable) is one sentence."""
    chosen = []
    for value in values:
        if value in class_names:
            chosen.append(list(class_names).index(value))
        else:
            chosen += [parse_class(part, class_names, option) for part in value.split(",") if part.strip()]
    if not chosen:
        given = ", ".join(repr(v) for v in values)
        raise GanctlError(f"{option} {given} names no class; name one of {', '.join(class_names)} (or an index from 0)")
    return chosen


def require_conditional(class_names: Sequence[str], option: str, source: object) -> None:
    """``--class`` and friends on an unconditional generator: one sentence."""
    if not class_names:
        raise GanctlError(f"{option} needs a class-conditional generator; {source} is unconditional (trained without --conditional)")


def describe_classes(indices: Sequence[int], class_names: Sequence[str]) -> str:
    """``cat, dog`` for messages and file names' legends."""
    return ", ".join(class_names[i] for i in dict.fromkeys(indices))


def cycled_labels(n: int, chosen: Sequence[int]) -> torch.Tensor:
    """``n`` labels taking the chosen classes in turn: each as often as the others (±1)."""
    import torch

    return torch.tensor(list(chosen), dtype=torch.long)[torch.arange(n) % len(chosen)]


def chosen_classes(values: Sequence[str] | None, class_names: Sequence[str], source: object, option: str = "--class") -> list[int]:
    """The classes ``--class`` names (every class when it is not given), refused on an unconditional generator."""
    if values:
        require_conditional(class_names, option, source)
        return parse_classes(values, class_names, option)
    return list(range(len(class_names)))
