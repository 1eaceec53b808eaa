"""The one denoiser interface every guidance function uses (built-in prior, diffusers adapters).

Shapes: B = batch of view-groups, V = views denoised jointly (4 for a multi-view prior, 1 for a
single-view prior), C/h/w = the prior's own space (RGB pixels for the built-in prior, 4-channel
latents for Stable Diffusion). Time t is continuous in [0, 1] and maps onto the discrete DDPM
schedule; x_t = alpha(t) * x0 + sigma(t) * eps (variance preserving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor


@dataclass
class NoiseSchedule:
    """Discrete VP schedule; `alphas_cumprod: [T]`. t in [0,1] -> index round(t * (T - 1))."""

    alphas_cumprod: Tensor

    @property
    def num_steps(self) -> int:
        return self.alphas_cumprod.shape[0]

    def index(self, t: Tensor) -> Tensor:
        return (t.clamp(0, 1) * (self.num_steps - 1)).round().long()

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        acp = self.on(t.device)[self.index(t)]
        return acp.sqrt(), (1 - acp).sqrt()

    def on(self, device) -> Tensor:
        """alphas_cumprod on `device`, copied there once (a copy every step would stall the host on a GPU)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if self.alphas_cumprod.device == device:
            return self.alphas_cumprod
        cache = self.__dict__.setdefault("_on", {})
        if device not in cache:
            cache[device] = self.alphas_cumprod.to(device)
        return cache[device]

    @staticmethod
    def scaled_linear(num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> "NoiseSchedule":
        """Stable Diffusion's schedule (also used by MVDream and the built-in prior)."""
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2
        return NoiseSchedule(torch.cumprod(1 - betas, 0).float())

    @staticmethod
    def cosine(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """Nichol & Dhariwal's cosine schedule (improved DDPM), made for pixel-space 64x64 models: its
        last step is almost pure noise, so sampling from N(0, I) matches training (scaled_linear keeps
        ~7% of the image at t=1, enough for a pixel model to read the mean colour off the noise)."""
        f = lambda u: torch.cos((u / num_steps + s) / (1 + s) * torch.pi / 2) ** 2  # noqa: E731
        i = torch.arange(num_steps + 1, dtype=torch.float64)
        betas = (1 - f(i[1:]) / f(i[:-1])).clamp(max=max_beta)
        return NoiseSchedule(torch.cumprod(1 - betas, 0).float())


class Denoiser(Protocol):
    """What guidance needs from a diffusion prior. Implementations: pnr.priors.builtin, pnr.priors.sd, ...

    Each prior states its own behaviour as attributes, so callers never test its type."""

    num_views: int  # V views denoised jointly
    image_size: int  # render resolution the prior expects (pixels)
    schedule: NoiseSchedule

    x0_range: float | None
    """Bound r of the prior's space: x0 estimates are clamped to [-r, r]. 1.0 for pixel-space priors (images in
    [-1, 1], and a clamped estimate stops one bad step from throwing colours out of range); None for latent
    priors, whose latents have no fixed range."""

    default_guidance_scale: float
    """Classifier-free guidance for score distillation when the caller sets none: the value this prior's
    reference recipe uses (the scale that works differs by an order of magnitude between priors)."""

    delta_min: float
    """Δ_min of Alg. 2 (η from the loss decrease) in pnr.guidance.sds's loss units for this prior's space: the
    paper's 1000 (MVDream-threestudio units) for the paper's priors, calibrated for priors whose loss scale
    differs (pixel space at 64², the built-in prior)."""

    def encode_text(self, prompts: list[str]) -> Any:
        """Conditioning for `prompts` (raises PromptError for text the prior cannot represent)."""

    def null_text(self, batch: int) -> Any:
        """Unconditional conditioning (classifier-free guidance's empty prompt)."""

    def encode_images(self, rgb: Tensor) -> Tensor:
        """rgb: [B, V, 3, H, W] in [0, 1] -> x: [B, V, C, h, w] in the prior's space; differentiable."""

    def decode(self, x: Tensor) -> Tensor:
        """x: [B, V, C, h, w] -> rgb [B, V, 3, H, W] in [0, 1]."""

    def predict_eps(self, x_t: Tensor, t: Tensor, cond: Any, c2w: Tensor) -> Tensor:
        """Noise prediction. x_t: [B, V, C, h, w], t: [B] in [0,1], c2w: [B, V, 4, 4] (OpenGL, z-up world)."""


def cat_cond(a: Any, b: Any) -> Any:
    """Concatenate two conditionings along the batch (tensors, or dicts/tuples of tensors)."""
    if isinstance(a, Tensor):
        return torch.cat([a, b])
    if isinstance(a, dict):
        return {k: cat_cond(a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        return type(a)(cat_cond(x, y) for x, y in zip(a, b))
    raise TypeError(f"cannot batch conditioning of type {type(a)}")


def predict_eps_cfg(den: Denoiser, x_t: Tensor, t: Tensor, cond: Any, uncond: Any, c2w: Tensor,
                    guidance_scale: float) -> Tensor:
    """Classifier-free guidance: eps_u + s * (eps_c - eps_u), both branches in one batched call."""
    return predict_eps_cfg_and_cond(den, x_t, t, cond, uncond, c2w, guidance_scale)[0]


def predict_eps_cfg_and_cond(den: Denoiser, x_t: Tensor, t: Tensor, cond: Any, uncond: Any, c2w: Tensor,
                             guidance_scale: float) -> tuple[Tensor, Tensor]:
    """(eps_cfg, eps_c), both [B, V, C, h, w], from one batched call: callers that also need the conditional
    branch alone (MVDream-threestudio's recon_std_rescale) get it without a third network evaluation.
    At guidance_scale 1 the two are the same tensor (one unbatched call)."""
    if guidance_scale == 1.0:
        eps = den.predict_eps(x_t, t, cond, c2w)
        return eps, eps
    eps = den.predict_eps(torch.cat([x_t, x_t]), torch.cat([t, t]), cat_cond(cond, uncond), torch.cat([c2w, c2w]))
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u), eps_c


def x0_from_eps(den: Denoiser, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    alpha, sigma = den.schedule.alpha_sigma(t)
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    return (x_t - sigma.view(shape) * eps) / alpha.view(shape)
