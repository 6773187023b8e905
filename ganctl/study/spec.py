"""What a study is, and its ``study.json``.

A study is a base (an architecture and the ``train`` options every run shares), a list of
variants (each a set of overrides of recipe or run fields; the first is the baseline), a
number of seeds and the metric compared. It comes from the command line (``--vary``), from a
small TOML file, or from the study folder's own ``study.json``. The fields are named as
``config.json`` spells them (``d_lr``, ``dataset_limit``) or as their option (``limit``,
``--d-lr``), and every value is checked by the same table that checks ``ganctl train``.
No torch here.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganctl import options as opts
from ganctl.errors import GanctlError
from ganctl.fileio import atomic_write_json

STUDY_FILE = "study.json"
FORMAT = "ganctl-study"
VERSION = 1
# Fields a study sets itself on each run, or that would make two runs of one variant incomparable.
NOT_VARIED = {"run_dir", "seed", "quiet", "arch"}
# Run fields that change how a run is computed or kept, never what it computes: a study may be
# continued with other values of them.
HARMLESS = {"device", "compile", "stream_data", "tensorboard", "inception", "checkpoint_every",
            "keep_checkpoints", "quiet", "data_dir", "download"}  # fmt: skip
BUILT_IN_METRICS = {"fid": ("evals", "fid"), "kid": ("evals", "kid_mean")}


def option_for(name: str, where: str) -> opts.OptionSpec:
    """The option row of a field named as config.json spells it (d_lr) or as its option (--d-lr, limit)."""
    for on in ("recipe", "run"):
        if (on, name) in opts.BY_FIELD:
            option = opts.BY_FIELD[(on, name)]
            break
    else:
        option = opts.BY_PARAM.get(name.lstrip("-").replace("-", "_"))
    if option is None or option.field is None or option.field in NOT_VARIED:
        raise GanctlError(f"{where}: '{name}' is no field a study can set (use a `ganctl train` option's field, such as d_lr or batch_size)")
    return option


def parse_value(option: opts.OptionSpec, value: Any, where: str) -> Any:
    """A value of the option's type from text (the command line) or TOML, checked by its row."""
    kind = option.type
    try:
        if kind is bool:
            if isinstance(value, str):
                words = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}
                value = words[value.strip().lower()]
            elif not isinstance(value, bool):
                raise ValueError
        elif kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif kind is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        else:
            if not isinstance(value, str):
                raise ValueError
            value = option.to_field(value) if option.to_field is not None else value
    except (ValueError, KeyError, TypeError):
        what = {bool: "true or false", int: "a whole number", float: "a number"}.get(kind, "text")
        raise GanctlError(f"{where}: {option.field} must be {what}, not {value!r}") from None
    complaint = option.check(option.check_label, value) if option.check is not None else None
    if complaint:
        raise GanctlError(f"{where}: {complaint}")
    return value


def variant_name(overrides: dict[str, Any]) -> str:
    """A variant's name, also its run folders' prefix: field=value pairs, or 'base'."""
    if not overrides:
        return "base"
    text = ",".join(f"{k}={v}" for k, v in overrides.items())
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


@dataclass
class Study:
    name: str
    arch: str
    base: dict[str, Any]  # field -> value: the options every run shares
    variants: list[dict[str, Any]]  # each: field -> value; the first is the baseline
    seeds: int
    metric: str
    search: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> {low, high, log}

    def variant_names(self) -> list[str]:
        return [variant_name(v) for v in self.variants]

    def identity(self) -> dict[str, Any]:
        """What two commands must agree on to continue one study."""
        return {"arch": self.arch, "base": {k: v for k, v in self.base.items() if k not in HARMLESS}}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "arch": self.arch, "base": self.base,
                "variants": self.variants, "seeds": self.seeds, "metric": self.metric, "search": self.search}  # fmt: skip


def grid(vary: list[str]) -> list[dict[str, Any]]:
    """``--vary FIELD=V1,V2`` (repeatable) as the variants of their grid, in order."""
    axes: list[list[tuple[str, Any]]] = []
    seen: set[str] = set()
    for text in vary:
        name, sep, values = text.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise GanctlError(f"--vary '{text}' is not FIELD=V1,V2,... (for example d_lr=2e-4,4e-4)")
        option = option_for(name.strip(), f"--vary {text}")
        if option.field in seen:
            raise GanctlError(f"--vary names {option.field} twice; give all its values in one --vary")
        seen.add(option.field)
        parsed = [parse_value(option, v.strip(), f"--vary {text}") for v in values.split(",")]
        if len(set(map(repr, parsed))) != len(parsed):
            raise GanctlError(f"--vary {text} gives a value twice")
        axes.append([(option.field, v) for v in parsed])
    return [dict(point) for point in itertools.product(*axes)] if axes else [{}]


