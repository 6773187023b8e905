"""Every subcommand with hostile numbers (0, negative, huge, inf, nan) and markup-bearing text:
a non-zero exit or success, never a traceback, and the user's text printed literally."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganctl.cli import app
from ganctl.registry import ARCHITECTURES
from ganctl.networks.weights import save_generator

runner = CliRunner()
HOSTILE_NUMBERS = ["0", "-1", "-9223372036854775809", "100000000000000000000000000000", "1e308", "inf", "-inf", "nan"]


class TookTooLong(BaseException):
    """A hostile number was accepted and work started on it."""


@pytest.fixture
def world(tmp_path):
    arch = ARCHITECTURES.get("mnist-dcgan").obj
    args = arch.arch_args(latent_dim=4)
    torch.manual_seed(0)
    generator = tmp_path / "g.safetensors"
    save_generator(generator, arch.build_generator(**args), architecture="mnist-dcgan", arch_args=args, pixel_range=(0.0, 1.0))
    z = tmp_path / "z.npy"
    np.save(z, np.random.default_rng(0).standard_normal((4, 4)).astype("float32"))
    return tmp_path, generator, z


def commands(tmp: Path, generator: Path, z: Path) -> dict[str, tuple[list[str], list[str]]]:
    """command line, its numeric options"""
    out = str(tmp / "out.png")
    return {
        "train": (["train", "--arch", "mnist-dcgan", "--dry-run", "--out", str(tmp / "run")], [
            "--limit", "--image-size", "--channels", "--epochs", "--batch-size", "--lr", "--g-lr", "--d-lr", "--beta1",
            "--beta2", "--latent-dim", "--label-smoothing", "--d-steps", "--reg-weight", "--reg-every", "--ema-kimg",
            "--ema-start", "--seed", "--max-steps", "--sample-every", "--checkpoint-every", "--keep-checkpoints",
            "--log-every", "--eval-every", "--eval-n"]),
        "sample": (["sample", "--weights", str(generator), "--out", out, "--n", "4", "--device", "cpu", "--quiet"],
                   ["--n", "--seed", "--z-value", "--nrow", "--padding", "--scale", "--batch-size"]),
        "latent-walk": (["latent-walk", "--weights", str(generator), "--out", str(tmp / "walk.gif"), "--steps", "2", "--points", "2", "--device", "cpu", "--quiet"],
                        ["--steps", "--points", "--rows", "--seed", "--fps", "--scale", "--padding", "--batch-size"]),
        "latent-arith": (["latent-arith", "--weights", str(generator), "--z-file", str(z), "--concept", "a=0,1", "--concept", "b=2",
                          "--expr", "a - b", "--out", out, "--variations", "1", "--device", "cpu", "--quiet"],
                         ["--variations", "--noise", "--seed", "--scale"]),
        "inspect-arch": (["inspect-arch", "mnist-dcgan"], ["--image-size", "--channels", "--latent-dim"]),
        "bench": (["bench", "--arch", "mnist-dcgan", "--device", "cpu", "--steps", "1", "--warmup", "0", "--batch-size", "2"],
                  ["--steps", "--warmup", "--batch-size"]),
        "eval": (["eval", "--weights", str(generator), "--dataset", "synthetic", "--n", "2", "--real-n", "2", "--device", "cpu"],
                 ["--n", "--real-n", "--image-size", "--channels", "--seed", "--batch-size"]),
    }


def invoke(args: list[str], seconds: int = 60):
    def alarm(signum, frame):
        raise TookTooLong(" ".join(args))

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return runner.invoke(app, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["train", "sample", "latent-walk", "latent-arith", "inspect-arch", "bench", "eval"])
def test_hostile_numbers_are_refused_in_one_line_or_harmless(command, world):
    base, options = commands(*world)[command]
    for option in options:
        for value in HOSTILE_NUMBERS:
            args = [*base]
            if option in args:  # replace the value the base line gives
                args[args.index(option) + 1] = value
            else:
                args += [option, value]
            result = invoke(args)
            no_traceback(result)
            if result.exit_code != 0:
                assert result.stderr.strip(), (args, result.output)


MARKUP = ["[/x]", "gen[red]x", "[bold]b[/bold]"]


@pytest.mark.parametrize("text", MARKUP)
def test_markup_in_names_is_printed_literally(text, world):
    tmp, generator, z = world
    for args in (["train", "--arch", text], ["train", "--arch", "mnist-dcgan", "--dataset", text],
                 ["sample", "--weights", str(tmp / text)], ["inspect-arch", text], ["runs", "--root", str(tmp / text)],
                 ["train", "--arch", "mnist-dcgan", "--loss", text, "--out", str(tmp / "run")]):
        result = invoke(args)
        no_traceback(result)
        assert text in (result.stderr if result.exit_code else result.stdout), (args, result.output)


def test_markup_in_an_output_name_is_printed_literally(world):
    tmp, generator, z = world
    out = tmp / "gen[red]x.png"
    result = invoke(["sample", "--weights", str(generator), "--out", str(out), "--n", "4", "--device", "cpu", "--seed", "1"])
    no_traceback(result)
    assert result.exit_code == 0 and out.exists() and "gen[red]x.png" in result.output


@pytest.mark.parametrize("option", ["--dataset", "--loss"])
@pytest.mark.parametrize("text", MARKUP)
def test_markup_in_the_printed_config_is_literal(text, option):
    result = invoke(["train", "--arch", "mnist-dcgan", option, text, "--dry-run"])
    no_traceback(result)
    assert text in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", str(2**64)], "--seed must lie in 0 .. 2**64-1"),
        (["--seed", "-1"], "--seed must lie in 0 .. 2**64-1"),
        (["--z-value", "nan"], "--z-value must be a finite number"),
        (["--batch-size", str(2**70)], "--batch-size must be at most 2**63-1"),
    ],
)
def test_numbers_are_bounded_before_work_with_the_limit_in_the_message(args, message, world):
    tmp, generator, z = world
    result = invoke(["sample", "--weights", str(generator), "--out", str(tmp / "o.png"), "--device", "cpu", *args])
    no_traceback(result)
    assert result.exit_code != 0 and message in result.stderr, result.output


def test_bench_steps_are_bounded():
    result = invoke(["bench", "--arch", "mnist-dcgan", "--device", "cpu", "--steps", str(10**9)])
    assert result.exit_code != 0 and "at most 100,000" in result.stderr
