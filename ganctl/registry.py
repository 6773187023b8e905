"""Name -> factory registries for architectures, losses and datasets (timm style).

Plain dicts and small functions. Plugins fill them by decorating factories:

    @register_architecture("cifar-dcgan", recipe=Recipe(...), description="...")
    def cifar_dcgan(image_size, channels, latent_dim):
        return Generator(...), Discriminator(...)

Looking a name up first asks ``ganctl.plugins`` to load what is pending (the installed
plugins, once), so library users and the CLI see the same registry. Each entry remembers the
plugin it came from (``ganctl.plugins.source_for``), for ``ganctl list`` and for error
messages about duplicate names.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ganctl import plugins
from ganctl.errors import DuplicateNameError, GanctlError, UnknownNameError
from ganctl.plugins import PluginSource, loading_from  # noqa: F401  (re-exported: where a name came from)
from ganctl.recipe import Recipe

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    source: PluginSource


class Registry(Generic[T]):
    """One kind of named thing ("architecture", "loss", "dataset")."""

    def __init__(self, kind: str, *, other_forms: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.other_forms = other_forms  # spellings that are no registered name (folder:PATH), listed with the names
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, description: str, source: PluginSource) -> None:
        if name in self._entries:
            other = self._entries[name].source
            raise DuplicateNameError(
                f"{self.kind} '{name}' is registered twice: by {other} and by {source}"
            )
        self._entries[name] = Entry(name, obj, description, source)

    def remove(self, name: str) -> None:
        """Forget a name (tests use this to undo a fake plugin)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry[T]:
        plugins.ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def __contains__(self, name: object) -> bool:
        plugins.ensure_loaded()
        return name in self._entries

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style wildcard (``"*dcgan"``)."""
        plugins.ensure_loaded()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def entries(self, pattern: str = "*") -> list[Entry[T]]:
        return [self._entries[n] for n in self.names(pattern)]

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        if close:
            hint = "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        elif self._entries:
            hint = "known: " + ", ".join([*sorted(self._entries), *self.other_forms])
        else:
            hint = f"no {self.kind} is registered (are the plugins installed?)"
        return f"unknown {self.kind} '{name}'; {hint}"


# ----------------------------------------------------------------------------------------
# Architectures


@dataclass(frozen=True)
class Architecture:
    """A registered GAN architecture: the factory of its two networks and its recipe.

    ``factory(**arch_args)`` returns ``(generator, discriminator)``. ``arch_args`` is an open
    dict: always ``image_size``, ``channels`` and ``latent_dim``; ``num_classes`` too when the
    networks are class-conditional (only then, so factories written for the three integers
    keep working). A factory that takes ``num_classes`` (or ``**kwargs``) builds conditional
    networks: ``G(z, y)`` and ``D(x, y)``, ``y`` the class indices.

    The generator maps ``(N, latent_dim)`` to ``(N, channels, image_size, image_size)`` in
    ``recipe.pixel_range``; the discriminator maps such images to ``(N, 1)`` logits.
    ``generator_factory``, when given, builds the generator alone (same arguments), for
    ``sample`` and the other commands that never need D.
    """

    name: str
    factory: Callable[..., tuple[Any, Any]]
    recipe: Recipe
    description: str
    image_sizes: tuple[int, ...]  # sizes this architecture is known to build at
    channels: tuple[int, ...] = (1, 3)
    size_rule: str = ""  # said to the user when a size is refused ("4·2^k or 7·2^k, k ≥ 2")
    generator_factory: Callable[..., Any] | None = None

    @property
    def conditional(self) -> bool:
        """Whether the factories take ``num_classes`` (can build class-conditional networks)."""
        factories = [self.factory] + ([self.generator_factory] if self.generator_factory else [])
        return all(_takes(f, "num_classes") for f in factories)

    def check(self, image_size: int, channels: int, latent_dim: int, num_classes: int = 0, **extra: Any) -> None:
        if image_size not in self.image_sizes:
            sizes = self.size_rule or ", ".join(f"{s}" for s in self.image_sizes)
            raise GanctlError(
                f"{self.name} cannot be built at {image_size} px; it builds at {sizes}"
            )
        if channels not in self.channels:
            allowed = " or ".join(str(c) for c in self.channels)
            raise GanctlError(f"{self.name} cannot be built with {channels} channels; use {allowed}")
        if latent_dim < 1:
            raise GanctlError(f"the latent size must be at least 1, not {latent_dim}")
        if num_classes and not self.conditional:
            raise GanctlError(f"{self.name} cannot be built class-conditional: its factory takes no num_classes")
        refused = [key for key in extra if not _takes(self.factory, key)]
        if refused:
            raise GanctlError(f"{self.name} takes no argument {', '.join(refused)}")

    def arch_args(
        self, image_size: int | None = None, channels: int | None = None, latent_dim: int | None = None, num_classes: int = 0
    ) -> dict[str, int]:
        """The factory's arguments, recipe defaults filled in (what a weights file records)."""
        r = self.recipe
        args = {
            "image_size": r.image_size if image_size is None else image_size,
            "channels": r.channels if channels is None else channels,
            "latent_dim": r.latent_dim if latent_dim is None else latent_dim,
        }
        if num_classes:
            args["num_classes"] = num_classes
        return args

    def build(self, *, init: str | None = None, **arch_args: Any) -> tuple[Any, Any]:
        """Build ``(generator, discriminator)`` from ``arch_args`` (recipe defaults for what is
        missing), initialised as ``init`` says (default: the architecture's recipe)."""
        args = self._complete(arch_args)
        generator, discriminator = self.factory(**args)
        from ganctl.networks.init import initialise  # torch, so imported only when building

        initialise(generator, init or self.recipe.init)
        initialise(discriminator, init or self.recipe.init)
        return generator, discriminator

    def build_generator(self, **arch_args: Any) -> Any:
        """Build the generator alone, initialised as the recipe says (D too only if the plugin gave no way around it)."""
        args = self._complete(arch_args)
        generator = self.generator_factory(**args) if self.generator_factory else self.factory(**args)[0]
        from ganctl.networks.init import initialise

        initialise(generator, self.recipe.init)
        return generator

    def _complete(self, arch_args: dict[str, Any]) -> dict[str, Any]:
        three = {key: arch_args.get(key) for key in ("image_size", "channels", "latent_dim")}
        args = {**arch_args, **self.arch_args(**three)}
        if not args.get("num_classes"):
            args.pop("num_classes", None)  # 0 = unconditional: the factory is called as it always was
        self.check(**args)
        return args


