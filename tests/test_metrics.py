"""FID, KID and ``ganctl eval``: the math, the Inception path (with the shared real weights when
present, else a random Inception of the same shape: see ``weights_file`` in conftest.py), bad inputs."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganctl import metrics
from ganctl.cli import app
from ganctl.errors import GanctlError

from tests.helpers import NO_REAL_DATA, REAL_WEIGHTS, one_line_error
from tests.helpers import SHARED_DATA as SHARED
needs_weights = pytest.mark.skipif(not REAL_WEIGHTS.is_file(), reason="the Inception weights are absent ($GANCTL_TEST_DATA/inception, README, Tests)")


# ----------------------------------------------------------------------------------------
# Pure math: statistics, FID, KID, IS


def independent_fid(x: np.ndarray, y: np.ndarray) -> float:
    """FID from the formula, computed another way: Tr((Σx Σy)^½) is the nuclear norm of Xc Ycᵀ / √((n-1)(m-1)).

    (Σx Σy has the nonzero eigenvalues of M Mᵀ with M = Xc Ycᵀ, whose square roots are M's singular values.)
    """
    x, y = x.astype(np.float64), y.astype(np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    diff = x.mean(0) - y.mean(0)
    tr_x, tr_y = (xc**2).sum() / (len(x) - 1), (yc**2).sum() / (len(y) - 1)
    nuclear = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((len(x) - 1) * (len(y) - 1))
    return float(diff @ diff + tr_x + tr_y - 2 * nuclear)


def correlated(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mixing * scale + shift).astype(np.float32)


def test_statistics_are_numpys_mean_and_covariance():
    x = correlated(1000, 32, 0)
    mu, sigma = metrics.feature_statistics(x, chunk=300)  # several chunks
    assert np.allclose(mu, x.mean(0, dtype=np.float64))
    assert np.allclose(sigma, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_fid_of_a_set_with_itself_is_zero(method):
    x = correlated(2000, 64, 0)
    assert abs(metrics.fid_from_features(x, x, method=method)) < 1e-8


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_fid_of_two_gaussians_is_the_closed_form(method):
    rng = np.random.default_rng(1)
    d = 16
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    # diagonal covariances: Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ (σ1 − σ2)²
    s1, s2 = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((s1 - s2) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2), method=method)
    assert got == pytest.approx(expected, rel=1e-9)
    # rotate both by the same orthogonal matrix: full covariances, same distance
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    got = metrics.frechet_distance(q @ mu1, q @ np.diag(s1**2) @ q.T, q @ mu2, q @ np.diag(s2**2) @ q.T, method=method)
    assert got == pytest.approx(expected, rel=1e-8)
    # one dimension: (μ1 − μ2)² + (σ1 − σ2)²
    assert metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]), method=method) == pytest.approx(4 + 1)


def test_fid_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((200_000, 2)) * [1.0, 2.0]
    b = rng.standard_normal((200_000, 2)) * [2.0, 2.0] + [3.0, 0.0]
    assert metrics.fid_from_features(a, b) == pytest.approx(9 + 1, rel=0.01)


@pytest.mark.parametrize("method", ["sqrtm", "eigh"])
def test_fid_matches_an_independent_computation(method):
    x, y = correlated(800, 128, 0), correlated(700, 128, 1, shift=0.3, scale=1.2)
    ours, theirs = metrics.fid_from_features(x, y, method=method), independent_fid(x, y)
    assert abs(ours - theirs) / theirs < 1e-3
    assert abs(ours - theirs) / theirs < 1e-9  # in fact it is exact up to rounding


def test_sqrtm_and_eigh_agree_on_a_singular_covariance():
    x, y = correlated(100, 256, 0), correlated(120, 256, 1, shift=0.1)  # n < d: rank-deficient
    sqrtm, eigh = metrics.fid_from_features(x, y), metrics.fid_from_features(x, y, method="eigh")
    assert sqrtm == pytest.approx(eigh, rel=1e-6)
    assert eigh == pytest.approx(independent_fid(x, y), rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    same_a, same_b = correlated(1200, 64, 0), correlated(1200, 64, 1)
    mean, std, subset = metrics.kid_from_features(same_a, same_b, subsets=20, subset_size=500)
    assert subset == 500 and abs(mean) < 3 * std + 1e-4
    shifted = correlated(1200, 64, 2, shift=0.5)
    mean_shift, std_shift, _ = metrics.kid_from_features(same_a, shifted, subsets=20, subset_size=500)
    assert mean_shift > 10 * max(abs(mean), std_shift)
    again = metrics.kid_from_features(same_a, shifted, subsets=20, subset_size=500)
    assert again == (mean_shift, std_shift, 500)  # seeded: the same subsets


def test_kid_subset_size_is_capped_by_the_sample_count():
    _, std, subset = metrics.kid_from_features(correlated(30, 8, 0), correlated(40, 8, 1), subsets=5)
    assert subset == 30 and std >= 0


def test_kid_matches_an_independent_computation():
    x, y = correlated(300, 32, 0), correlated(300, 32, 1, shift=0.2)
    rng = np.random.RandomState(5)  # the draw order kid_from_features documents
    values = []
    for _ in range(4):
        a, b = x[rng.choice(300, 100, replace=False)].astype(float), y[rng.choice(300, 100, replace=False)].astype(float)
        k = lambda u, v: (u @ v / 32 + 1) ** 3  # noqa: E731
        xx = sum(k(a[i], a[j]) for i in range(100) for j in range(100) if i != j) / (100 * 99)
        yy = sum(k(b[i], b[j]) for i in range(100) for j in range(100) if i != j) / (100 * 99)
        xy = sum(k(a[i], b[j]) for i in range(100) for j in range(100)) / (100 * 100)
        values.append(xx + yy - 2 * xy)
    mean, std, _ = metrics.kid_from_features(x, y, subsets=4, subset_size=100, seed=5)
    assert mean == pytest.approx(np.mean(values), rel=1e-9)
    assert std == pytest.approx(np.std(values), rel=1e-6)


def test_kid_equals_torch_fidelity_on_the_same_features():
    kid = pytest.importorskip("torch_fidelity.metric_kid")
    x, y = correlated(400, 48, 0), correlated(400, 48, 1, shift=0.2)
    theirs = kid.kid_features_to_metric(
        torch.from_numpy(x), torch.from_numpy(y), kid_subsets=10, kid_subset_size=200, rng_seed=7, verbose=False,
        kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )  # fmt: skip
    mean, std, _ = metrics.kid_from_features(x, y, subsets=10, subset_size=200, seed=7)
    assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)


def test_inception_score_of_uniform_and_of_confident_predictions():
    assert metrics.inception_score(np.zeros((100, 10)), splits=5) == pytest.approx((1.0, 0.0))
    confident = np.full((1000, 10), -50.0)
    confident[np.arange(1000), np.arange(1000) % 10] = 50.0  # each class equally often, sure of it
    mean, std = metrics.inception_score(confident, splits=10)
    assert mean == pytest.approx(10, rel=0.05) and std < 0.5


def test_fid_refuses_fewer_than_2048_images_unless_allowed():
    with pytest.raises(GanctlError, match="at least 2,048"):
        metrics.check_fid_sample_count(2047, "--n")
    metrics.check_fid_sample_count(2048, "--n")
    metrics.check_fid_sample_count(10, "--n", allow_small_n=True)


# ----------------------------------------------------------------------------------------
# The Inception path with the real weights (skipped without the real data, $GANCTL_TEST_DATA)


def pictures(n: int, seed: int, bright: bool = False, size: int = 32, channels: int = 3) -> torch.Tensor:
    """Smooth random uint8 pictures: blurred noise, dark or bright."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, 4, 4, generator=g)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    images = images * 0.5 + (0.5 if bright else 0.0) + torch.rand(n, channels, size, size, generator=g) * 0.1
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def write_folder(folder: Path, images: torch.Tensor) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        array = image.permute(1, 2, 0).numpy()
        Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def inception(weights_file):
    return metrics.feature_extractor(metrics.resolve_weights(weights_file), "cpu")


@pytest.fixture(scope="module")
def measured(inception):
    """Two sets of 24 pictures and their features through ganctl (the slow part, done once)."""
    a, b = pictures(24, 0), pictures(24, 1, bright=True)
    return a, b, inception(a)[0], inception(b)[0]


@needs_weights
def test_the_shared_weights_are_recognised_with_a_zeroed_classifier():
    weights, state = metrics.check_inception_weights(REAL_WEIGHTS)
    assert weights.classifier_zeroed and not weights.official
    assert len(weights.sha256) == 64 and "Mixed_7c.branch_pool.conv.weight" in state


def test_features_fid_and_kid_on_real_inception(measured):
    a, b, fa, fb = measured
    assert fa.shape == (24, 2048) and fa.dtype == np.float32 and np.isfinite(fa).all()
    assert abs(metrics.fid_from_features(fa, fa, method="eigh")) < 1e-3  # rank 23: rounding in 2,025 null directions
    fid_ab = metrics.fid_from_features(fa, fb, method="eigh")
    assert fid_ab > 10  # dark and bright pictures are far apart
    assert abs(fid_ab - independent_fid(fa, fb)) / independent_fid(fa, fb) < 1e-3
    assert metrics.kid_from_features(fa, fb, subset_size=24)[0] > 0


def test_features_equal_torch_fidelitys_plain_forward(measured, inception, weights_file):
    """Our batching (chunks of 16, channels_last) gives torch-fidelity's features to float32 rounding."""
    a, b, fa, fb = measured
    plain = metrics.features._build_extractor(weights_file, ["2048"])
    with torch.inference_mode():
        reference = plain(torch.cat([a, b]))[0].numpy()
    ours = np.concatenate([fa, fb])
    assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()
    assert abs(metrics.fid_from_features(fa, fb, method="eigh") / independent_fid(reference[:24], reference[24:]) - 1) < 1e-3


def test_a_failing_compile_falls_back_to_eager(measured, monkeypatch, weights_file):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda model: broken)
    notes = []
    extractor = metrics.InceptionFeatures(metrics.resolve_weights(weights_file), "cpu", compile=True, log=notes.append)
    a, _, fa, _ = measured
    assert np.allclose(extractor(a[:3])[0], fa[:3], atol=1e-5)
    assert extractor.compiled is None and "eager" in notes[0]


