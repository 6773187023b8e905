"""ganctl.options: each option of `ganctl train` declared once, and what is made from the table
(the command's options, the overrides, the resume rule, config.check); the plugins' own names
for their statistics; health advice that reads the recipe."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ganctl import options as opts
from ganctl.cli import app
from ganctl.errors import GanctlError
from ganctl.recipe import D_UPDATES, INITS, LR_DECAYS, SAMPLINGS, SPECTRAL_NORMS, Recipe
from ganctl.training.config import TrainConfig, check

runner = CliRunner()
SPECIALS = {"lr", "resume", "dry_run", "verbose", "batch_per_gpu", "dist_backend"}  # the options that set no field


def fields(on: str) -> set[str]:
    return {f.name for f in dataclasses.fields(Recipe if on == "recipe" else TrainConfig)}


@pytest.mark.parametrize("on", ["recipe", "run"])
def test_every_field_is_declared_exactly_once(on):
    declared = [o.field for o in opts.OPTIONS if o.on == on]
    assert len(declared) == len(set(declared)), "a field declared twice"
    assert set(declared) | opts.NOT_OPTIONS[on] == fields(on)
    assert not set(declared) & opts.NOT_OPTIONS[on]


def test_every_command_line_option_sets_a_real_field_or_is_a_known_special():
    for option in opts.COMMAND_LINE:
        if option.field is None:
            assert option.param in SPECIALS and option.on is None
        else:
            assert option.field in fields(option.on), option
    assert SPECIALS <= set(opts.BY_PARAM)


def test_the_command_s_options_are_the_table_s():
    command = typer.main.get_command(app).commands["train"]
    by_name = {p.name: p for p in command.params}
    assert list(by_name) == [o.param for o in opts.COMMAND_LINE]
    for option in opts.COMMAND_LINE:
        param = by_name[option.param]
        spelled = set(param.opts) | set(param.secondary_opts)
        assert spelled == {s for flag in option.flags for s in flag.split("/")}, option.param
        assert param.default == option.default


def test_allowed_values_come_from_the_literal_types_only():
    hints = {**typing.get_type_hints(Recipe), **typing.get_type_hints(TrainConfig)}
    literal_fields = {name for name, hint in hints.items() if typing.get_origin(hint) is typing.Literal}
    checked = {o.field: o.check for o in opts.OPTIONS if isinstance(o.check, opts.OneOf)}
    assert set(checked) == literal_fields
    for name, one_of in checked.items():
        assert one_of.values == typing.get_args(hints[name])
    assert (D_UPDATES, SAMPLINGS, INITS, LR_DECAYS, SPECTRAL_NORMS) == (
        ("separate", "joint", "simultaneous"), ("random", "shuffle"), ("keras", "dcgan", "torch"), ("constant", "linear"),
        ("none", "d", "g", "both"))  # fmt: skip


def test_overrides_are_only_the_options_given_with_lr_as_the_default_of_both_rates():
    values = {o.param: o.default for o in opts.COMMAND_LINE}
    assert opts.overrides(values) == ({}, {})
    values.update(lr=1e-3, d_lr=5e-4, reg="r1", limit=8, out=Path("/tmp/x"), no_download=True, quiet=True, seed=3, conditional=False)
    recipe, run = opts.overrides(values)
    assert recipe == {"g_lr": 1e-3, "d_lr": 5e-4, "regularizer": "r1", "conditional": False}
    assert run == {"dataset_limit": 8, "run_dir": "/tmp/x", "download": False, "quiet": True, "seed": 3}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"d_update": "x"}, "unknown d_update 'x'; use one of separate, joint, simultaneous"),
        ({"sampling": "x"}, "unknown sampling 'x'; use one of random, shuffle"),
        ({"lr_decay": "cosine"}, "unknown --lr-decay 'cosine'; use one of constant, linear"),
        ({"spectral_norm": "x"}, "unknown --spectral-norm 'x'; use one of none, d, g, both"),
        ({"sample_grid": 0}, "--sample-grid must be at least 1, not 0"),
        ({"ema_start": -1}, "--ema-start must be at least 0, not -1"),
        ({"g_lr": 0.0}, "--g-lr must be positive, not 0.0"),
        ({"ema_kimg": 0.0}, "--ema-kimg (the EMA's half-life in thousands of images) must be positive, not 0.0"),
        ({"ema_rampup": -1.0}, "--ema-rampup must be a non-negative number, not -1.0"),
        ({"d_input_scale": 0.0}, "--d-input-scale must be a positive number, not 0.0"),
        ({"label_smoothing": 1.0}, "--label-smoothing must lie in [0, 1), not 1.0"),
        ({"beta2": 1.0}, "Adam betas must lie in [0, 1), not 0.5 and 1.0"),
        ({"batch_size": 1}, "--batch-size must be at least 2 with d_update 'separate'"),
    ],
)
def test_check_speaks_of_the_option_as_before(change, message):
    with pytest.raises(GanctlError, match=None) as caught:
        check(TrainConfig(arch="mnist-dcgan", recipe=Recipe(**change)))
    assert message in str(caught.value)


def test_check_of_a_run_field_names_its_flag():
    with pytest.raises(GanctlError, match="--limit must be at least 1, not 0"):
        check(TrainConfig(arch="mnist-dcgan", recipe=Recipe(), dataset_limit=0))
    check(TrainConfig(arch="mnist-dcgan", recipe=Recipe()))  # the defaults pass


@pytest.fixture
def stored_run(tmp_path) -> Path:
    """A run folder with its config.json only: enough for the resume rule, which refuses before any work."""
    run = tmp_path / "run"
    run.mkdir()
    config = TrainConfig(arch="mnist-dcgan", recipe=Recipe(dataset="synthetic", batch_size=16), run_dir=str(run), dataset_limit=64, seed=7)
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    return run


def test_resume_refuses_a_changed_option_in_one_line_naming_exactly_the_resumable_ones(stored_run):
    result = runner.invoke(app, ["train", "--resume", "--out", str(stored_run), "--reg", "r1", "--limit", "32", "--seed", "3"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    message = lines[0]
    assert message.startswith("Error: --reg, --limit, --seed cannot change when resuming"), message
    can = message.split("; only ", 1)[1].removesuffix(" can")
    assert can.replace(" and ", ", ").split(", ") == [o.label for o in opts.RESUMABLE]
    assert {o.field for o in opts.RESUMABLE} == {
        "epochs", "kimg", "max_steps", "device", "quiet", "micro_batch", "checkpoint_every", "keep_checkpoints", "log_every", "compile",
        "eval_every", "inception", "tensorboard", "stream_data", "sync_bn"}  # fmt: skip


def test_resume_takes_the_same_options_again_and_changes_the_resumable_ones(stored_run):
    result = runner.invoke(app, ["train", "--resume", "--out", str(stored_run), "--arch", "mnist-dcgan", "--limit", "64", "--seed", "7",
                                 "--epochs", "9", "--max-steps", "5", "--dry-run"])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert table["epochs"] == ["9"] and table["max_steps"] == ["5"] and table["seed"] == ["7"]


def test_changed_on_resume_compares_with_the_stored_values():
    config = TrainConfig(arch="mnist-dcgan", recipe=Recipe(g_lr=1e-3), seed=7)
    assert opts.changed_on_resume(config, {"g_lr": 1e-3, "epochs": 3}, {"seed": 7, "device": "cpu"}) == []
    assert opts.changed_on_resume(config, {"g_lr": 2e-3, "d_lr": 2e-3}, {"arch": "tf-dcgan"}) == ["--g-lr", "--d-lr", "--arch"]


def test_help_shows_every_help_text_literally():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "2000"}, terminal_width=2000)
    assert result.exit_code == 0
    assert "pip install 'ganctl[tensorboard]'" in result.stdout
    for option in opts.COMMAND_LINE:
        assert option.help in result.stdout, option.param


def test_health_remedies_skip_what_the_recipe_uses():
    from ganctl.training.health import remedies

    plain = remedies(Recipe())
    assert all(x in plain for x in ("--d-lr", "--spectral-norm d", "--augment color,translation", "--reg r1", "--loss hinge"))
    used = remedies(Recipe(loss="hinge", spectral_norm="both", regularizer="gp", augment="translation,color"))
    assert used == "usual remedy: a lower D learning rate (--d-lr)"
    partly = remedies(Recipe(spectral_norm="d", augment="cutout"))
    assert "--spectral-norm" not in partly and "--augment cutout,color,translation" in partly and "--loss hinge" in partly
    assert "--spectral-norm d" in remedies(Recipe(spectral_norm="g"))


def test_tensorboard_tags_come_from_the_plugin():
    from ganctl import register_regularizer
    from ganctl.registry import REGULARIZERS
    from ganctl.regularizers import Regularizer
    from ganctl.runfolder.tensorboard import TAGS, tag_for

    assert not {"r1", "r2", "gp"} & set(TAGS)  # the core names no plugin's statistic
    for name in ("r1", "r2", "gp"):
        assert tag_for(name) == REGULARIZERS.get(name).obj.tensorboard_tag
    assert REGULARIZERS.get("gp").obj.display_name == "WGAN-GP"

    @register_regularizer("test-plain", description="no names of its own")
    class Plain(Regularizer):
        pass

    @register_regularizer("test-named", description="names of its own")
    class Named(Regularizer):
        display_name, tensorboard_tag = "Named", "penalty/named"

    try:
        assert (Plain.display_name, tag_for("test-plain")) == ("test-plain", "reg/test-plain")
        assert (Named.display_name, tag_for("test-named")) == ("Named", "penalty/named")
        assert Regularizer.display_name == "" and Regularizer.tensorboard_tag == ""  # the base is untouched
    finally:
        REGULARIZERS.remove("test-plain")
        REGULARIZERS.remove("test-named")