def _takes(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` accepts the keyword ``name`` (by name or through ``**kwargs``)."""
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the plain three
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


ARCHITECTURES: Registry[Architecture] = Registry("architecture")
LOSSES: Registry[Any] = Registry("loss")
REGULARIZERS: Registry[Any] = Registry("regularizer")
DATASETS: Registry[Any] = Registry("dataset", other_forms=("folder:PATH (a folder of images)",))


def _source_for(obj: Any) -> PluginSource:
    return plugins.source_for(obj)


def register_architecture(
    name: str,
    *,
    recipe: Recipe,
    description: str,
    image_sizes: Sequence[int] | None = None,
    channels: Sequence[int] = (1, 3),
    size_rule: str = "",
    generator_factory: Callable[..., Any] | None = None,
) -> Callable[[Callable[..., tuple[Any, Any]]], Callable[..., tuple[Any, Any]]]:
    """Register ``factory(image_size, channels, latent_dim) -> (G, D)`` under ``name``.

    ``generator_factory(image_size, channels, latent_dim) -> G`` is optional: it lets
    ``Architecture.build_generator`` skip building a discriminator only to throw it away.
    Factories that also take ``num_classes=0`` can be trained with ``--conditional``.
    """

    def decorate(factory: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
        arch = Architecture(
            name=name,
            factory=factory,
            recipe=recipe,
            description=description,
            image_sizes=tuple(image_sizes or (recipe.image_size,)),
            channels=tuple(channels),
            size_rule=size_rule,
            generator_factory=generator_factory,
        )
        ARCHITECTURES.add(name, arch, description, _source_for(factory))
        return factory

    return decorate


def register_loss(name: str, *, description: str) -> Callable[[type[T]], type[T]]:
    """Register a ``ganctl.losses.GANLoss`` subclass under ``name``."""

    def decorate(cls: type[T]) -> type[T]:
        LOSSES.add(name, cls, description, _source_for(cls))
        return cls

    return decorate


def register_regularizer(name: str, *, description: str) -> Callable[[type[T]], type[T]]:
    """Register a ``ganctl.regularizers.Regularizer`` subclass under ``name``."""

    def decorate(cls: type[T]) -> type[T]:
        from ganctl.regularizers import fill_names

        REGULARIZERS.add(name, cls, description, _source_for(cls))
        fill_names(cls, name)
        return cls

    return decorate


def register_dataset(name: str, *, description: str, class_names: Sequence[str] | None = None) -> Callable[[T], T]:
    """Register a dataset loader (see ``ganctl.data``) under ``name``.

    ``class_names``: the classes of a loader that returns ``ganctl.conditional.LabelledImages``
    (for ``ganctl list``; the loader's answer is what counts).
    """

    def decorate(loader: T) -> T:
        if class_names is not None:
            loader.class_names = tuple(class_names)  # type: ignore[attr-defined]
        DATASETS.add(name, loader, description, _source_for(loader))
        return loader

    return decorate

