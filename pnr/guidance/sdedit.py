"""SDEdit image editing (Meng et al. 2022): noise an image to level t, then DDIM-denoise it (eta = 0) with
the edit prompt. The image edit of the iterative-dataset-update baseline when no instruction-following
editor (InstructPix2Pix) is available."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pnr import rng
from pnr.priors.base import Denoiser, predict_eps_cfg


@torch.no_grad()
def sdedit(den: Denoiser, x0: Tensor, t_start: float, cond: Any, uncond: Any, c2w: Tensor, guidance_scale: float,
           steps: int = 20, x0_range: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """x0: [B, V, C, h, w] in the prior's space -> edited x0 of the same shape. `steps` DDIM steps evenly
    spaced from the discrete index of t_start down to 0."""
    sched = den.schedule
    acp = sched.alphas_cumprod.to(x0.device, torch.float32)
    i0 = int(sched.index(torch.tensor(float(t_start))))
    idx = torch.unique_consecutive(torch.linspace(i0, 0, max(steps, 1) + 1).round().long())
    noise = rng.randn(x0.shape, generator, x0.device)
    x = acp[i0].sqrt() * x0.float() + (1 - acp[i0]).sqrt() * noise
    b = x0.shape[0]
    for k in range(len(idx) - 1):
        i, j = int(idx[k]), int(idx[k + 1])
        t = torch.full((b,), i / (sched.num_steps - 1), device=x0.device)
        eps = predict_eps_cfg(den, x, t, cond, uncond, c2w, guidance_scale).float()
        x0_hat = (x - (1 - acp[i]).sqrt() * eps) / acp[i].sqrt()
        if x0_range is not None:
            x0_hat = x0_hat.clamp(-x0_range, x0_range)
            eps = (x - acp[i].sqrt() * x0_hat) / (1 - acp[i]).sqrt()
        x = acp[j].sqrt() * x0_hat + (1 - acp[j]).sqrt() * eps
    return x.to(x0.dtype)