def test_gray_images_are_measured_as_rgb_repeats(inception):
    gray = pictures(4, 3, channels=1)
    assert np.allclose(inception(gray)[0], inception(gray.expand(-1, 3, -1, -1).contiguous())[0], atol=1e-6)


def test_kid_matches_torch_fidelity_on_image_folders(measured, tmp_path, monkeypatch, weights_file):
    """torch-fidelity reads the PNGs and measures them itself; KID from both must agree."""
    torch_fidelity = pytest.importorskip("torch_fidelity")
    a, b, fa, fb = measured
    write_folder(tmp_path / "a", a), write_folder(tmp_path / "b", b)
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")  # torch-fidelity passes weights_only=False
    theirs = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "a"), input2=str(tmp_path / "b"), kid=True, kid_subset_size=24, rng_seed=11,
        feature_extractor_weights_path=str(weights_file), cache=False, verbose=False, cuda=False, save_cpu_ram=True,
    )  # fmt: skip
    mean, _, _ = metrics.kid_from_features(fa, fb, subset_size=24, seed=11)
    assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3)


def test_reference_statistics_are_cached_and_reused(measured, tmp_path, monkeypatch, weights_file):
    a = measured[0]
    folder = write_folder(tmp_path / "real", a)
    first = metrics.reference_stats(f"folder:{folder}", "train", 32, 3, 20, None, weights_file, "cpu")
    assert not first.cached and first.n == 20 and first.cache_file.is_file()
    assert first.cache_file.parent == tmp_path / "cache" / "fid-stats"
    assert first.cache_file.with_suffix(".json").is_file()

    def no_inception(*args, **kwargs):
        raise AssertionError("the feature extractor ran again")

    monkeypatch.setattr(metrics.reference, "extract", no_inception)
    monkeypatch.setattr(metrics.reference, "feature_extractor", no_inception)
    again = metrics.reference_stats(f"folder:{folder}", "train", 32, 3, 20, None, weights_file, "cpu")
    assert again.cached and np.array_equal(again.features, first.features) and np.array_equal(again.sigma, first.sigma)
    assert again.protocol["n"] == 20 and again.protocol["inception"]["sha256"] == first.weights.sha256
    with pytest.raises(AssertionError, match="ran again"):  # another n is another entry
        metrics.reference_stats(f"folder:{folder}", "train", 32, 3, 19, None, weights_file, "cpu")


