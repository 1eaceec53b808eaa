"""A tiny exact denoiser for tests: the data distribution of prompt p is the constant image of colour
c(p), so D(x_t) = c(p) exactly and eps_hat = (x_t - alpha c) / sigma. SDS then pulls renders toward
c(p); SDEdit returns c(p); PDS's gradient has a closed form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pnr.errors import PromptError
from pnr.priors.base import NoiseSchedule

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0),
           "white": (1.0, 1.0, 1.0), "grey": (0.0, 0.0, 0.0)}
WORDS = set(COLOURS) | {"a", "mug", "in"}


class ToyDenoiser:
    x0_range = 1.0  # pixel space, like the built-in prior
    default_guidance_scale = 20.0  # EditConfig's default, which the loop tests run with
    delta_min = 1000.0  # what the edit gives non-built-in priors today (the paper's value)

    def __init__(self, num_views: int = 4, image_size: int = 8, nan_after: int | None = None):
        self.num_views = num_views
        self.image_size = image_size
        self.schedule = NoiseSchedule.cosine(1000)
        self.calls = 0
        self.nan_after = nan_after
        self.pixel_space = True

    def encode_text(self, prompts: list[str]) -> Tensor:
        out = []
        for p in prompts:
            words = p.lower().replace(",", " ").split()
            bad = [w for w in words if w not in WORDS]
            if bad:
                raise PromptError(f"unknown words {bad} in {p!r}")
            cols = [COLOURS[w] for w in words if w in COLOURS]
            out.append(torch.tensor(cols[-1] if cols else (0.0, 0.0, 0.0)))
        return torch.stack(out)

    def null_text(self, batch: int) -> Tensor:
        return torch.zeros(batch, 3)

    def encode_images(self, rgb: Tensor) -> Tensor:
        b, v, c, h, w = rgb.shape
        x = rgb.reshape(b * v, c, h, w)
        if h != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x * 2 - 1).reshape(b, v, c, self.image_size, self.image_size)

    def decode(self, x: Tensor) -> Tensor:
        return ((x + 1) / 2).clamp(0, 1)

    def predict_eps(self, x_t: Tensor, t: Tensor, cond: Tensor, c2w: Tensor) -> Tensor:
        self.calls += 1
        alpha, sigma = self.schedule.alpha_sigma(t.to(x_t.device))
        sh = (-1,) + (1,) * (x_t.dim() - 1)
        c = cond.to(x_t)[:, None, :, None, None]
        eps = (x_t - alpha.view(sh) * c) / sigma.view(sh)
        if self.nan_after is not None and self.calls > self.nan_after:
            eps = eps * float("nan")
        return eps
