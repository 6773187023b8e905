"""DiffAugment (Zhao et al. 2020): differentiable augmentations of every image D sees.

The same random transforms are applied to real and generated images, in every D and G phase,
so D cannot tell them apart by the augmentation and G receives gradients through it. Every
draw comes from the augmentation's own ``torch.Generator`` on the device, which the checkpoint
saves: a resumed run augments exactly as the uninterrupted one would have.

Three families, any subset: ``color`` (brightness, saturation, contrast), ``translation`` (shift
by up to 1/8 of the image, zeros coming in) and ``cutout`` (a square of half the image's side
set to mid-grey). Amplitudes follow the paper's reference for data in [-1, 1]; for another pixel
range they are scaled with it.
"""

from __future__ import annotations

import torch

from ganctl.errors import GanctlError

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; refuses unknown names."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise GanctlError(f"unknown augmentation '{unknown[0]}'; use any of {', '.join(POLICIES)}, comma-separated")
    if len(set(names)) != len(names):
        raise GanctlError(f"augmentation '{policy}' names a transform twice")
    return names


class DiffAugment:
    def __init__(self, policy: str, pixel_range: tuple[float, float], device: torch.device, seed: int) -> None:
        self.policy = parse_policy(policy)
        low, high = pixel_range
        self.half_range = (high - low) / 2  # 1 for [-1, 1]: the reference's amplitudes
        self.middle = (high + low) / 2
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            images = getattr(self, f"_{name}")(images)
        return images

    def _uniform(self, images: torch.Tensor, *shape: int) -> torch.Tensor:
        return torch.rand(images.shape[0], *shape, generator=self.rng, device=images.device, dtype=images.dtype)

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        x = x + (self._uniform(x, 1, 1, 1) - 0.5) * self.half_range  # brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._uniform(x, 1, 1, 1) * 2) + mean  # saturation
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (self._uniform(x, 1, 1, 1) + 0.5) + mean  # contrast

    def _translation(self, x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
        n, _, h, w = x.shape
        max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
        dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), generator=self.rng, device=x.device)
        dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), generator=self.rng, device=x.device)
        # Read each output pixel from (y - dy, x - dx) of a zero-padded copy; out of range -> padding.
        rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx + 1).clamp(0, w + 1)
        padded = torch.nn.functional.pad(x - self.middle, (1, 1, 1, 1)) + self.middle
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        moved = padded.permute(0, 2, 3, 1)[batch, rows, cols]  # (n, h, w, c)
        return moved.permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
        n, _, h, w = x.shape
        size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
        # the square's centre, anywhere such that part of it may hang over the edge (as the reference)
        cy = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), generator=self.rng, device=x.device)
        cx = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), generator=self.rng, device=x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1) - cy + size_y // 2  # row within the square
        xs = torch.arange(w, device=x.device).view(1, 1, w) - cx + size_x // 2
        inside = (ys >= 0) & (ys < size_y) & (xs >= 0) & (xs < size_x)
        keep = (~inside).unsqueeze(1).to(x.dtype)  # (n, 1, h, w)
        return x * keep + self.middle * (1 - keep)

    # --- resume ---------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {"rng": self.rng.get_state()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.rng.set_state(tensors["rng"])
