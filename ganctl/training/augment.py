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
ADAPTIVE = "ada"  # adaptive augmentation (training/ada.py), combinable with the DiffAugment policies


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; refuses unknown names (``ada`` is known)."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in (*POLICIES, ADAPTIVE)]
    if unknown:
        raise GanctlError(f"unknown augmentation '{unknown[0]}'; use any of {', '.join((ADAPTIVE, *POLICIES))}, comma-separated")
    if len(set(names)) != len(names):
        raise GanctlError(f"augmentation '{policy}' names a transform twice")
    return names


def split_policy(policy: str) -> tuple[bool, str]:
    """(whether ``ada`` is asked for, the DiffAugment policy that remains)."""
    names = parse_policy(policy)
    return ADAPTIVE in names, ",".join(name for name in names if name != ADAPTIVE)


class AugmentPipeline:
    """What D's images go through when adaptive augmentation is on: ADA, then DiffAugment (if any).

    The same interface as DiffAugment: ``draw`` (eager, from the generators) and ``apply`` (pure)."""

    def __init__(self, ada, diff: DiffAugment | None) -> None:
        self.ada, self.diff = ada, diff

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.apply(images, self.draw(images.shape[0], images.shape[2], images.shape[3], images.device))

    def draw(self, n: int, height: int, width: int, device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
        params = {"ada": self.ada.draw(n, height, width, device)}
        if self.diff is not None:
            params["diff"] = self.diff.draw(n, height, width, device)
        return params

    def apply(self, images: torch.Tensor, params: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
        images = self.ada.apply(images, params["ada"])
        return self.diff.apply(images, params["diff"]) if self.diff is not None else images


class DiffAugment:
    def __init__(self, policy: str, pixel_range: tuple[float, float], device: torch.device, seed: int) -> None:
        self.policy = parse_policy(policy)
        low, high = pixel_range
        self.half_range = (high - low) / 2  # 1 for [-1, 1]: the reference's amplitudes
        self.middle = (high + low) / 2
        self.rng = torch.Generator(device=device)
        self.rng.manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.apply(images, self.draw(images.shape[0], images.shape[2], images.shape[3], images.device))

    # Drawing and applying are apart so that a compiled training step can take the draws as
    # inputs: a draw from a torch.Generator would split its graph (torch.compile cannot trace it).
    def draw(self, n: int, height: int, width: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The random parameters of one augmentation of ``n`` images, in the policy's order.

        Uniform draws are float32 whatever the images' dtype: under bf16 autocast a bf16 draw
        would have only 8 bits of resolution.
        """
        def uniform() -> torch.Tensor:
            return torch.rand(n, 1, 1, 1, generator=self.rng, device=device)

        def integers(low: int, high: int) -> torch.Tensor:
            return torch.randint(low, high, (n, 1, 1), generator=self.rng, device=device)

        params: dict[str, torch.Tensor] = {}
        for name in self.policy:
            if name == "color":
                params["brightness"], params["saturation"], params["contrast"] = uniform(), uniform(), uniform()
            elif name == "translation":
                max_dy, max_dx = self._shift_limits(height, width)
                params["dy"], params["dx"] = integers(-max_dy, max_dy + 1), integers(-max_dx, max_dx + 1)
            else:  # cutout: the square's centre, anywhere such that part of it may hang over the edge (as the reference)
                size_y, size_x = self._cutout_size(height, width)
                params["cy"], params["cx"] = integers(0, height + (1 - size_y % 2)), integers(0, width + (1 - size_x % 2))
        return params

    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The augmentation ``params`` describe (from ``draw``), applied to ``images``: no random draw."""
        for name in self.policy:
            images = getattr(self, f"_{name}")(images, params)
        return images

    @staticmethod
    def _shift_limits(height: int, width: int, ratio: float = 0.125) -> tuple[int, int]:
        return int(height * ratio + 0.5), int(width * ratio + 0.5)

    @staticmethod
    def _cutout_size(height: int, width: int, ratio: float = 0.5) -> tuple[int, int]:
        return int(height * ratio + 0.5), int(width * ratio + 0.5)

    def _color(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        x = x + (params["brightness"].to(x.dtype) - 0.5) * self.half_range
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (params["saturation"].to(x.dtype) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (params["contrast"].to(x.dtype) + 0.5) + mean

    def _translation(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        n, _, h, w = x.shape
        dy, dx = params["dy"], params["dx"]
        # Read each output pixel from (y - dy, x - dx) of a zero-padded copy; out of range -> padding.
        rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx + 1).clamp(0, w + 1)
        padded = torch.nn.functional.pad(x - self.middle, (1, 1, 1, 1)) + self.middle
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        moved = padded.permute(0, 2, 3, 1)[batch, rows, cols]  # (n, h, w, c)
        return moved.permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        _, _, h, w = x.shape
        size_y, size_x = self._cutout_size(h, w)
        ys = torch.arange(h, device=x.device).view(1, h, 1) - params["cy"] + size_y // 2  # row within the square
        xs = torch.arange(w, device=x.device).view(1, 1, w) - params["cx"] + size_x // 2
        inside = (ys >= 0) & (ys < size_y) & (xs >= 0) & (xs < size_x)
        keep = (~inside).unsqueeze(1).to(x.dtype)  # (n, 1, h, w)
        return x * keep + self.middle * (1 - keep)

    # --- resume ---------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {"rng": self.rng.get_state()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.rng.set_state(tensors["rng"])
