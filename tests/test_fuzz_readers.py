"""Property-based tests over every reader of a user's file: arbitrary bytes and mutated valid
files give a result or a GanctlError (one sentence), never another exception."""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save as save_numpy

from ganctl.errors import GanctlError
from ganctl.latent.latents import read_latents
from ganctl.registry import ARCHITECTURES
from ganctl.runfolder import info, layout
from ganctl.runfolder.config import read_config
from ganctl.runfolder.manifest import read_manifest
from ganctl.runfolder.records import read_metrics
from ganctl.training import checkpoint as ckpt
from ganctl.training.config import TrainConfig, read_config_file
from ganctl.networks.weights import load_generator, read_info, save_generator

SETTINGS = settings(max_examples=int(os.environ.get("GANCTL_FUZZ_EXAMPLES", "80")), deadline=None, suppress_health_check=list(HealthCheck), derandomize="GANCTL_FUZZ_EXAMPLES" not in os.environ)
FOLDER = Path(tempfile.mkdtemp(prefix="ganctl-fuzz-"))


def _template_generator() -> bytes:
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4)
    torch.manual_seed(0)
    path = FOLDER / "template-generator.safetensors"
    save_generator(path, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args, pixel_range=(0.0, 1.0), extra={"step": 8})
    return path.read_bytes()


def _template_checkpoint() -> bytes:
    state = ckpt.NamedState()
    state.add_module("net", torch.nn.Linear(3, 2))
    state.add_rng("rng", torch.Generator().manual_seed(1))
    path = FOLDER / "template-checkpoint.safetensors"
    state.save(path, step=4)
    return path.read_bytes()


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


GENERATOR = _template_generator()
CHECKPOINT = _template_checkpoint()
LATENTS_NPY = _npy(np.zeros((3, 4), dtype=np.float32))
LATENTS_ST = save_numpy({"z": np.zeros((3, 4), dtype=np.float32)})


