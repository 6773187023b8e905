"""StyleGAN2: the published configurations' sizes, its layers against hand computations, the W-space
tools of ``ganctl sample``, conditional training, and the relativistic pairing loss."""

from __future__ import annotations

import json

import math

import pytest
import torch
import torch.nn.functional as F

from ganctl.registry import ARCHITECTURES, LOSSES
from tests.helpers import read_tensors, QUICK, invoke, make_generator, one_line_error, train


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Parameter counts of NVlabs stylegan2-ada-pytorch's own networks (training/networks.py), built
# as its train.py builds them: z and w 512, RGB, channel_max 512.
#   cifar:    channel_base 32768, mapping 2 layers, D architecture 'orig', 32 px
#   auto 256: channel_base 16384 (fmaps 0.5), mapping 2 layers, D 'resnet', 256 px
# The conditional cifar G (10 classes) is StudioGAN's "G 20.2 M" for StyleGAN2 on CIFAR-10.
REFERENCE = {
    ("stylegan2-cifar", 32, 0): (19_947_539, 20_720_641),
    ("stylegan2-cifar", 32, 10): (20_215_315, 23_089_664),
    ("stylegan2", 256, 0): (23_191_522, 24_001_089),
}


@pytest.mark.parametrize("name,size,classes", list(REFERENCE))
def test_parameter_counts_match_the_reference_code(name, size, classes):
    G, D = ARCHITECTURES.get(name).obj.build(image_size=size, num_classes=classes)
    assert (params(G), params(D)) == REFERENCE[(name, size, classes)]


def test_the_cifar_counts_by_hand():
    """The unconditional cifar G from its layer shapes (512 channels at every resolution, 8 px up to 32)."""
    c, w = 512, 512
    mapping = 2 * (w * w + w)
    affine = w * c + c
    conv = affine + c * c * 9 + 1 + c  # style, weight, noise strength, bias
    torgb = affine + 3 * c + 3
    const = c * 16
    synthesis = const + conv + torgb + 3 * (2 * conv + torgb)  # 4 px: one conv; 8, 16, 32 px: two
    G, _ = ARCHITECTURES.get("stylegan2-cifar").obj.build()
    assert params(G) == mapping + synthesis


def test_recipes_are_the_published_ones():
    from ganctl_plugins.archs.stylegan2 import auto_spec

    cifar = ARCHITECTURES.get("stylegan2-cifar").obj.recipe
    assert (cifar.batch_size, cifar.reg_weight, cifar.ema_kimg, cifar.ema_rampup) == (64, 0.01, 500.0, 0.05)
    assert (cifar.g_lr, cifar.beta1, cifar.beta2, cifar.adam_eps, cifar.loss, cifar.regularizer, cifar.reg_every) == (
        0.0025, 0.0, 0.99, 1e-8, "bce", "r1", 16)
    auto = ARCHITECTURES.get("stylegan2").obj.recipe
    assert (auto.image_size, auto.batch_size, auto.ema_kimg) == (256, 16, 5.0)
    assert auto.reg_weight == pytest.approx(0.8192)
    # train.py's formulas at the other sizes, one GPU (docs/stylegan2.md lists them)
    assert auto_spec(64) == {"batch": 32, "mbstd": 4, "channel_base": 16384, "lr": 0.0025, "gamma": pytest.approx(0.0256), "ema_kimg": 10.0}
    assert auto_spec(128)["gamma"] == pytest.approx(0.1024)


def test_a_modulated_convolution_by_hand():
    """One image, 2 -> 1 channels, 1x1 kernel: out = sum_i w_i s_i x_i / sqrt(sum_i (w_i s_i)^2 + 1e-8)."""
    from ganctl_plugins.archs.stylegan2_layers import modulated_conv2d

    x = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (1, 2, 1, 2)
    weight = torch.tensor([[[[2.0]], [[1.0]]]])  # (1, 2, 1, 1)
    styles = torch.tensor([[0.5, 3.0]])
    ws = [2.0 * 0.5, 1.0 * 3.0]
    norm = math.sqrt(ws[0] ** 2 + ws[1] ** 2 + 1e-8)
    expected = torch.tensor([[[[(1 * 1 + 3 * 3) / norm, (1 * 2 + 3 * -1) / norm]]]])
    for fused in (True, False):
        assert torch.allclose(modulated_conv2d(x, weight, styles, fused=fused), expected)
    undemodulated = modulated_conv2d(x, weight, styles, demodulate=False)
    assert torch.allclose(undemodulated, expected * norm)


