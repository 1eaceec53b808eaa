"""Score distillation (DreamFusion, Poole et al. 2023; multi-view form: PnR paper Eq. 4).

x: [B, V, C, h, w] renders in the prior's space (differentiable), V views of one orbit per group,
denoised jointly by a multi-view prior (V = 1: single-view). The image-space gradient is

    grad = w(t) * (eps_hat - eps)            weighting "eps"  (DreamFusion, w = 1 - alpha_bar = sigma^2)
    grad = x - D(x_t)                        weighting "x0"   (paper Eq. 4: the denoiser's x0 estimate D)

with classifier-free guidance in eps_hat. The "loss" is the usual surrogate whose gradient is `grad`:

    L = 1/2 * sum over (C, h, w) of (x - stopgrad(x - grad))^2, averaged over the B*V views

i.e. summed over the elements of one view, averaged over views (threestudio's convention, which the
paper's Δ_min = 1000 is measured in). For "x0" weighting L = 1/2 ||x - D(x_t)||^2 per view.

recon_std_rescale (MVDream-threestudio's `recon_std_rescale`, default 0.5 there, 0 here): at high CFG the
guided x0 estimate D_cfg has a much larger spread than the conditional one D_c; it is blended with a copy
rescaled to D_c's std (one std per group of V views):  D = f * D_cfg * std(D_c) / std(D_cfg) + (1 - f) * D_cfg.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pnr import rng
from pnr.priors.base import Denoiser, predict_eps_cfg_and_cond


def surrogate_loss(x: Tensor, grad: Tensor) -> Tensor:
    """1/2 ||x - stopgrad(x - grad)||^2 summed per view, mean over the B*V views; d/dx = grad / (B*V).
    NaN/Inf in grad are kept (not zeroed) so that the edit loop can stop on them."""
    target = (x - grad).detach()
    n_views = x.shape[0] * x.shape[1]
    return 0.5 * (x - target).pow(2).sum() / n_views


def expand_t(t: Tensor, x: Tensor) -> Tensor:
    return t.view(-1, *([1] * (x.dim() - 1))).to(x.device, x.dtype)


def std_rescaled(x0_cfg: Tensor, x0_c: Tensor, factor: float) -> Tensor:
    """MVDream-threestudio's recon_std_rescale: x0_cfg [B, V, C, h, w] blended with its copy scaled to the std
    of x0_c, one (unbiased) std per group over (V, C, h, w); factor 0 returns x0_cfg itself."""
    if factor == 0.0:
        return x0_cfg
    dims = tuple(range(1, x0_cfg.dim()))
    ratio = (x0_c.std(dims, keepdim=True) + 1e-8) / (x0_cfg.std(dims, keepdim=True) + 1e-8)  # [B, 1, 1, 1, 1]
    return factor * (x0_cfg * ratio) + (1 - factor) * x0_cfg


def sds(den: Denoiser, x: Tensor, cond: Any, uncond: Any, c2w: Tensor, t: Tensor, guidance_scale: float,
        weighting: str = "x0", x0_range: float | None = None, generator: torch.Generator | None = None,
        noise: Tensor | None = None, recon_std_rescale: float = 0.0) -> dict[str, Tensor]:
    """One SDS evaluation. x: [B, V, C, h, w] (requires grad), t: [B] in [0, 1], c2w: [B, V, 4, 4].
    x0_range clamps D's x0 estimate to [-r, r] (pixel-space priors), after the std rescale (weighting "x0"
    only; see the module doc). Returns {"loss", "grad", "t"}."""
    if not 0.0 <= recon_std_rescale <= 1.0:
        raise ValueError(f"recon_std_rescale must be in [0, 1], got {recon_std_rescale}")
    if recon_std_rescale and weighting != "x0":
        raise ValueError("recon_std_rescale applies to the x0 estimate: use it with weighting 'x0'")
    if noise is None:
        noise = rng.randn(x.shape, generator, x.device).to(x.dtype)
    alpha, sigma = den.schedule.alpha_sigma(t.to(x.device))
    a, s = expand_t(alpha, x), expand_t(sigma, x)
    with torch.no_grad():
        x_t = a * x.detach() + s * noise
        eps_hat, eps_c = predict_eps_cfg_and_cond(den, x_t, t.to(x.device), cond, uncond, c2w, guidance_scale)
        eps_hat = eps_hat.to(x.dtype)
        if weighting == "eps":
            grad = s * s * (eps_hat - noise)
        elif weighting == "x0":
            x0_hat = (x_t - s * eps_hat) / a
            if recon_std_rescale:
                x0_hat = std_rescaled(x0_hat, (x_t - s * eps_c.to(x.dtype)) / a, recon_std_rescale)
            if x0_range is not None:
                x0_hat = x0_hat.clamp(-x0_range, x0_range)
            grad = x.detach() - x0_hat
        else:
            raise ValueError(f"unknown SDS weighting {weighting!r} (expected 'eps' or 'x0')")
    return {"loss": surrogate_loss(x, grad), "grad": grad, "t": t}