def _header(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _with_header(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


@st.composite
def mutated(draw, template: bytes):
    """``template`` with bytes flipped, cut off, inserted or removed."""
    data = bytearray(template)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "header"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "header":  # aim at the header, where the structure is
            at = draw(st.integers(0, min(len(data) - 1, 400)))
            data[at] = draw(st.integers(0, 255))
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ANY_BYTES = st.binary(max_size=600)


def _write(name: str, data: bytes) -> Path:
    path = FOLDER / name
    path.write_bytes(data)
    return path


def _expect_result_or_ganctl_error(read, *args):
    try:
        return read(*args)
    except GanctlError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), str(exc)
        return None


# --- generator files ------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(ANY_BYTES, mutated(GENERATOR)))
def test_generator_files(data):
    path = _write("g.safetensors", data)
    _expect_result_or_ganctl_error(read_info, path)
    _expect_result_or_ganctl_error(load_generator, path)


@SETTINGS
@given(st.sampled_from(["arch_args", "pixel_range", "architecture", "format", "latent_dim"]), JSON)
def test_generator_metadata_with_any_json(key, value):
    header, body = _header(GENERATOR)
    header["__metadata__"][key] = value if key in ("architecture", "format") and isinstance(value, str) else json.dumps(value)
    path = _write("g.safetensors", _with_header(header, body))
    _expect_result_or_ganctl_error(read_info, path)
    _expect_result_or_ganctl_error(load_generator, path)


@pytest.mark.parametrize(
    "key, value",
    [
        ("pixel_range", [0, float("inf")]), ("pixel_range", [float("nan"), 1]), ("pixel_range", [1, 0]),
        ("pixel_range", [0, 1, 2]), ("arch_args", {"image_size": 28, "channels": 1, "latent_dim": 10**12}),
        ("arch_args", {"image_size": 28, "channels": 1, "latent_dim": 0}),
        ("arch_args", {"image_size": 28, "channels": 1, "latent_dim": 4, "evil": 1}),
        ("arch_args", {"image_size": 28, "channels": 1, "latent_dim": "4"}),
        ("arch_args", {"image_size": 28.5, "channels": 1, "latent_dim": 4}), ("arch_args", [1, 2, 3]),
    ],
)
def test_out_of_range_metadata_is_damaged_metadata(key, value):
    header, body = _header(GENERATOR)
    header["__metadata__"][key] = json.dumps(value)
    path = _write("g.safetensors", _with_header(header, body))
    with pytest.raises(GanctlError, match="damaged ganctl metadata"):
        read_info(path)


# --- checkpoints --------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(ANY_BYTES, mutated(CHECKPOINT)))
def test_checkpoint_files(data):
    path = _write("step-000000004.safetensors", data)
    checkpoint = _expect_result_or_ganctl_error(ckpt.load_checkpoint, path)
    if checkpoint is not None:  # it read: loading it into a run either fits or is one line
        state = ckpt.NamedState()
        state.add_module("net", torch.nn.Linear(3, 2))
        state.add_rng("rng", torch.Generator())
        _expect_result_or_ganctl_error(state.load, checkpoint)


@SETTINGS
@given(st.sampled_from(["step", "values", "format_version"]), JSON)
def test_checkpoint_metadata_with_any_json(key, value):
    header, body = _header(CHECKPOINT)
    header["__metadata__"][key] = json.dumps(value)
    checkpoint = _expect_result_or_ganctl_error(ckpt.load_checkpoint, _write("c.safetensors", _with_header(header, body)))
    if checkpoint is not None:
        state = ckpt.NamedState()
        state.add_module("net", torch.nn.Linear(3, 2))
        state.add_rng("rng", torch.Generator())
        _expect_result_or_ganctl_error(state.load, checkpoint)


# --- latent files ----------------------------------------------------------------------------


@SETTINGS
@given(st.one_of(ANY_BYTES, mutated(LATENTS_NPY)))
def test_npy_latents(data):
    _expect_result_or_ganctl_error(read_latents, _write("z.npy", data), 4)


@SETTINGS
@given(st.one_of(ANY_BYTES, mutated(LATENTS_ST)))
def test_safetensors_latents(data):
    _expect_result_or_ganctl_error(read_latents, _write("z.safetensors", data), 4)


# --- config.json, metrics.jsonl, LATEST ---------------------------------------------------------

VALID_CONFIG = {"ganctl_version": "x", **TrainConfig(arch="mnist-dcgan", recipe=ARCHITECTURES.get("mnist-dcgan").obj.recipe).to_dict()}


@st.composite
def config_texts(draw):
    config = json.loads(json.dumps(VALID_CONFIG))
    target = config if draw(st.booleans()) else config["recipe"]
    key = draw(st.sampled_from(sorted(target)))
    if draw(st.booleans()):
        del target[key]
    else:
        target[key] = draw(JSON)
    return json.dumps(config).encode()


@SETTINGS
@given(st.one_of(ANY_BYTES, config_texts(), mutated(json.dumps(VALID_CONFIG).encode())))
def test_config_json(data):
    path = _write("config.json", data)
    _expect_result_or_ganctl_error(read_config_file, path)
    run = FOLDER / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_bytes(data)
    _expect_result_or_ganctl_error(read_config, run)


MANIFEST = {"steps_per_epoch": 4, "total_steps": 8, "epochs": 2, "images": 64, "classes": {"a": 40, "b": 24},
            "world_size": 1, "ganctl_version": "0.1.0", "torch_version": "2.4.0", "device": "cpu",
            "created": "2025-01-01T12:00:00+00:00", "manifest_version": 1}  # fmt: skip


@SETTINGS
@given(st.one_of(ANY_BYTES, mutated(json.dumps(MANIFEST).encode()),
                 st.dictionaries(st.sampled_from(sorted(MANIFEST)), JSON).map(lambda d: json.dumps({**MANIFEST, **d}).encode())))
def test_manifest_json(data):
    run = FOLDER / "manifest-run"
    run.mkdir(exist_ok=True)
    (run / "manifest.json").write_bytes(data)
    manifest = _expect_result_or_ganctl_error(read_manifest, run)
    assert manifest is None or manifest.steps_per_epoch >= 1


RECORD = json.dumps({"step": 2, "epoch": 0.5, "d_loss_real": 0.7, "g_loss": 0.8}) + "\n"
EVAL = json.dumps({"step": 4, "epoch": 1.0, "fid": 100.0, "best": True}) + "\n"


@SETTINGS
@given(st.one_of(ANY_BYTES, mutated((RECORD + EVAL + RECORD).encode()), st.lists(JSON, max_size=5).map(lambda v: "\n".join(json.dumps(x) for x in v).encode())))
def test_metrics_jsonl(data):
    metrics = _expect_result_or_ganctl_error(read_metrics, _write("metrics.jsonl", data))
    if metrics is not None:
        metrics.curve_keys(), metrics.best_eval(), metrics.last_step(), metrics.step_epoch_pairs()
        for key in metrics.curve_keys():
            metrics.series(key)
        info.steps_per_epoch(metrics.step_epoch_pairs())


@SETTINGS
@given(st.one_of(ANY_BYTES, st.text(max_size=300).map(str.encode), st.just(b"/" + b"a" * 5000), st.just(b"/tmp/\x00x")))
def test_latest_pointer(data):
    root = FOLDER / "root"
    root.mkdir(exist_ok=True)
    (root / "LATEST").write_bytes(data)
    result = _expect_result_or_ganctl_error(layout.latest_run, root)
    assert result is None or result.is_dir()