@pytest.mark.parametrize("transposed", [False, True])
def test_fused_and_unfused_modulated_convolutions_agree(transposed):
    """Inference's grouped convolution and training's scaled activations (plain and up-sampling)."""
    from ganctl_plugins.archs.stylegan2_layers import modulated_conv2d

    g = torch.Generator().manual_seed(0)
    x, weight, styles = torch.randn(3, 4, 6, 6, generator=g), torch.randn(5, 4, 3, 3, generator=g), torch.randn(3, 4, generator=g)
    fused = modulated_conv2d(x, weight, styles, fused=True, padding=1, transposed=transposed)
    assert fused.shape == (3, 5, 13, 13) if transposed else (3, 5, 6, 6)
    unfused = modulated_conv2d(x, weight, styles, fused=False, padding=1, transposed=transposed)
    assert torch.allclose(fused, unfused, atol=1e-5)


def small_generator(classes: int = 0):
    torch.manual_seed(0)
    G = ARCHITECTURES.get("stylegan2-small").obj.build_generator(num_classes=classes).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G


def test_truncation_at_zero_gives_one_image_for_every_z():
    from ganctl.latent.wspace import truncated

    G = small_generator()
    images = truncated(G, 0.0)(torch.randn(4, 128))
    assert torch.allclose(images, images[:1].expand_as(images), atol=1e-5)
    assert not torch.allclose(G(torch.randn(4, 128))[0], G(torch.randn(4, 128))[1])


def test_style_mixing_takes_the_second_w_from_the_chosen_layer_on():
    from ganctl.latent.wspace import broadcast, style_mix_images

    G = small_generator()
    rows, cols, layer = torch.randn(2, 128), torch.randn(3, 128), 5
    grid = style_mix_images(G, rows, cols, layer, psi=None, pixel_range=(-1, 1), device="cpu")
    assert grid.shape[0] == 3 * 4  # (2 + 1) rows of (3 + 1)
    with torch.no_grad():
        w_row, w_col = G.mapping(rows[1:2]), G.mapping(cols[2:3])
        ws = torch.cat([broadcast(G, w_row)[:, :layer], broadcast(G, w_col)[:, layer:]], dim=1)
        from ganctl.data.images import to_uint8

        expected = to_uint8(G.synthesis(ws), (-1, 1))
    assert torch.equal(grid[2 * 4 + 3], expected[0])  # row 1, column 2
    assert torch.equal(grid[1 + 2], to_uint8(G(cols[2:3]), (-1, 1))[0])  # the column's own image on top


def test_the_mean_w_is_tracked_in_training_and_saved(tmp_path):
    from ganctl.networks.weights import load_generator, save_generator

    arch = ARCHITECTURES.get("stylegan2-small").obj
    G = arch.build_generator().train()
    G(torch.randn(8, 128))
    assert G.mapping.w_avg.abs().sum() > 0
    before = G.mapping.w_avg.clone()
    G.eval()(torch.randn(8, 128))
    assert torch.equal(G.mapping.w_avg, before)  # sampling leaves it alone
    path = save_generator(tmp_path / "g.safetensors", G, architecture="stylegan2-small", arch_args=arch.arch_args(), pixel_range=(-1, 1))
    loaded, _ = load_generator(path or tmp_path / "g.safetensors", torch.device("cpu"))
    assert torch.equal(loaded.mapping.w_avg, before)


def test_sizes_that_are_not_built_are_refused_in_one_line():
    one_line_error(invoke("inspect-arch", "stylegan2", "--image-size", "48"), "stylegan2", "48 px", "power of two")


def test_inspect_arch_shows_layers_params_and_flops():
    result = invoke("inspect-arch", "stylegan2-small")
    assert result.exit_code == 0, result.output
    assert "ModulatedConv2d" in result.output and "MinibatchStd" in result.output and "FLOPs" in result.output


