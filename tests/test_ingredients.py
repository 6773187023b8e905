"""The rebuilt training step's ingredients: regularisers, EMA, DiffAugment, spectral norm, lazy
regularisation, LR decay, phases; each against a hand computation or a property, then through
`ganctl train` with everything on at once."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganctl.cli import app
from ganctl.recipe import Recipe
from ganctl.registry import LOSSES, REGULARIZERS
from ganctl.training.augment import DiffAugment
from ganctl.training.batches import RealBatches
from ganctl.training.ema import GeneratorEMA
from ganctl.training.assembly import make_adam
from ganctl.training.stats import StepStats
from ganctl.training.step import Networks, Streams, TrainStep
from ganctl.networks.weights import load_generator, read_info
from tests.runfolders import assert_resume_is_bitwise
from tests.helpers import QUICK, train
from tests.helpers import read_tensors as tensors

runner = CliRunner()
EVERYTHING = ["--reg", "r1", "--reg-every", "4", "--reg-weight", "1", "--ema-kimg", "0.1", "--d-steps", "5",
              "--augment", "color,translation,cutout", "--lr-decay", "linear", "--spectral-norm", "d"]


# --- regularisers against hand computations ------------------------------------------------


def square_sum_critic(images: torch.Tensor) -> torch.Tensor:
    """D(x) = sum(x^2) per image: its input gradient is 2x."""
    return images.square().sum(dim=(1, 2, 3)).unsqueeze(1)


def test_r1_is_the_squared_gradient_norm_on_reals():
    real = torch.randn(4, 3, 5, 5)
    value = REGULARIZERS.get("r1").obj().value(square_sum_critic, real, torch.zeros_like(real), torch.Generator())
    expected = (2 * real).square().sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(value, expected)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(75, 1))  # gradient = the weight row, for every image
    value = REGULARIZERS.get("r1").obj().value(linear, real, real, torch.Generator())
    torch.testing.assert_close(value, linear[1].weight.square().sum())
    assert REGULARIZERS.get("r1").obj.factor == 0.5  # the loss is gamma / 2 * R1


def test_r2_is_r1_on_fakes():
    fake = torch.randn(4, 3, 5, 5)
    value = REGULARIZERS.get("r2").obj().value(square_sum_critic, torch.zeros_like(fake), fake, torch.Generator())
    torch.testing.assert_close(value, (2 * fake).square().sum(dim=(1, 2, 3)).mean())


def test_gradient_penalty_on_interpolates():
    real, fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    value = REGULARIZERS.get("gp").obj().value(square_sum_critic, real, fake, torch.Generator().manual_seed(3))
    mix = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    between = mix * real + (1 - mix) * fake
    expected = ((2 * between).flatten(1).norm(dim=1) - 1).square().mean()
    torch.testing.assert_close(value, expected)


def test_penalty_is_differentiable_with_respect_to_d():
    critic = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(16, 1))
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    for name in REGULARIZERS.names():
        critic.zero_grad()
        REGULARIZERS.get(name).obj().value(critic, real, fake, torch.Generator()).backward()
        weights = [p for p in critic.parameters() if p.dim() > 1]  # a bias does not move an input gradient
        assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights), name


# --- EMA ------------------------------------------------------------------------------------


def test_ema_after_k_updates_equals_the_closed_form():
    source = nn.Linear(1, 1, bias=False)
    source.register_buffer("count", torch.zeros(1))
    with torch.no_grad():
        source.weight.fill_(0.0)
    ema = GeneratorEMA(source, half_life_kimg=0.064, batch_size=32, rampup=0.0, start_step=0)
    beta = 0.5 ** (32 / 64)
    assert ema.beta(1) == pytest.approx(beta)
    values = [1.0, 3.0, -2.0, 5.0, 0.5]
    for step, v in enumerate(values, start=1):
        with torch.no_grad():
            source.weight.fill_(v)
            source.count.fill_(step)
        ema.update(step)
    k = len(values)
    expected = sum((1 - beta) * beta ** (k - i) * v for i, v in enumerate(values, start=1))  # the start was 0
    assert ema.average.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema.average.count.item() == k  # buffers are copied, not averaged


def test_ema_ramp_up_and_start():
    ema = GeneratorEMA(nn.Linear(1, 1), half_life_kimg=10, batch_size=64, rampup=0.05, start_step=3)
    assert ema.beta(3) == 0.0  # before the start: a copy
    # early on the half-life is capped at 5 % of the images seen: 4 steps * 64 * 0.05 = 12.8 images
    assert ema.beta(4) == pytest.approx(0.5 ** (64 / 12.8))
    assert ema.beta(10**6) == pytest.approx(0.5 ** (64 / 10_000))


# --- DiffAugment ----------------------------------------------------------------------------


def test_augmentation_is_identical_for_a_seed_and_differentiable():
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    policy = "color,translation,cutout"
    a = DiffAugment(policy, (-1, 1), torch.device("cpu"), seed=5)(images)
    b = DiffAugment(policy, (-1, 1), torch.device("cpu"), seed=5)(images)
    c = DiffAugment(policy, (-1, 1), torch.device("cpu"), seed=6)(images)
    assert torch.equal(a, b) and not torch.equal(a, c)
    x = images.clone().requires_grad_(True)
    DiffAugment(policy, (-1, 1), torch.device("cpu"), seed=5)(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_translation_shifts_and_cutout_blanks_a_half_size_square():
    images = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1) / 16
    moved = DiffAugment("translation", (0, 1), torch.device("cpu"), seed=0)(images)
    # each output is the input shifted by at most 1 pixel (1/8 of 4, rounded) with the midpoint coming in
    assert not torch.equal(moved, images) and moved.shape == images.shape
    assert set(moved.unique().tolist()) <= set((images[0].flatten().tolist())) | {0.5}
    ones = torch.ones(32, 3, 8, 8)
    cut = DiffAugment("cutout", (-1, 1), torch.device("cpu"), seed=0)(ones)
    blanked = (cut == 0).all(dim=1).flatten(1).sum(dim=1)  # cut pixels are set to the middle of [-1, 1]
    assert blanked.max() == 16 and blanked.min() >= 4  # a 4x4 square, partly off the edge at times


def test_unknown_augmentation_is_refused():
    from ganctl.errors import GanctlError

    with pytest.raises(GanctlError, match="unknown augmentation 'flip'"):
        DiffAugment("color,flip", (-1, 1), torch.device("cpu"), seed=0)


# --- spectral norm and initialisation ---------------------------------------------------------


def test_spectral_norm_makes_the_largest_singular_value_about_one():
    from ganctl.networks.spectral import apply_spectral_norm

    torch.manual_seed(0)
    net = apply_spectral_norm(nn.Sequential(nn.Linear(20, 30), nn.Conv2d(3, 8, 3), nn.ConvTranspose2d(8, 4, 4)))
    with torch.no_grad():
        for _ in range(10):  # a few power iterations: one per training-mode forward
            net[0](torch.zeros(1, 20))
            net[1](torch.zeros(1, 3, 5, 5))
            net[2](torch.zeros(1, 8, 3, 3))
    net.eval()
    for layer, dim in ((net[0], 0), (net[1], 0), (net[2], 1)):
        weight = layer.weight.detach()
        matrix = weight.movedim(dim, 0).flatten(1)
        assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=2e-2)


def test_initialisation_reaches_weights_under_spectral_norm():
    from ganctl.networks.init import initialise
    from ganctl.networks.spectral import apply_spectral_norm

    torch.manual_seed(0)
    layer = apply_spectral_norm(nn.Sequential(nn.Conv2d(64, 64, 3)))[0]
    before = layer.parametrizations.weight.original.clone()
    initialise(layer, "dcgan")
    after = layer.parametrizations.weight.original
    assert not torch.equal(before, after)
    assert after.std().item() == pytest.approx(0.02, rel=0.1)  # N(0, 0.02), as the scheme says


# --- lazy regularisation, phases -----------------------------------------------------------


def test_lazy_regularisation_adjusts_adam():
    recipe = Recipe(beta1=0.5, beta2=0.99)
    optimizer = make_adam(nn.Linear(2, 2), recipe, 2e-3, torch.device("cpu"), lazy_interval=16)
    group = optimizer.param_groups[0]
    ratio = 16 / 17
    assert group["lr"] == pytest.approx(2e-3 * ratio)
    assert group["betas"] == pytest.approx((0.5**ratio, 0.99**ratio))
    plain = make_adam(nn.Linear(2, 2), recipe, 2e-3, torch.device("cpu")).param_groups[0]
    assert plain["lr"] == 2e-3 and plain["betas"] == (0.5, 0.99)


def tiny_step(recipe: Recipe, regularizer=None) -> TrainStep:
    G = nn.Sequential(nn.Linear(recipe.latent_dim, 12), nn.Tanh(), nn.Unflatten(1, (3, 2, 2)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    real = RealBatches(torch.randint(0, 256, (32, 3, 2, 2), dtype=torch.uint8), batch=recipe.batch_size // 2,
                       sampling="random", pixel_range=(-1, 1), device=torch.device("cpu"), seed=0)
    nets = Networks(G, D, torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters()))
    streams = Streams(real, latents=torch.Generator(), penalty=torch.Generator())
    return TrainStep(nets, streams, recipe=recipe, loss=LOSSES.get(recipe.loss).obj(), regularizer=regularizer,
                     stats=StepStats(), device=torch.device("cpu"), amp=False)


@pytest.mark.parametrize(
    "mode,d_steps,reg_every,expected",
    [
        ("separate", 1, 1, ["D_real", "D_fake", "G"]),
        ("separate", 2, 4, ["D_real", "D_fake", "D_real", "D_fake", "G", "D_reg"]),
        ("joint", 3, 1, ["D", "D", "D", "G"]),
        ("simultaneous", 1, 1, ["GD"]),
        ("simultaneous", 3, 16, ["D", "D", "GD", "D_reg"]),
    ],
)
def test_phase_lists(mode, d_steps, reg_every, expected):
    recipe = Recipe(d_update=mode, d_steps=d_steps, reg_every=reg_every, latent_dim=4, batch_size=8, regularizer="r1")
    step = tiny_step(recipe, REGULARIZERS.get("r1").obj())
    assert [p.name for p in step.phases] == expected
    lazy = [p for p in step.phases if p.name == "D_reg"]
    assert all(p.every == reg_every for p in lazy)


def test_lazy_phase_runs_every_n_iterations_and_reports_its_statistic():
    recipe = Recipe(d_update="joint", latent_dim=4, batch_size=8, regularizer="r1", reg_every=3)
    step = tiny_step(recipe, REGULARIZERS.get("r1").obj())
    for i in range(6):
        step(i)
    assert step.stats.counts["r1"] == 2  # iterations 0 and 3
    assert step.stats.counts["g_loss"] == 6


def test_the_step_makes_no_host_sync_and_reports_named_device_scalars():
    recipe = Recipe(d_update="separate", latent_dim=4, batch_size=8)
    step = tiny_step(recipe)
    step(0)
    assert list(step.stats.sums) == ["d_loss_real", "d_acc_real", "d_loss_fake", "d_acc_fake", "g_loss"]
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in step.stats.sums.values())


def test_d_input_scale_multiplies_what_d_sees_and_penalties_stay_in_pixel_units():
    recipe = Recipe(d_update="joint", latent_dim=4, batch_size=8)
    plain, scaled = tiny_step(recipe), tiny_step(recipe.replace(d_input_scale=4.0))
    scaled.D.load_state_dict(plain.D.state_dict())
    images = torch.rand(5, 3, 2, 2) * 2 - 1
    bias = plain.D[1].bias
    torch.testing.assert_close(scaled.run_D(images) - bias, 4 * (plain.run_D(images) - bias))  # D linear: 4x its input
    real = images.requires_grad_()
    grad_plain, = torch.autograd.grad(plain.run_D(real, for_penalty=True).sum(), real)
    grad_scaled, = torch.autograd.grad(scaled.run_D(real, for_penalty=True).sum(), real)
    torch.testing.assert_close(grad_scaled, 4 * grad_plain)  # R1 sees the gradient per pixel unit


@pytest.mark.parametrize("value", ["0", "-2", "nan"])
def test_a_d_input_scale_that_is_not_positive_is_one_line(tmp_path, value):
    result = train(*QUICK, "--arch", "sngan-cnn-small", "--max-steps", "1", "--out", str(tmp_path / "run"), "--d-input-scale", value)
    assert result.exit_code != 0 and "--d-input-scale must be a" in result.stderr  # a positive (finite) number
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


# --- through `ganctl train` ----------------------------------------------------------------


def test_everything_on_resumes_bitwise(tmp_path):
    args = ["--arch", "mnist-dcgan", *QUICK, *EVERYTHING, "--checkpoint-every", "3", "--seed", "11"]
    assert_resume_is_bitwise(tmp_path, args, stop=5, end=10, files=("generator.safetensors", "generator-raw.safetensors"))
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert {"r1", "lr_g", "lr_d", "d_acc_real"} <= last.keys()
    assert last["lr_g"] < 2e-4  # decaying linearly towards 0


def test_ema_run_writes_averaged_and_raw_generators(tmp_path):
    run = tmp_path / "run"
    result = train("--arch", "cifar-dcgan", *QUICK, "--ema-kimg", "0.05", "--max-steps", "6", "--out", str(run))
    assert result.exit_code == 0, result.stderr
    ema, raw = read_info(run / "generator.safetensors"), read_info(run / "generator-raw.safetensors")
    assert ema.extra["weights"] == "ema" and raw.extra["weights"] == "raw"
    a, b = tensors(run / "generator.safetensors"), tensors(run / "generator-raw.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    snapshot = next((run / "snapshots").iterdir(), None)
    assert snapshot is None or read_info(snapshot).extra["weights"] == "ema"


def test_spectral_norm_on_g_is_baked_into_a_plain_generator_file(tmp_path):
    run = tmp_path / "run"
    result = train("--arch", "paper-dcgan", "--image-size", "32", *QUICK, "--spectral-norm", "both", "--max-steps", "3",
                   "--out", str(run))
    assert result.exit_code == 0, result.stderr
    assert not any("parametrizations" in k for k in tensors(run / "generator.safetensors"))
    generator, info = load_generator(run / "generator.safetensors")
    assert generator(torch.randn(2, info.latent_dim)).shape == (2, 3, 32, 32)


def test_spectral_norm_on_g_with_ema_saves_both_generators(tmp_path):
    # two bakes in one run (the EMA's file, then the raw one): the first must not break the second
    run = tmp_path / "run"
    result = train("--arch", "sngan-upconv-small", *QUICK, "--spectral-norm", "both", "--ema-kimg", "1", "--max-steps", "3",
                   "--out", str(run))
    assert result.exit_code == 0, result.stderr
    for name in ("generator.safetensors", "generator-raw.safetensors"):
        generator, info = load_generator(run / name)
        assert generator(torch.randn(2, info.latent_dim)).shape == (2, 3, 32, 32)


def test_wgan_gp_trains_and_reports_no_accuracy(tmp_path):
    run = tmp_path / "run"
    result = train("--arch", "tf-dcgan", *QUICK, "--loss", "wgan", "--reg", "gp", "--d-steps", "2", "--max-steps", "4",
                   "--out", str(run))
    assert result.exit_code == 0, result.stderr
    record = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert "gp" in record and "d_acc_real" not in record and "d_loss_real" in record


def test_dry_run_shows_the_ingredients_resolved(tmp_path):
    result = train("--arch", "cifar-dcgan", *EVERYTHING, "--dry-run", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0
    for text in ("regularizer", "r1", "reg_every", "ema_kimg", "0.1", "color,translation,cutout", "linear", "d_steps"):
        assert text in result.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reg", "r3"], "unknown regularizer 'r3'"),
        (["--augment", "color,flip"], "unknown augmentation 'flip'"),
        (["--reg", "r1", "--reg-weight", "-1"], "--reg-weight must be a non-negative number"),
        (["--reg", "r1", "--reg-every", "-2"], "--reg-every must be at least 1"),
        (["--ema-kimg", "0"], "--ema-kimg (the EMA's half-life in thousands of images) must be positive"),
        (["--ema-kimg", "-5"], "must be positive"),
        (["--d-steps", "0"], "--d-steps must be at least 1"),
        (["--lr-decay", "cosine"], "unknown --lr-decay 'cosine'"),
        (["--spectral-norm", "x"], "unknown --spectral-norm 'x'"),
    ],
)
def test_bad_ingredients_are_one_line_before_the_run_folder(args, message, tmp_path):
    result = train("--arch", "cifar-dcgan", *QUICK, *args, "--out", str(tmp_path / "run"))
    assert result.exit_code != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_list_shows_the_regularizers():
    result = runner.invoke(app, ["list", "--json"])
    names = [r["name"] for r in json.loads(result.stdout)["regularizers"]]
    assert names == ["gp", "r1", "r2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch,extra",
    [
        ("tf-dcgan", []),
        ("paper-dcgan", ["--image-size", "32"]),
        ("cifar-dcgan", []),
        ("mnist-dcgan", EVERYTHING),
        ("tf-dcgan", ["--reg", "gp", "--loss", "wgan", "--ema-kimg", "0.1", "--augment", "color,translation"]),
    ],
)
def test_compile_works_with_every_ingredient(fresh_dynamo, arch, extra, tmp_path):
    result = train("--arch", arch, *QUICK, *extra, "--compile", "--max-steps", "3", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.stderr
