"""The command line through Typer's CliRunner: exit codes, stdout/stderr, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ganctl.cli import app

runner = CliRunner()


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys, ganctl.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_command_help_shows_an_example():
    commands = [c.name for c in app.registered_commands]
    assert {"list", "inspect-arch"} <= set(commands)
    for command in commands:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert "Example" in result.stdout, command


def test_help_examples_are_whole_lines_and_options_show_metavars():
    import re

    for command in [c.name for c in app.registered_commands]:
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0
        lines = [line.strip() for line in result.stdout.splitlines()]
        docstring = app.registered_commands[[c.name for c in app.registered_commands].index(command)].callback.__doc__
        examples = [line.strip() for line in docstring.splitlines() if line.strip().startswith("ganctl ")]
        examples += [line.split("Example: ", 1)[1].strip() for line in docstring.splitlines() if "Example: " in line]
        assert examples, command
        for example in examples:  # each on one line of an 80-column --help, to copy whole
            assert example in lines or f"Example: {example}" in lines, (command, example)
        # no Python type labels (<int>, <bool>, <list[str]>): a metavar, or nothing for a flag
        assert not re.search(r"<(int|float|str|bool|path|Path|list\[\w+\])>", result.stdout), command


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("ganctl ")


def test_inspect_arch_overview_lists_every_architecture():
    result = runner.invoke(app, ["inspect-arch", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["cifar-dcgan"]["generator_params"] == 1_466_115
    assert rows["cifar-dcgan"]["image_shape"] == [3, 32, 32]
    assert rows["paper-dcgan"]["generator_flops_per_image"] > 0
    table = runner.invoke(app, ["inspect-arch"], env={"COLUMNS": "160"})
    assert "mnist-dcgan" in table.stdout and "1,164,289" in table.stdout


def test_inspect_arch_json_has_the_documented_keys():
    result = runner.invoke(app, ["inspect-arch", "cifar-dcgan", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    for network in ("generator", "discriminator"):
        assert {"layers", "trainable_params", "non_trainable_params", "total_params", "flops_per_image"} <= set(data[network])
    g = data["generator"]
    assert g["total_params"] == 1_466_115
    assert g["layers"][-1]["output_shape"] == [3, 32, 32]
    # the guide's figure: 0.192 GFLOP per image for the generator, 0.070 for the discriminator
    assert round(g["flops_per_image"] / 1e9, 3) == 0.192
    assert round(data["discriminator"]["flops_per_image"] / 1e9, 3) == 0.070


def test_inspect_arch_table_is_keras_style():
    result = runner.invoke(app, ["inspect-arch", "tf-dcgan"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "Trainable params: 2,305,472" in result.stdout
    assert "Non-trainable params: 25,472" in result.stdout
    assert "(None, 14, 14, 64)" in result.stdout  # Keras' order, channels last
    assert "Total size: " in result.stdout and " MB" in result.stdout
    torch_order = runner.invoke(app, ["inspect-arch", "tf-dcgan", "--torch-shapes"], env={"COLUMNS": "160"})
    assert "(None, 64, 14, 14)" in torch_order.stdout and "(None, 14, 14, 64)" not in torch_order.stdout


def test_inspect_arch_names_layers_as_keras_does():
    result = runner.invoke(app, ["inspect-arch", "mnist-dcgan"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for name in ("dense (Linear)", "conv2d_transpose (ConvTranspose2d)", "conv2d_transpose_1 (ConvTranspose2d)",
                 "leaky_re_lu_2 (LeakyReLU)", "reshape (Unflatten)"):  # fmt: skip
        assert name in result.stdout, name
    # Keras' figure for this generator: 1,164,289 float32 parameters, 4.44 MB
    assert "Total params: 1,164,289 (4.44 MB)" in result.stdout


def test_inspect_arch_overview_fits_80_columns():
    result = runner.invoke(app, ["inspect-arch"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    # one table row per architecture (no cell many lines tall), the descriptions after it
    for name in ("cifar-dcgan", "sngan-resnet", "tf-dcgan"):
        assert sum(line.startswith(f"│ {name} ") for line in lines) == 1
        assert any(line.startswith(f"{name}: ") for line in lines)


def test_inspect_arch_at_another_size_and_channels():
    result = runner.invoke(app, ["inspect-arch", "paper-dcgan", "--image-size", "28", "--channels", "1", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["generator"]["layers"][-1]["output_shape"] == [1, 28, 28]
    assert data["image_size"] == 28


def test_inspect_arch_of_the_class_conditional_networks():
    plain = json.loads(runner.invoke(app, ["inspect-arch", "sngan-cnn-small", "--json"]).stdout)
    result = runner.invoke(app, ["inspect-arch", "sngan-cnn-small", "--classes", "10", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    # G: conditional batch norm drops BN's own scale and shift (2 x 240) for a gain and a bias
    # embedding per class (2 x 10 x 240); D: a projection, one 2,048-d embedding per class
    assert data["generator"]["total_params"] == plain["generator"]["total_params"] - 480 + 4_800
    assert data["discriminator"]["total_params"] == plain["discriminator"]["total_params"] + 10 * 2_048
    assert data["num_classes"] == 10
    table = runner.invoke(app, ["inspect-arch", "sngan-cnn-small", "--classes", "3"], env={"COLUMNS": "160"})
    assert "class-conditional, 3 classes" in table.stdout and "Embedding" in table.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["inspect-arch", "cifar-dcgn"], "did you mean 'cifar-dcgan'"),
        (["inspect-arch", "sngan-cnn", "--classes", "1"], "needs at least 2 classes"),
        (["inspect-arch", "paper-dcgan", "--image-size", "30"], "cannot be built at 30 px"),
        (["inspect-arch", "cifar-dcgan", "--image-size", "64"], "cannot be built at 64 px"),
        (["inspect-arch", "mnist-dcgan", "--channels", "4"], "cannot be built with 4 channels"),
        (["inspect-arch", "mnist-dcgan", "--latent-dim", "0"], "latent size must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1


def test_list_json_shows_sources():
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    arch = {a["name"]: a for a in data["architectures"]}["cifar-dcgan"]
    assert arch["distribution"] == "ganctl" and arch["plugin"] == "seed-architectures"
    assert {"bce", "lsgan"} <= {loss["name"] for loss in data["losses"]}


def test_list_filters_with_a_wildcard():
    result = runner.invoke(app, ["list", "*dcgan", "--json"])
    names = [a["name"] for a in json.loads(result.stdout)["architectures"]]
    assert names == ["cifar-dcgan", "mnist-dcgan", "paper-dcgan", "tf-dcgan"]
    assert json.loads(result.stdout)["losses"] == []