def test_conditional_stylegan2_trains_and_samples_by_class_name(tmp_path):
    result = train("--arch", "stylegan2-small", *QUICK, "--conditional", "--max-steps", "3", "--reg-every", "2")
    assert result.exit_code == 0, result.output
    out = tmp_path / "circles.png"
    result = invoke("sample", "--class", "circle", "--n", "4", "--seed", "1", "--truncation", "0.7", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and "circle" in result.output
    mix = tmp_path / "mix.png"
    result = invoke("sample", "--style-mix", "1,2/3,4,5", "--mix-from", "3", "--out", mix)
    assert result.exit_code == 0 and mix.is_file(), result.output


def test_w_space_options_are_refused_before_any_work(tmp_path, mnist):
    one_line_error(invoke("sample", "--weights", mnist, "--truncation", "1.5"), "--truncation", "between 0 and 1")
    one_line_error(invoke("sample", "--weights", mnist, "--truncation", "nan"), "--truncation")
    one_line_error(invoke("sample", "--weights", mnist, "--style-mix", "1,2"), "--style-mix", "1,2,3/10,11,12")
    one_line_error(invoke("sample", "--weights", mnist, "--mix-from", "2"), "--mix-from", "--style-mix")
    one_line_error(invoke("sample", "--weights", mnist, "--style-mix", "1/2"), "W space")  # a z-space generator
    one_line_error(invoke("sample", "--weights", mnist, "--truncation", "0.5", "--z-value", "1"), "z-space", "--seed")


    style = make_generator(tmp_path / "s.safetensors", "stylegan2-small")
    one_line_error(invoke("sample", "--weights", style, "--style-mix", "1/2", "--mix-from", "8"), "--mix-from 8", "0 to 7")
    assert not (tmp_path / "samples.png").exists()


def test_z_space_truncation_is_biggans_trick(mnist, tmp_path):
    from ganctl.latent.wspace import truncated_z

    z = torch.randn(64, 100) * 3
    t = truncated_z(z, 0.5, seed=1)
    assert t.abs().max() <= 1.0 and torch.equal(t, truncated_z(z, 0.5, seed=1))
    kept = z.abs() <= 2
    assert torch.equal(t[kept], z[kept] * 0.5)
    result = invoke("sample", "--weights", mnist, "--truncation", "0", "--seed", "3", "--n", "4", "--out", tmp_path / "t.png")
    assert result.exit_code == 0, result.output


def test_rpgan_compares_pairs():
    loss = LOSSES.get("rpgan").obj()
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[1.0], [0.5]])
    assert loss.paired
    assert torch.allclose(loss.d_pair(real, fake), F.softplus(torch.tensor([-1.0, 0.5])).mean())
    assert torch.allclose(loss.g_pair(fake, real), F.softplus(torch.tensor([1.0, -0.5])).mean())
    # shifting every logit by the same amount changes nothing: only the differences count
    assert torch.allclose(loss.d_pair(real + 7, fake + 7), loss.d_pair(real, fake))


@pytest.mark.parametrize("mode", ["joint", "simultaneous"])
def test_rpgan_trains_with_r1_and_r2_and_resumes_bitwise(mode, tmp_path):
    """The relativistic pairing loss through the step: D's halves paired, G's images paired with
    the last D update's real ones; with R3GAN's R1 + R2 (here R1), and a bitwise resume."""
    args = [*QUICK, "--arch", "mnist-dcgan", "--loss", "rpgan", "--d-update", mode, "--reg", "r1", "--reg-weight", "1",
            "--checkpoint-every", "2"]  # fmt: skip
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    assert train(*args, "--max-steps", "4", "--out", straight).exit_code == 0
    assert train(*args, "--max-steps", "2", "--out", halves).exit_code == 0
    assert train("--resume", "--max-steps", "4", "--out", halves, "--quiet").exit_code == 0
    a, b = read_tensors(straight / "generator.safetensors"), read_tensors(halves / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((straight / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"d_loss", "g_loss", "r1"} <= record.keys() and "d_loss_real" not in record


def test_rpgan_with_the_separate_update_is_refused_in_one_line(tmp_path):
    result = train("--arch", "mnist-dcgan", *QUICK, "--loss", "rpgan", "--d-update", "separate", "--out", tmp_path / "run")
    one_line_error(result, "rpgan", "pairs", "joint or simultaneous")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_stylegan2_small_compiles(fresh_dynamo):
    from ganctl.bench.harness import ganctl_step

    step, _, _ = ganctl_step("stylegan2-small", torch.device("cpu"), amp=False, channels_last=False, compile=True, batch_size=8)
    for _ in range(2):
        step()
    assert step.step.compiled, "fell back to eager"


@pytest.mark.slow
def test_resume_is_bitwise_with_style_mixing_lazy_r1_and_ema(tmp_path):
    """Noise inputs and style mixing draw from torch's global generator, which checkpoints save."""
    import shutil

    from tests.helpers import read_tensors

    args = ["--arch", "stylegan2-small", "--dataset", "synthetic", "--limit", "32", "--batch-size", "8", "--max-steps", "6",
            "--checkpoint-every", "2", "--reg-every", "2", "--ema-kimg", "0.05", "--seed", "3", "--quiet", "--no-amp"]
    straight = tmp_path / "straight"
    assert train(*args, "--out", straight).exit_code == 0
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for later in sorted((resumed / "checkpoints").glob("*.safetensors"))[1:]:
        later.unlink()  # back to the checkpoint at step 2
    result = train(*args, "--out", resumed, "--resume")
    assert result.exit_code == 0, result.output
    for name in ("generator.safetensors", "generator-raw.safetensors"):
        a, b = read_tensors(straight / name), read_tensors(resumed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
