"""``ganctl import``: Keras 2 .h5 and Keras 3 .keras generators read into ganctl's networks, and every refusal."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from ganctl.interop.keras_import import keras_layers_of
from ganctl.networks.weights import load_generator
from ganctl.registry import ARCHITECTURES
from tests.formats import write_keras2_h5, write_keras3_file
from tests.helpers import invoke, one_line_error

h5py = pytest.importorskip("h5py")


def _trained_like(arch_name: str, channels: int | None = None) -> torch.nn.Module:
    """A generator with weights (and batch-norm statistics) nothing else has, as training leaves them."""
    arch = ARCHITECTURES.get(arch_name).obj
    torch.manual_seed(1)
    generator = arch.build_generator(**arch.arch_args(channels=channels))
    for module in generator.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return generator.eval()


@pytest.mark.parametrize("arch_name", ["cifar-dcgan", "mnist-dcgan", "tf-dcgan"])
@pytest.mark.parametrize("writer", [write_keras2_h5, write_keras3_file], ids=["keras2-h5", "keras3"])
def test_import_gives_the_same_images_as_the_keras_files_network(arch_name, writer, tmp_path):
    original = _trained_like(arch_name)
    keras_file = writer(tmp_path / ("g.h5" if writer is write_keras2_h5 else "g.keras"), keras_layers_of(original))
    result = invoke("import", keras_file, "--arch", arch_name, "--out", tmp_path / "imported.safetensors")
    assert result.exit_code == 0, result.output
    imported, info = load_generator(tmp_path / "imported.safetensors")
    assert info.architecture == arch_name and info.extra["imported_from"] == keras_file.name
    z = torch.randn(4, info.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(imported(z), original(z), rtol=0, atol=1e-6)


def test_the_dense_units_are_reordered_from_keras_channel_last(tmp_path):
    """Keras' Reshape((4, 4, 256)) reads the Dense's units as (h, w, c): unit (h, w, c) is PyTorch's (c, h, w)."""
    original = _trained_like("cifar-dcgan")
    dense = keras_layers_of(original)[0]
    linear = original[0]
    h, w, c = 1, 2, 5
    keras_unit, torch_unit = h * 4 * 256 + w * 256 + c, c * 16 + h * 4 + w
    np.testing.assert_array_equal(dense.arrays["kernel"][:, keras_unit], linear.weight[torch_unit].detach().numpy())
    assert dense.arrays["bias"][keras_unit] == linear.bias[torch_unit].item()


def test_import_refuses_wrong_architecture_shapes_and_files_in_one_line(tmp_path):
    mnist_layers = keras_layers_of(_trained_like("mnist-dcgan"))
    write_keras2_h5(tmp_path / "mnist.h5", mnist_layers)
    out = ["--out", tmp_path / "g.safetensors"]
    one_line_error(invoke("import", tmp_path / "mnist.h5", "--arch", "cifar-dcgan", *out), "mnist.h5", "layers with weights")
    one_line_error(invoke("import", tmp_path / "mnist.h5", "--arch", "tf-dcgan", *out), "mnist.h5")
    narrow = list(mnist_layers)
    narrow[0] = type(narrow[0])("dense", "Dense", {"kernel": np.zeros((100, 64 * 7 * 7), np.float32), "bias": np.zeros(64 * 7 * 7, np.float32)})
    write_keras2_h5(tmp_path / "narrow.h5", narrow)
    one_line_error(invoke("import", tmp_path / "narrow.h5", "--arch", "mnist-dcgan", *out), "layer dense's kernel has shape (100, 3136)")
    one_line_error(invoke("import", tmp_path / "mnist.h5", "--arch", "sngan-cnn", *out), "--arch")
    bad = list(mnist_layers)
    bad[1] = type(bad[1])(bad[1].name, "Conv2D", bad[1].arrays)  # a Conv2D where G has a Conv2DTranspose
    write_keras2_h5(tmp_path / "wrong-kind.h5", bad)
    one_line_error(invoke("import", tmp_path / "wrong-kind.h5", "--arch", "mnist-dcgan", *out), "Conv2DTranspose")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n junk")
    one_line_error(invoke("import", tmp_path / "junk.h5", "--arch", "mnist-dcgan", *out), "junk.h5")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("hello.txt", "hi")
    one_line_error(invoke("import", tmp_path / "other.keras", "--arch", "mnist-dcgan", *out), "not a .keras model")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    one_line_error(invoke("import", tmp_path / "plain.h5", "--arch", "mnist-dcgan", *out), "not a Keras")
    one_line_error(invoke("import", tmp_path / "missing.h5", "--arch", "mnist-dcgan", *out), "does not exist")
    with h5py.File(tmp_path / "mnist.h5", "a") as f:  # a layer whose listed array is missing
        del f["model_weights/dense/dense/kernel:0"]
    one_line_error(invoke("import", tmp_path / "mnist.h5", "--arch", "mnist-dcgan", *out), "damaged Keras file")
    assert not (tmp_path / "g.safetensors").exists()


def test_imported_generator_exports_and_samples(tmp_path):
    write_keras2_h5(tmp_path / "generator_model_200.h5", keras_layers_of(_trained_like("mnist-dcgan")))
    assert invoke("import", tmp_path / "generator_model_200.h5", "--arch", "mnist-dcgan", "--out", tmp_path / "generator.safetensors").exit_code == 0
    result = invoke("sample", "--weights", tmp_path / "generator.safetensors", "--n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output


def test_against_keras_itself(tmp_path):
    """Where TensorFlow is installed: a Keras model's own predictions and the imported generator's agree."""
    keras = pytest.importorskip("tensorflow").keras
    layers = keras.layers
    latent = 100
    model = keras.Sequential([
        keras.Input((latent,)), layers.Dense(128 * 7 * 7), layers.LeakyReLU(0.2), layers.Reshape((7, 7, 128)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"), layers.LeakyReLU(0.2),
        layers.Conv2D(1, 7, activation="sigmoid", padding="same"),
    ])
    model.save(tmp_path / "g.keras")
    assert invoke("import", tmp_path / "g.keras", "--arch", "mnist-dcgan", "--out", tmp_path / "g.safetensors").exit_code == 0
    imported, _ = load_generator(tmp_path / "g.safetensors")
    z = np.random.default_rng(0).standard_normal((4, latent)).astype(np.float32)
    expected = model.predict(z, verbose=0).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    with torch.no_grad():
        np.testing.assert_allclose(imported(torch.from_numpy(z)).numpy(), expected, atol=1e-5, rtol=0)


def test_without_h5py_the_command_says_what_to_install(tmp_path, monkeypatch):
    import sys

    write_keras2_h5(tmp_path / "g.h5", keras_layers_of(_trained_like("mnist-dcgan")))
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if not installed
    result = invoke("import", tmp_path / "g.h5", "--arch", "mnist-dcgan", "--out", tmp_path / "g.safetensors")
    one_line_error(result, "h5py", "pip install 'ganctl[keras-import]'")
