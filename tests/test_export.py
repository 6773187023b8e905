"""``ganctl export``: ONNX parity with PyTorch for every architecture, the Hub folder's round trip, refusals."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ganctl.interop import hf_folder
from ganctl.interop.onnx_export import TOLERANCE, export_onnx, onnx_metadata
from ganctl.networks.weights import load_generator, save_generator
from ganctl.registry import ARCHITECTURES
from tests.helpers import invoke, make_generator, one_line_error, read_safetensors

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _generator_file(path, arch_name: str, num_classes: int = 0):
    """A random generator of ``arch_name`` at the smallest size it builds (conditional with ``num_classes``)."""
    arch = ARCHITECTURES.get(arch_name).obj
    args = arch.arch_args(image_size=min(arch.image_sizes), latent_dim=16, num_classes=num_classes)
    torch.manual_seed(0)
    generator = arch.build_generator(**args)
    for module in generator.modules():  # batch norm with statistics of its own, so eval mode matters
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    names = [f"c{i}" for i in range(num_classes)]
    save_generator(path, generator, architecture=arch_name, arch_args=args, pixel_range=arch.recipe.pixel_range, class_names=names)
    return path


# ~3-6 s to export on two shared cores (the paper-size StyleGAN2s more); the others well under 2 s
SLOW = {"sngan-resnet", "stylegan2", "stylegan2-cifar"}
CASES = [pytest.param(name, 0, marks=[pytest.mark.slow] if name in SLOW else []) for name in ARCHITECTURES.names()] + [
    (name, 3) for name in ARCHITECTURES.names() if ARCHITECTURES.get(name).obj.conditional and name not in SLOW
][:3]


@pytest.mark.parametrize(("arch_name", "num_classes"), CASES)
def test_onnx_model_gives_pytorchs_images_for_every_architecture(arch_name, num_classes, tmp_path):
    path = _generator_file(tmp_path / "g.safetensors", arch_name, num_classes)
    generator, info = load_generator(path)
    data, difference = export_onnx(generator, info, onnx_metadata(info))
    assert difference <= TOLERANCE * (info.pixel_range[1] - info.pixel_range[0])
    # a batch size neither the export nor its check used: the batch dimension is dynamic
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    z = torch.randn(7, info.latent_dim, generator=torch.Generator().manual_seed(3))
    feeds = {"z": z.numpy()}
    labels = torch.arange(7) % max(num_classes, 1)
    if num_classes:
        feeds["class"] = labels.numpy()
    (images,) = session.run(None, feeds)
    with torch.no_grad():
        expected = (generator(z, labels) if num_classes else generator(z)).numpy()
    assert images.shape == (7, *info.image_shape)
    np.testing.assert_allclose(images, expected, atol=1e-4, rtol=0)
    if not getattr(generator, "unbounded_output", False):  # StyleGAN2 has no final tanh, as its reference
        low, high = info.pixel_range
        assert images.min() >= low - 1e-6 and images.max() <= high + 1e-6


def test_export_command_writes_a_checked_model_with_the_files_description(tmp_path):
    import onnx

    make_generator(tmp_path / "g.safetensors", "mnist-dcgan")
    result = invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "onnx", "--out", tmp_path / "g.onnx")
    assert result.exit_code == 0, result.output
    assert "onnxruntime matches PyTorch" in result.stdout
    model = onnx.load(tmp_path / "g.onnx")
    props = {p.key: p.value for p in model.metadata_props}
    assert props["architecture"] == "mnist-dcgan" and json.loads(props["pixel_range"]) == [0.0, 1.0]
    assert [i.name for i in model.graph.input] == ["z"]
    again = invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "onnx", "--out", tmp_path / "g.onnx")
    one_line_error(again, "already exists")


def test_a_mismatch_is_an_error_not_a_warning(tmp_path, monkeypatch):
    from ganctl.interop import onnx_export

    make_generator(tmp_path / "g.safetensors", "mnist-dcgan")
    monkeypatch.setattr(onnx_export, "check_parity", lambda *a, **k: 0.5)
    result = invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "onnx", "--out", tmp_path / "g.onnx")
    one_line_error(result, "does not reproduce", "nothing was written")
    assert not (tmp_path / "g.onnx").exists()


def test_export_refuses_damaged_unknown_and_missing_inputs_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    for weights, fragment in (("junk.safetensors", "not a readable safetensors"), ("plain.safetensors", "not a ganctl generator"), ("none.safetensors", "does not exist")):
        one_line_error(invoke("export", "--weights", tmp_path / weights, "--format", "onnx", "--out", tmp_path / "x.onnx"), fragment)
    make_generator(tmp_path / "g.safetensors")
    one_line_error(invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "tflite", "--out", tmp_path / "x"), "--format")
    one_line_error(invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "onnx", "--out", tmp_path / "x.bin"), ".onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    one_line_error(invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "onnx", "--out", tmp_path / "x.onnx"), "pip install 'ganctl[export]'")


def test_hf_folder_round_trip_is_bitwise(tmp_path):
    source = _generator_file(tmp_path / "g.safetensors", "tf-dcgan", num_classes=3)
    result = invoke("export", "--weights", source, "--format", "hf", "--out", tmp_path / "hub", "--license", "mit")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "hub"
    assert sorted(p.name for p in folder.iterdir()) == sorted(hf_folder.FILES)
    (meta_a, tensors_a), (meta_b, tensors_b) = read_safetensors(source), read_safetensors(folder / "model.safetensors")
    assert meta_a == meta_b and tensors_a.keys() == tensors_b.keys()
    assert all(torch.equal(tensors_a[k], tensors_b[k]) for k in tensors_a)
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "tf-dcgan" and config["class_names"] == ["c0", "c1", "c2"] and config["arch_args"]["num_classes"] == 3
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    for line in ("library_name: ganctl", "pipeline_tag: unconditional-image-generation", "license: mit"):
        assert line in front
    assert "samples.png" in card
    # the folder is a --weights: the same images as the file it came from
    for weights, out in ((source, "a.png"), (folder, "b.png")):
        assert invoke("sample", "--weights", weights, "--n", "6", "--seed", "4", "--out", tmp_path / out).exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_hf_folder_is_loaded_strictly(tmp_path):
    make_generator(tmp_path / "g.safetensors")
    assert invoke("export", "--weights", tmp_path / "g.safetensors", "--format", "hf", "--out", tmp_path / "hub").exit_code == 0
    model = tmp_path / "hub" / "model.safetensors"
    metadata, tensors = read_safetensors(model)
    save_file({**tensors, "extra.weight": torch.zeros(1)}, model, metadata=metadata)
    one_line_error(invoke("sample", "--weights", tmp_path / "hub", "--n", "2", "--out", tmp_path / "s.png"), "do not fit")
    first = next(iter(tensors))
    save_file({k: v for k, v in tensors.items() if k != first}, model, metadata=metadata)
    one_line_error(invoke("sample", "--weights", tmp_path / "hub", "--n", "2", "--out", tmp_path / "s.png"), "do not fit")
    save_file(tensors, model, metadata=metadata)
    # an exported folder exports again (ONNX here), its config checked as it loads
    assert invoke("export", "--weights", tmp_path / "hub", "--format", "onnx", "--out", tmp_path / "again.onnx").exit_code == 0
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    (tmp_path / "hub" / "config.json").write_text(json.dumps({**config, "latent_dim": 7}))
    one_line_error(invoke("sample", "--weights", tmp_path / "hub", "--n", "2", "--out", tmp_path / "s.png"), "latent_dim")
    (tmp_path / "hub" / "config.json").write_text("{")
    one_line_error(invoke("sample", "--weights", tmp_path / "hub", "--n", "2", "--out", tmp_path / "s.png"), "config.json")


def test_hf_card_carries_the_runs_dataset_recipe_and_evaluations(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    torch.manual_seed(0)
    generator = arch.build_generator()
    save_generator(run / "generator.safetensors", generator, architecture="mnist-dcgan", arch_args=arch.arch_args(),
                   pixel_range=(0.0, 1.0), extra={"dataset": "mnist", "loss": "bce", "step": 40})
    (run / "config.json").write_text(json.dumps({"recipe": {"dataset": "mnist", "epochs": 2, "g_lr": 0.0002}}))
    records = [{"step": 20, "epoch": 1, "fid": 80.5, "kid_mean": 0.07, "best": True, "protocol": {"n_evaluated": 1000}},
               {"step": 40, "epoch": 2, "fid": 90.25, "kid_mean": 0.08, "protocol": {"n_evaluated": 1000}}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert invoke("export", "--weights", run, "--format", "hf", "--out", tmp_path / "hub").exit_code == 0
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "- ylecun/mnist" in card.split("---")[1] and "license: other" in card
    assert "FID 80.500" in card and "FID 90.250" in card and '"n_evaluated": 1000' in card and '"g_lr": 0.0002' in card
