"""Posterior Distillation Sampling (Koo, Park & Sung, CVPR 2024, Eq. 9-12).

PDS matches the *stochastic latents* z_t of the source and the target under their own prompts. For
an image x0 with prompt y, at a pair of steps (t, t_prev) of a coarse sampling grid, with one shared
noise eps for x_t and one shared noise eps' for x_{t_prev} (both drawn from q(. | x0)):

    x_t      = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    x_t_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps'
    mu(x_t, y) = c0 * x0_hat(x_t, y) + c1 * x_t      (DDPM posterior mean with the model's x0 estimate)
    z_t(x0, y) = (x_t_prev - mu(x_t, y)) / sigma_t

and the image-space gradient is grad = z_t(x_tgt, y_tgt) - z_t(x_src, y_src). The posterior
coefficients use the jump t -> t_prev (alpha = abar_t / abar_prev), which equals the one-step DDPM
posterior when the grid is the full schedule. t is drawn uniformly from the grid between 2% and 98%
(PDS's defaults: a 500-step grid, U(0.02, 0.98)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pnr.guidance.sds import surrogate_loss
from pnr import rng
from pnr.priors.base import Denoiser, predict_eps_cfg


def pds_timesteps(num_train_steps: int, batch: int, grid_steps: int = 500, lo: float = 0.02, hi: float = 0.98,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Discrete (t, t_prev) indices: [batch] each, on a `grid_steps` grid of the schedule."""
    grid = torch.arange(grid_steps) * (num_train_steps // grid_steps)
    i_lo = max(1, int(grid_steps * lo))
    i_hi = max(i_lo + 1, int(grid_steps * hi))
    i = torch.randint(i_lo, i_hi, (batch,), generator=generator)
    return grid[i], grid[i - 1]


def _z(den: Denoiser, x0: Tensor, cond: Any, uncond: Any, c2w: Tensor, t_idx: Tensor, tp_idx: Tensor,
       eps: Tensor, eps_prev: Tensor, guidance_scale: float) -> Tensor:
    acp = den.schedule.on(x0.device).float()
    shape = (-1,) + (1,) * (x0.dim() - 1)
    ab_t, ab_p = acp[t_idx].view(shape), acp[tp_idx].view(shape)
    alpha = ab_t / ab_p
    beta = 1 - alpha
    sigma_t = ((1 - ab_p) / (1 - ab_t) * beta).sqrt()
    x_t = ab_t.sqrt() * x0 + (1 - ab_t).sqrt() * eps
    t = t_idx.float().to(x0.device) / (den.schedule.num_steps - 1)
    eps_hat = predict_eps_cfg(den, x_t, t, cond, uncond, c2w, guidance_scale).float()
    x0_hat = (x_t - (1 - ab_t).sqrt() * eps_hat) / ab_t.sqrt()
    mu = ab_p.sqrt() * beta / (1 - ab_t) * x0_hat + alpha.sqrt() * (1 - ab_p) / (1 - ab_t) * x_t
    x_prev = ab_p.sqrt() * x0 + (1 - ab_p).sqrt() * eps_prev
    return (x_prev - mu) / sigma_t


def pds(den: Denoiser, x_tgt: Tensor, x_src: Tensor, cond_tgt: Any, cond_src: Any, uncond: Any, c2w: Tensor,
        guidance_scale: float, t_idx: Tensor, tp_idx: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """x_tgt: [B, V, C, h, w] current renders (requires grad), x_src: same cameras rendered from θ_src.
    t_idx, tp_idx: [B] discrete steps (see `pds_timesteps`). Returns {"loss", "grad", "t"}."""
    eps = rng.randn(x_tgt.shape, generator, x_tgt.device)
    eps_prev = rng.randn(x_tgt.shape, generator, x_tgt.device)
    with torch.no_grad():
        z_tgt = _z(den, x_tgt.detach().float(), cond_tgt, uncond, c2w, t_idx, tp_idx, eps, eps_prev, guidance_scale)
        z_src = _z(den, x_src.detach().float(), cond_src, uncond, c2w, t_idx, tp_idx, eps, eps_prev, guidance_scale)
        grad = (z_tgt - z_src).to(x_tgt.dtype)
    return {"loss": surrogate_loss(x_tgt, grad), "grad": grad, "t": t_idx.float() / (den.schedule.num_steps - 1)}