@needs_weights
def test_inception_score_is_refused_with_the_zeroed_classifier(tmp_path):
    weights = metrics.resolve_weights(REAL_WEIGHTS)
    with pytest.raises(GanctlError, match="all zeros"):
        metrics.InceptionFeatures(weights, "cpu", logits=True)
    folder = write_folder(tmp_path / "a", pictures(3, 0))
    result = CliRunner().invoke(app, ["eval", "--real", f"folder:{folder}", "--fake", str(folder), "--no-fid",
                                      "--is", "--inception", str(REAL_WEIGHTS)])  # fmt: skip
    one_line_error(result, "Inception Score", "zeros", exit_code=2)


def test_evaluate_generator_for_the_trainer(measured, tmp_path, weights_file):
    import ganctl.registry as registry

    arch = registry.ARCHITECTURES.get("mnist-dcgan").obj
    generator, _ = arch.build()
    generator.train()
    folder = write_folder(tmp_path / "real", pictures(12, 0, size=28, channels=1))
    reference = metrics.reference_stats(f"folder:{folder}", "train", 28, 1, None, None, weights_file, "cpu")
    result = metrics.evaluate_generator(
        generator, arch.recipe.pixel_range, arch.recipe.latent_dim, reference=reference, n=12, device="cpu",
        batch_size=5, seed=3, fid_method="eigh", allow_small_n=True,
    )  # fmt: skip
    assert generator.training  # put back as it was
    assert result["fid"] > 0 and "kid_mean" in result and "kid_std" in result
    protocol = result["protocol"]
    assert protocol["n_reference"] == 12 and protocol["n_evaluated"] == 12 and protocol["evaluated"]["seed"] == 3
    assert protocol["inception"]["file"] == weights_file.name and "bilinear" in protocol["reference"]["resize"]
    with pytest.raises(GanctlError, match="at least 2,048"):
        metrics.evaluate_generator(generator, (-1, 1), 100, reference=reference, n=12, device="cpu")


