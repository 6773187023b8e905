"""The registry and the plugin mechanism: entry points, files, failures, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ganctl.plugins as plugins
from ganctl import Recipe, register_architecture
from ganctl.cli import app
from ganctl.errors import DuplicateNameError, UnknownNameError
from ganctl.plugins import PluginSource, loading_from
from ganctl.registry import ARCHITECTURES, LOSSES
from tests.helpers import make_distribution

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "example-plugin" / "tiny_gan.py"

TINY_ARCH = '''
from torch import nn
from ganctl import Recipe, register_architecture

@register_architecture("{name}", recipe=Recipe(image_size=8, channels=1), description="a test arch")
def factory(image_size, channels, latent_dim):
    return nn.Sequential(nn.Linear(latent_dim, 64), nn.Unflatten(1, (1, 8, 8))), nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
'''


def _register(name: str, source: str) -> None:
    with loading_from(PluginSource(source)):
        register_architecture(name, recipe=Recipe(), description=f"from {source}")(lambda **kw: (None, None))


def test_lookup_wildcards_and_close_matches(fresh_plugins):
    _register("cifar-dcgan", "a")
    _register("mnist-dcgan", "a")
    _register("wgan", "a")
    assert ARCHITECTURES.names("*dcgan") == ["cifar-dcgan", "mnist-dcgan"]
    assert ARCHITECTURES.get("wgan").description == "from a"
    with pytest.raises(UnknownNameError, match="did you mean 'cifar-dcgan'"):
        ARCHITECTURES.get("cifar-dcgn")
    with pytest.raises(UnknownNameError, match="known: cifar-dcgan, mnist-dcgan, wgan"):
        ARCHITECTURES.get("zzzzzz")


def test_duplicate_name_names_both_sources(fresh_plugins):
    _register("cifar-dcgan", "first-plugin")
    with pytest.raises(DuplicateNameError, match="first-plugin.*second-plugin"):
        _register("cifar-dcgan", "second-plugin")


def test_third_party_entry_point_is_found_with_its_distribution(fresh_plugins, tmp_path, monkeypatch):
    make_distribution(
        tmp_path, "ganctl-fancy", "2.3.4", {"fancy": "fancy_plugin"}, {"fancy_plugin": TINY_ARCH.format(name="fancy-gan")}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = ARCHITECTURES.get("fancy-gan")  # looking up loads the plugins
    assert (entry.source.distribution, entry.source.version, entry.source.plugin) == ("ganctl-fancy", "2.3.4", "fancy")
    result = CliRunner().invoke(app, ["list", "--json"])
    listed = {a["name"]: a for a in json.loads(result.stdout)["architectures"]}
    assert listed["fancy-gan"]["distribution"] == "ganctl-fancy" and listed["fancy-gan"]["version"] == "2.3.4"


def test_autoload_switch_skips_third_party_but_keeps_builtins(tmp_path, monkeypatch):
    make_distribution(tmp_path, "ganctl-other", "1.0", {"other": "other_plugin"}, {"other_plugin": ""})
    monkeypatch.syspath_prepend(str(tmp_path))
    names = {ep.name for ep in plugins.discover_entry_points()}
    assert {"other", "seed-architectures", "losses"} <= names
    monkeypatch.setenv(plugins.ENV_DISABLE_AUTOLOAD, "1")
    names = {ep.name for ep in plugins.discover_entry_points()}
    assert "other" not in names and {"seed-architectures", "losses"} <= names


def test_broken_plugin_is_a_warning_and_the_rest_works(fresh_plugins, tmp_path, monkeypatch, capsys):
    make_distribution(
        tmp_path,
        "ganctl-mixed",
        "0.1",
        {"broken": "broken_plugin", "good": "good_plugin"},
        {"broken_plugin": "raise RuntimeError('kaboom')", "good_plugin": TINY_ARCH.format(name="good-gan")},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "good-gan" in ARCHITECTURES
    warning = capsys.readouterr().err
    assert "broken" in warning and "RuntimeError: kaboom" in warning
    assert "ganctl-mixed 0.1 (broken)" in [str(f.source) for f in plugins.state.failures]
    result = CliRunner().invoke(app, ["list", "--json"])
    assert "RuntimeError: kaboom" in [f["error"] for f in json.loads(result.stdout)["failed_plugins"]]


def test_duplicate_across_plugins_fails_that_plugin_only(fresh_plugins, tmp_path, monkeypatch, capsys):
    make_distribution(
        tmp_path,
        "ganctl-dupe",
        "0.1",
        {"a": "dupe_a", "b": "dupe_b"},
        {"dupe_a": TINY_ARCH.format(name="same-gan"), "dupe_b": TINY_ARCH.format(name="same-gan")},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "same-gan" in ARCHITECTURES
    warning = capsys.readouterr().err
    assert "ganctl-dupe 0.1 (a)" in warning and "ganctl-dupe 0.1 (b)" in warning


def test_file_plugin_from_option_and_environment(fresh_plugins, tmp_path, monkeypatch):
    other = tmp_path / "other_gan.py"
    other.write_text(TINY_ARCH.format(name="env-gan"))
    monkeypatch.setenv(plugins.ENV_PLUGIN_FILES, str(other))
    result = CliRunner().invoke(app, ["--plugin", str(EXAMPLE_PLUGIN), "inspect-arch", "tiny-mlp-gan", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["generator"]["total_params"] == 32 * 256 + 256 + 256 * 256 + 256
    assert ARCHITECTURES.get("env-gan").source.plugin == str(other)


def test_missing_plugin_file_is_a_warning(fresh_plugins, tmp_path, capsys):
    plugins.load_file(tmp_path / "nope.py")
    assert "no such file" in capsys.readouterr().err
    assert len(plugins.state.failures) == 1


def test_example_plugin_installs_through_an_entry_point(fresh_plugins, tmp_path, monkeypatch):
    """The plugin of docs/writing-a-plugin.md, as a package with its own entry point."""
    make_distribution(
        tmp_path, "ganctl-tiny-gan", "1.0.0", {"tiny-gan": "tiny_gan"}, {"tiny_gan": EXAMPLE_PLUGIN.read_text()}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    arch = ARCHITECTURES.get("tiny-mlp-gan")
    assert arch.source.distribution == "ganctl-tiny-gan"
    generator, discriminator = arch.obj.build()
    import torch

    assert discriminator(generator(torch.randn(2, 32))).shape == (2, 1)


def test_builtin_losses_are_registered():
    assert {"bce", "lsgan", "hinge"} <= set(LOSSES.names())
