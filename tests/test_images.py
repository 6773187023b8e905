"""Pictures from uint8 images: grids, one PNG each, animations of PNG files."""

from __future__ import annotations

import torch
from PIL import Image

from ganctl.data.images import individual_names, save_animation_of_files, save_png, to_pil, write_individual


def test_an_animation_of_png_files_has_one_frame_per_file(tmp_path):
    paths = []
    for value in (0, 128, 255):
        paths.append(tmp_path / f"epoch-{value:04d}.png")
        save_png(to_pil(torch.full((3, 4, 4), value, dtype=torch.uint8)), paths[-1])
    save_animation_of_files(paths, tmp_path / "progress.gif", fps=2)
    with Image.open(tmp_path / "progress.gif") as gif:
        assert gif.n_frames == 3
        gif.seek(2)
        assert gif.convert("L").getpixel((0, 0)) == 255


def test_no_files_no_animation(tmp_path):
    save_animation_of_files([], tmp_path / "progress.gif")
    assert not (tmp_path / "progress.gif").exists()


def test_individual_pngs_are_written_batch_by_batch(tmp_path):
    batches = [torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.ones(1, 1, 3, 3, dtype=torch.uint8)]
    names = individual_names(3)
    assert write_individual(batches, tmp_path, names) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == names
