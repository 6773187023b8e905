"""``ganctl latent-walk``: interpolation, frame counts, grids and animations, refusals."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from ganctl.latent import interpolation
from tests.helpers import corrupt_files, invoke, one_line_error

TILE = 28 + 2  # mnist-dcgan's 28 px plus 2 px padding


# ----------------------------------------------------------------------------------------
# Interpolation


def test_slerp_hits_both_endpoints_exactly_and_keeps_the_norm():
    a, b = torch.randn(3, 100), torch.randn(3, 100)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)  # equal norms
    path = interpolation.slerp(a, b, torch.linspace(0, 1, 7))
    assert path.shape == (7, 3, 100)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    torch.testing.assert_close(path.norm(dim=-1), a.norm(dim=-1).expand(7, 3))


def test_lerp_midpoint_is_the_mean():
    a, b = torch.randn(2, 10), torch.randn(2, 10)
    mid = interpolation.lerp(a, b, torch.tensor([0.5]))[0]
    torch.testing.assert_close(mid, (a + b) / 2)


def test_slerp_of_parallel_and_opposite_points_is_finite():
    a = torch.randn(1, 50)
    for b in (a.clone(), a * 1.000001, -a):
        path = interpolation.slerp(a, b, torch.linspace(0, 1, 5))
        assert torch.isfinite(path).all()
        torch.testing.assert_close(path, interpolation.lerp(a, b, torch.linspace(0, 1, 5)))


@pytest.mark.parametrize("points,steps,loop,frames", [(2, 8, False, 9), (3, 4, False, 9), (3, 4, True, 12), (2, 1, False, 2)])
def test_walk_length_and_endpoints(points, steps, loop, frames):
    ends = torch.randn(2, points, 16)
    z = interpolation.walk(ends, steps, "slerp", loop)
    assert z.shape == (2, frames, 16) == (2, interpolation.walk_length(points, steps, loop), 16)
    for p in range(points):  # every endpoint is a frame, exactly, every `steps` frames
        assert torch.equal(z[:, p * steps], ends[:, p])
    if loop:  # the last segment heads back to the start without repeating it
        assert not torch.equal(z[:, -1], ends[:, 0])


def test_lerp_walk_passes_through_the_midpoint():
    ends = torch.randn(1, 2, 8)
    z = interpolation.walk(ends, 2, "lerp")
    torch.testing.assert_close(z[0, 1], ends[0].mean(dim=0))


# ----------------------------------------------------------------------------------------
# Outputs


def test_grid_png_has_a_row_per_walk_and_a_column_per_frame(mnist, tmp_path):
    out = tmp_path / "walk.png"
    result = invoke("latent-walk", "--weights", mnist, "--rows", 3, "--steps", 4, "--seed", 0, "--out", out)
    assert result.exit_code == 0, result.stderr
    # 92 px high: enlarged 3× by default, so the smaller side is at least 256 px
    assert Image.open(out).size == ((5 * TILE + 2) * 3, (3 * TILE + 2) * 3)
    assert Image.open(out).mode == "L"
    assert "3 walks × 5 frames, slerp" in result.stdout


def test_gif_has_a_frame_per_step_each_a_column_of_the_grid(mnist, tmp_path):
    gif, png = tmp_path / "walk.gif", tmp_path / "walk.png"
    args = ("--weights", mnist, "--rows", 2, "--points", 3, "--steps", 3, "--seed", 1, "--scale", 2)
    assert invoke("latent-walk", *args, "--out", gif, "--out", png).exit_code == 0
    animation = Image.open(gif)
    # 7 frames forwards, then 5 back (no jump from the last frame to the first when it repeats)
    assert animation.n_frames == 12 and animation.size == ((TILE + 2) * 2, (2 * TILE + 2) * 2)
    # frame 3 (the middle point) is column 3 of the grid
    animation.seek(3)
    column = Image.open(png).crop((3 * TILE * 2, 0, (4 * TILE + 2) * 2, (2 * TILE + 2) * 2))
    assert np.array_equal(np.asarray(animation.convert("L")), np.asarray(column))


def test_loop_and_webp(mnist, tmp_path):
    webp = tmp_path / "walk.webp"
    result = invoke("latent-walk", "--weights", mnist, "--points", 3, "--steps", 4, "--loop", "--fps", 5, "--out", webp)
    assert result.exit_code == 0, result.stderr
    assert Image.open(webp).n_frames == 12
    assert "looped" in result.stdout


def test_default_output_is_walk_gif(mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("latent-walk", "--weights", mnist, "-q").exit_code == 0
    animation = Image.open(tmp_path / "walk.gif")
    assert animation.n_frames == 16  # 2 points, 8 steps: 9 frames, then 7 back
    assert min(animation.size) >= 256  # enlarged by default
    frames = []
    for i in range(animation.n_frames):
        animation.seek(i)
        frames.append(np.asarray(animation.convert("L")))
    # frame 9 (index 8) is the end; the ones after it retrace the walk: 10 = 8, ..., 16 = 2
    for k in range(1, 8):
        assert np.array_equal(frames[8 + k], frames[8 - k])


def test_scale_given_overrides_the_default_size(mnist, tmp_path):
    out = tmp_path / "walk.png"
    assert invoke("latent-walk", "--weights", mnist, "--rows", 1, "--steps", 2, "--scale", 1, "--out", out).exit_code == 0
    assert Image.open(out).size == (3 * TILE + 2, TILE + 2)


def test_same_seed_same_walk(mnist, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path, seed in zip(paths, (4, 4, 5)):
        assert invoke("latent-walk", "--weights", mnist, "--rows", 2, "--seed", seed, "--out", path).exit_code == 0
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()


def test_walk_through_the_points_of_a_z_file(mnist, tmp_path):
    np.save(tmp_path / "ends.npy", np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32))
    out = tmp_path / "w.png"
    result = invoke("latent-walk", "--weights", mnist, "--z-file", tmp_path / "ends.npy", "--steps", 2, "--scale", 1, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert Image.open(out).size == (5 * TILE + 2, TILE + 2)
    # its endpoints are exactly the images `sample` makes of the same latents
    assert invoke("sample", "--weights", mnist, "--z-file", tmp_path / "ends.npy", "--individual", tmp_path / "s").exit_code == 0
    first = np.asarray(Image.open(out))[2 : 2 + 28, 2 : 2 + 28]
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "s" / "000000.png")))


# ----------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    "args,message",
    [
        (["--steps", "0"], "--steps must be at least 1"),
        (["--steps", "-3"], "--steps must be at least 1"),
        (["--points", "1"], "--points must be at least 2"),
        (["--rows", "0"], "--rows must be at least 1"),
        (["--mode", "cubic"], "unknown --mode 'cubic'"),
        (["--out", "walk.mp4"], "use .png (a grid), .gif or .webp"),
        (["--out", "walk.png", "--out", "walk"], "use .png (a grid), .gif or .webp"),
        (["--fps", "0"], "--fps must be a positive number"),
        (["--scale", "0"], "--scale"),
        (["--z-file", "z.npy", "--seed", "3"], "cannot be used with --z-file"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_options_are_one_line(mnist, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("latent-walk", "--weights", mnist, *args), message)
    assert list(tmp_path.iterdir()) == []


def test_a_z_file_with_one_point_is_refused(mnist, tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(100, np.float32))
    one_line_error(invoke("latent-walk", "--weights", mnist, "--z-file", tmp_path / "one.npy"), "at least 2")


def test_existing_outputs_are_untouched_without_force(mnist, tmp_path):
    png, gif = tmp_path / "walk.png", tmp_path / "walk.gif"
    gif.write_bytes(b"precious")
    result = invoke("latent-walk", "--weights", mnist, "--out", png, "--out", gif)
    one_line_error(result, f"{gif} already exists")
    assert gif.read_bytes() == b"precious" and not png.exists()  # refused before anything is written
    assert invoke("latent-walk", "--weights", mnist, "--out", png, "--out", gif, "--force").exit_code == 0
    assert Image.open(gif).n_frames == 16  # 9 frames, then 7 back


def test_unwritable_folder_is_one_line(mnist, tmp_path):
    (tmp_path / "a-file").write_text("")
    one_line_error(invoke("latent-walk", "--weights", mnist, "--out", tmp_path / "a-file" / "w.gif"), "not a folder")


def test_corrupt_generator_files_are_one_line(mnist, tmp_path):
    for case, (path, message) in corrupt_files(tmp_path / "bad", mnist).items():
        out = tmp_path / "w.gif"
        one_line_error(invoke("latent-walk", "--weights", path, "--out", out), message)
        assert not out.exists(), case


def test_no_latest_run_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke("latent-walk"), "no trained generator found")


def test_frame_count_formula_is_what_the_docs_say():
    assert [interpolation.walk_length(p, s, loop) for p, s, loop in ((2, 8, False), (4, 10, True))] == [9, 40]
