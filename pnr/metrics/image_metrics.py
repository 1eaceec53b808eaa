"""Image-space metrics over turntable frames: LPIPS to the source, A-LPIPS, PSNR, and sanity checks.

Frames are float [V,3,H,W] in [0,1] or uint8 [V,H,W,3] (what `pnr.render.turntable.turntable` returns).
- LPIPS (Zhang et al. 2018), here the shift-tolerant variant by default: mean over views of the
  perceptual distance between source and edited render from the same camera (lower = closer to source).
- A-LPIPS (Hong et al., "Debiasing scores and prompts of 2D diffusion for view-consistent text-to-3D",
  NeurIPS 2023): mean perceptual distance between adjacent turntable frames of one object (lower = smoother,
  more view-consistent). Reported for the edit; the source's value is the reference level.
"""

from __future__ import annotations

import math

import torch

from pnr.metrics.clip_metrics import as_float_chw
from pnr.metrics.perceptual import perceptual_distance


@torch.no_grad()
def lpips_pairs(a: torch.Tensor, b: torch.Tensor, net: str = "alex", backend: str = "stlpips", batch: int = 32) -> torch.Tensor:
    """Per-frame perceptual distance between aligned frame sets -> [V]."""
    a = as_float_chw(a)
    b = as_float_chw(b).to(a.device)  # turntables come back on the CPU, exact GT renders on the model's device
    return torch.cat([perceptual_distance(a[i : i + batch], b[i : i + batch], net, backend) for i in range(0, a.shape[0], batch)])


def lpips_mean(a: torch.Tensor, b: torch.Tensor, net: str = "alex", backend: str = "stlpips") -> float:
    return lpips_pairs(a, b, net, backend).mean().item()


def a_lpips(frames: torch.Tensor, net: str = "alex", backend: str = "stlpips", cyclic: bool = True) -> float:
    """Mean perceptual distance between adjacent frames (cyclic: last frame neighbours the first)."""
    f = as_float_chw(frames)
    nxt = torch.roll(f, -1, 0) if cyclic else f[1:]
    cur = f if cyclic else f[:-1]
    return lpips_pairs(cur, nxt, net, backend).mean().item()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB over all frames together (peak 1.0); identical frames give +inf."""
    a = as_float_chw(a).float()
    b = as_float_chw(b).float().to(a.device)
    mse = (a - b).pow(2).mean().item()
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def foreground_fraction(frames: torch.Tensor, background: float | torch.Tensor = 1.0, tol: float = 0.04) -> torch.Tensor:
    """Fraction of pixels per frame that differ from a uniform background (gray level or RGB [3]) -> [V]."""
    f = as_float_chw(frames).float()
    bg = background.float().view(1, 3, 1, 1) if torch.is_tensor(background) else background
    return ((f - bg).abs().amax(1) > tol).float().mean((1, 2))


SANITY_VERSION = 2  # 1: coverage against the source's background colour (any uniform tint > tol read as 100%)


def border_background(frames: torch.Tensor) -> torch.Tensor:
    """Each frame's own background colour: the per-channel median of its 1-pixel border -> [V,3]."""
    f = as_float_chw(frames).float()
    border = torch.cat([f[:, :, 0, :], f[:, :, -1, :], f[:, :, :, 0], f[:, :, :, -1]], -1)  # [V,3,4W]
    return border.median(-1).values


def render_sanity(frames: torch.Tensor, reference: torch.Tensor | None = None, background: float | torch.Tensor = 1.0,
                  tol: float = 0.04, fog: float = 0.25) -> dict:
    """Success checks on an edit's turntable: finite, not empty, not exploded.

    coverage: fraction of pixels that differ (> tol in some channel) from the frame's OWN background, the
    median of its border, so a faint uniform tint of the empty space (a thin haze, a shifted background
    colour, e.g. a field regenerated from random init) does not count as object. (Version 1 measured it
    against the source's `background`, so any tint > tol read as 100% coverage and "exploded".)
    haze: how far the frames' own background is from `background` (max channel, max over frames).
    reference_coverage: the reference's coverage against `background`.
    empty: the object covers < 0.5% of the pixels on average (or < 10% of the reference's coverage).
    exploded: it covers > 90% of the pixels, or > 3x the reference's coverage when that is under 30%, or
    haze > fog (the border itself is covered: opaque fog, or an object filling the frame).
    """
    f = torch.nan_to_num(as_float_chw(frames).float(), nan=0.5)
    finite = bool(torch.isfinite(as_float_chw(frames).float()).all())
    own = border_background(f)  # [V,3]
    cov = ((f - own[:, :, None, None]).abs().amax(1) > tol).float().mean().item()
    bg = background.float().to(own).view(1, 3) if torch.is_tensor(background) else torch.full_like(own, float(background))
    haze = (own - bg).abs().amax().item()
    ref = foreground_fraction(reference, background, tol).mean().item() if reference is not None else None
    empty = cov < 0.005 or (ref is not None and cov < 0.1 * ref)
    exploded = cov > 0.9 or (ref is not None and ref < 0.3 and cov > 3.0 * ref) or haze > fog
    return {"finite": finite, "coverage": cov, "reference_coverage": ref, "haze": haze, "empty": empty,
            "exploded": exploded, "success": finite and not empty and not exploded, "sanity_version": SANITY_VERSION}