def read_toml(path: Path) -> dict[str, Any]:
    """A study file's table: name, arch, seeds, metric, [base], [vary], [[variant]], [search]."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise GanctlError("study files need Python 3.11 or later (tomllib)") from None
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GanctlError(f"study file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GanctlError(f"cannot read study file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GanctlError(f"study file {path} is not TOML: {str(exc).splitlines()[0]}") from None
    known = {"name", "arch", "seeds", "metric", "base", "vary", "variant", "search"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise GanctlError(f"study file {path}: unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    return data


def fields_of(table: Any, where: str) -> dict[str, Any]:
    """A TOML table of field = value, each checked, keyed by field name."""
    if not isinstance(table, dict):
        raise GanctlError(f"{where} must be a table of field = value")
    parsed = {}
    for name, value in table.items():
        option = option_for(name, where)
        parsed[option.field] = parse_value(option, value, where)
    return parsed


def search_ranges(table: Any, where: str) -> dict[str, dict[str, Any]]:
    """[search] field = {low = .., high = .., log = true}: the ranges the Optuna search samples."""
    if not isinstance(table, dict):
        raise GanctlError(f"{where} must be a table of field = {{low = .., high = ..}}")
    ranges = {}
    for name, spec in table.items():
        option = option_for(name, where)
        if option.type not in (int, float) or not isinstance(spec, dict) or not {"low", "high"} <= set(spec):
            raise GanctlError(f"{where}: {name} must be a number field given as {{low = .., high = ..}}")
        low, high = (parse_value(option, spec[k], f"{where} {name}") for k in ("low", "high"))
        if not low < high:
            raise GanctlError(f"{where}: {name}'s low ({low}) must be below its high ({high})")
        ranges[option.field] = {"low": low, "high": high, "log": bool(spec.get("log", False)), "int": option.type is int}
    return ranges


def read_study(folder: Path) -> Study | None:
    """The study folder's ``study.json``; None if it has none."""
    path = Path(folder) / STUDY_FILE
    if not path.exists():
        return None
    damaged = f"{path} is damaged"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise GanctlError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise GanctlError(f"{damaged}: it is not JSON ({str(exc)[:60]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GanctlError(f"{path} is not a ganctl study file")
    try:
        return Study(name=str(data["name"]), arch=str(data["arch"]), base=dict(data["base"]),
                     variants=[dict(v) for v in data["variants"]], seeds=int(data["seeds"]),
                     metric=str(data["metric"]), search=dict(data.get("search") or {}))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise GanctlError(f"{damaged}: {type(exc).__name__} {exc}") from None


def merge_into_folder(study: Study, folder: Path) -> Study:
    """Check ``study`` continues the one in ``folder`` (if any), then record both's variants and seeds.

    Refused before anything runs: a folder holding other files, or another study's folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GanctlError(f"--out {folder} is a file, not a study folder")
    stored = read_study(folder)
    if stored is None and folder.is_dir() and any(folder.iterdir()):
        raise GanctlError(f"{folder} holds files but no {STUDY_FILE}; choose a new or empty --out for the study")
    if stored is not None:
        mine, theirs = study.identity(), stored.identity()
        if stored.name != study.name or mine != theirs:
            raise GanctlError(f"{folder} holds another study ({_difference(theirs, mine, stored.name, study.name)}); choose another --out")
        variants = stored.variants + [v for v in study.variants if v not in stored.variants]
        recorded = Study(study.name, study.arch, study.base, variants, max(study.seeds, stored.seeds), study.metric, study.search or stored.search)
    else:
        recorded = study
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / STUDY_FILE, recorded.to_json())
    except OSError as exc:
        raise GanctlError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    return recorded


def _difference(theirs: dict[str, Any], mine: dict[str, Any], their_name: str, my_name: str) -> str:
    if their_name != my_name:
        return f"named '{their_name}', not '{my_name}'"
    if theirs["arch"] != mine["arch"]:
        return f"of {theirs['arch']}, not {mine['arch']}"
    for key in sorted(set(theirs["base"]) | set(mine["base"])):
        a, b = theirs["base"].get(key), mine["base"].get(key)
        if a != b:
            return f"its {key} is {a}, this one's {b}"
    return "another definition"