def test_eval_command_generator_vs_folder(measured, tmp_path, weights_file):
    generator_file = make_generator(tmp_path)
    folder = write_folder(tmp_path / "real", pictures(10, 0, size=28, channels=1))
    args = ["eval", "--weights", str(generator_file), "--real", f"folder:{folder}", "--n", "10", "--allow-small-n",
            "--fid-method", "eigh", "--inception", str(weights_file), "--batch-size", "4"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--json", "--save-images", str(tmp_path / "saved")])
    assert result.exit_code == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["fid"] > 0 and data["protocol"]["n_evaluated"] == 10 and not data["protocol"]["reference_cached"]
    assert len(list((tmp_path / "saved").glob("*.png"))) == 10
    again = CliRunner().invoke(app, args)  # the reference now comes from the cache
    assert again.exit_code == 0, again.stderr
    assert "FID" in again.stdout and "cached statistics" in again.stdout and "seed 0" in again.stdout
    assert "Lower is better" in again.stdout
    # the time line adds up: its parts sum to the total (each rounded to 0.1 s)
    import re

    (line,) = [text for text in again.stdout.splitlines() if text.startswith("Time:")]
    numbers = [float(x) for x in re.findall(r"(\d+\.\d) s", line)]
    assert "reference" in line and "(cached statistics, read)" in line
    assert abs(numbers[0] - sum(numbers[1:])) <= 0.05 * len(numbers) + 0.01
    assert data["seconds"]["total"] >= data["seconds"]["reference"] + data["seconds"]["features"]


def test_the_meaning_names_the_real_data_floor():
    from ganctl.commands.eval_cmd import _meaning

    protocol = {"reference_source": "cifar10/train", "n_evaluated": 5000}
    text = _meaning({"fid": 30.0, "protocol": protocol})
    assert "Lower is better" in text and "FID 10.3" in text and "the same count as here" in text
    text = _meaning({"fid": 30.0, "protocol": {**protocol, "n_evaluated": 10000}})
    assert "here 10,000" in text
    assert "floor" not in _meaning({"fid": 3.0, "protocol": {**protocol, "reference_source": "folder:x"}})


# ----------------------------------------------------------------------------------------
# Bad inputs through the CLI: exit code 2, one line, no traceback


def make_generator(tmp_path: Path) -> Path:
    import ganctl.registry as registry
    import ganctl.networks.weights as weights

    arch = registry.ARCHITECTURES.get("mnist-dcgan").obj
    generator, _ = arch.build()
    path = tmp_path / "g.safetensors"
    weights.save_generator(path, generator, architecture="mnist-dcgan", arch_args=arch.arch_args(), pixel_range=arch.recipe.pixel_range)
    return path


def fake_inception_file(tmp_path: Path) -> Path:
    """A small file with the keys and shapes ``check_inception_weights`` looks at (not a network)."""
    path = tmp_path / "fake-inception.pth"
    torch.save({
        "Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3),
        "Mixed_7c.branch_pool.conv.weight": torch.zeros(192, 2048, 1, 1),
        "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008),
    }, path)  # fmt: skip
    return path


def test_missing_generator_file_is_named(tmp_path):
    missing = tmp_path / "nothere.safetensors"
    result = CliRunner().invoke(app, ["eval", "--weights", str(missing), "--dataset", "mnist", "--n", "3000"])
    one_line_error(result, str(missing), exit_code=2)


def test_missing_inception_weights_name_the_file_and_the_folder(tmp_path):
    generator = make_generator(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--weights", str(generator), "--dataset", "mnist", "--n", "3000"])
    line = one_line_error(result, "pt_inception-2015-12-05-6726825d.pth", "--inception", exit_code=2)
    assert str(tmp_path / "torch-home") in line  # where to put it
    missing = tmp_path / "nope.pth"
    result = CliRunner().invoke(app, ["eval", "--weights", str(generator), "--dataset", "mnist", "--n", "3000", "--inception", str(missing)])
    one_line_error(result, str(missing), "does not exist", exit_code=2)


def test_files_that_are_not_inception_weights(tmp_path):
    generator = make_generator(tmp_path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00 not a checkpoint " * 50)
    for wrong in (garbage, generator):
        result = CliRunner().invoke(app, ["eval", "--weights", str(generator), "--dataset", "mnist", "--n", "3000",
                                          "--inception", str(wrong)])  # fmt: skip
        one_line_error(result, str(wrong), "not", exit_code=2)


def test_a_pickle_with_code_is_refused_not_run(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": Boom()}, path)
    with pytest.raises(GanctlError, match="Python objects besides tensors"):
        metrics.check_inception_weights(path)


def test_n_larger_than_the_dataset(tmp_path):
    folder = write_folder(tmp_path / "real", pictures(5, 0, size=28, channels=1))
    result = CliRunner().invoke(app, [
        "eval", "--weights", str(make_generator(tmp_path)), "--real", f"folder:{folder}", "--n", "3000",
        "--inception", str(fake_inception_file(tmp_path)),
    ])  # fmt: skip
    one_line_error(result, "3,000", "5 images", exit_code=2)


def test_n_below_2048_needs_the_override(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--weights", str(make_generator(tmp_path)), "--dataset", "mnist", "--n", "500"])
    one_line_error(result, "2,048", "--allow-small-n", "--no-fid", exit_code=2)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--weights", "g.safetensors", "--fake", "folder:x", "--dataset", "mnist"], "pick one"),
        (["--fake", "folder:x"], "--real"),
        (["--n", "1"], "at least 2"),
        (["--no-fid", "--no-kid"], "nothing to compute"),
        (["--fid-method", "svd"], "sqrtm or eigh"),
        (["--channels", "2"], "1 or 3"),
    ],
)
def test_option_mistakes(args, fragment):
    one_line_error(CliRunner().invoke(app, ["eval", *args]), fragment, exit_code=2)


def test_eval_help_is_there_and_shows_an_example():
    result = CliRunner().invoke(app, ["eval", "--help"])
    assert result.exit_code == 0 and "Examples" in result.stdout and "ganctl eval --dataset cifar10 --n 10000" in result.stdout


# ----------------------------------------------------------------------------------------
# The real datasets (slow: a full run is over an hour on two CPU cores; see docs/eval.md)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED.is_dir() and REAL_WEIGHTS.is_file()), reason=NO_REAL_DATA)
@pytest.mark.parametrize("dataset, expected", [("cifar10", 3.1508), ("mnist", None)])
def test_fid_train_vs_test_on_the_real_datasets(dataset, expected, tmp_path):
    data = tmp_path / "data"
    if dataset == "cifar10":
        folder = data / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for path in (SHARED / "cifar-10").glob("*.xz"):
            (folder / path.stem).write_bytes(lzma.decompress(path.read_bytes()))
        size, channels = 32, 3
    else:
        raw = data / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for path in (SHARED / "mnist").glob("*.gz"):
            shutil.copy(path, raw / path.name)
        size, channels = 28, 1
    train = metrics.reference_stats(dataset, "train", size, channels, None, data, REAL_WEIGHTS, "cpu", download=False)
    test = metrics.reference_stats(dataset, "test", size, channels, None, data, REAL_WEIGHTS, "cpu", download=False)
    fid = metrics.frechet_distance(train.mu, train.sigma, test.mu, test.sigma)
    if expected is not None:  # the published CIFAR-10 train (50k) vs test (10k) value
        assert fid == pytest.approx(expected, abs=0.005)
    else:  # no published value; 5,000 vs 5,000 gave 4.565 (docs/eval.md), and FID's bias shrinks with n
        assert 0 < fid < 4.6


def test_an_existing_out_file_is_refused_before_any_work(tmp_path):
    out = tmp_path / "result.json"
    out.write_text("keep me")
    args = ["eval", "--weights", str(tmp_path / "no-generator.safetensors"), "--dataset", "mnist", "--out", str(out)]
    one_line_error(CliRunner().invoke(app, args), str(out), "--force", exit_code=2)  # before the missing generator is noticed
    assert out.read_text() == "keep me"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(CliRunner().invoke(app, [*args[:-1], str(blocker / "result.json")]), "is a file, not a folder", exit_code=2)
