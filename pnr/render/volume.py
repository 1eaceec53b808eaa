"""Differentiable volume rendering of a Field (NeRF quadrature, Mildenhall et al. 2020, Eq. 3).

Rays are clipped to the box [-bound, bound]^3; each gets `num_samples` evenly spaced samples (jittered
when training). Samples are evaluated in segments along the ray so that (a) samples in cells the
occupancy grid marks empty are skipped and (b) rays whose transmittance drops below `t_eps` stop
(early ray termination). Skipped samples have sigma = 0. The background is composited:
rgb = rgb_fg + (1 - opacity) * bg.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pnr import rng
from pnr.render.cameras import Cameras, generate_rays


def ray_box(origins: Tensor, dirs: Tensor, bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """Slab test against [-bound, bound]^3: near [R], far [R], hit [R] (near >= 0)."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-bound - origins) * inv, (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far, far > near


def composite(sigma: Tensor, rgb: Tensor, ts: Tensor, delta: Tensor,
              T: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The quadrature over consecutive samples of r rays: sigma [r, k], rgb [r, k, 3], ts [r, k] sample depths,
    delta [r, 1] or [r, k] sample spacing, T [r] transmittance before the first sample (None: 1) ->
    (rgb [r, 3], opacity [r], depth [r], optical depth of the k samples [r]: T after them = T * exp(-that))."""
    tau = sigma * delta  # optical depth per sample
    csum = torch.cumsum(tau, dim=1)
    trans = torch.exp(-(csum - tau))  # exclusive transmittance inside these samples
    if T is not None:
        trans = T[:, None] * trans
    w = trans * (1 - torch.exp(-tau))  # [r, k]
    return (w[..., None] * rgb).sum(1), w.sum(1), (w * ts).sum(1), csum[:, -1]


def render_rays(field, origins: Tensor, dirs: Tensor, occupancy=None, num_samples: int = 128,
                perturb: bool = False, generator: torch.Generator | None = None, bg_color: Tensor | None = None,
                segment: int | None = None, t_eps: float = 1e-4) -> dict[str, Tensor]:
    """origins, dirs: [R, 3] (dirs unit) -> {"rgb": [R, 3], "opacity": [R], "depth": [R],
    "samples_per_ray": scalar (samples actually evaluated / R)}. bg_color: [3] or [R, 3] overrides
    the field's background (fitting uses random colours so opacity must match alpha).
    segment None: 32 samples on the CPU (FLOP-bound: early termination pays), the whole ray on a GPU
    (launch-bound: one segment halves the kernels; occupancy skipping still applies)."""
    if getattr(field.cfg, "contraction", "none") != "none":  # unbounded: pnr/render/unbounded.py
        from pnr.render.unbounded import render_rays_unbounded

        return render_rays_unbounded(field, origins, dirs, occupancy, num_samples, perturb, generator, bg_color,
                                     segment, t_eps)
    R, dev = origins.shape[0], origins.device
    if segment is None:
        segment = num_samples if dev.type == "cuda" else 32
    near, far, hit = ray_box(origins, dirs, field.cfg.bound)
    delta = torch.where(hit, far - near, torch.zeros_like(far)) / num_samples  # [R]
    T = torch.ones(R, device=dev)  # transmittance carried between segments (differentiable)
    alive = hit.clone()
    acc_rgb = torch.zeros(R, 3, device=dev)
    acc_w = torch.zeros(R, device=dev)
    acc_d = torch.zeros(R, device=dev)
    evaluated = 0
    for s0 in range(0, num_samples, segment):
        ridx = alive.nonzero()[:, 0]
        if ridx.numel() == 0:
            break
        k = min(segment, num_samples - s0)
        r = ridx.numel()
        u = (rng.rand((r, k), generator, dev) if perturb
             else torch.full((r, k), 0.5, device=dev))
        ts = near[ridx, None] + (torch.arange(s0, s0 + k, device=dev)[None] + u) * delta[ridx, None]  # [r, k]
        o, d = origins[ridx], dirs[ridx]
        pts = (o[:, None] + d[:, None] * ts[..., None]).reshape(-1, 3)
        sel = (occupancy.query(pts) if occupancy is not None else torch.ones(r * k, dtype=torch.bool, device=dev))
        sel = sel.nonzero()[:, 0]
        evaluated += sel.numel()
        sigma_s, rgb_s = field.query(pts[sel], d[:, None].expand(r, k, 3).reshape(-1, 3)[sel])
        sigma = torch.zeros(r * k, device=dev, dtype=sigma_s.dtype).index_put((sel,), sigma_s).view(r, k)
        rgb = torch.zeros(r * k, 3, device=dev, dtype=rgb_s.dtype).index_put((sel,), rgb_s).view(r, k, 3)
        c_rgb, c_w, c_d, c_tau = composite(sigma, rgb, ts, delta[ridx, None], T[ridx])
        acc_rgb = acc_rgb.index_add(0, ridx, c_rgb)
        acc_w = acc_w.index_add(0, ridx, c_w)
        acc_d = acc_d.index_add(0, ridx, c_d)
        T = T.index_put((ridx,), T[ridx] * torch.exp(-c_tau))
        alive = alive & (T.detach() > t_eps)
    if bg_color is None:
        bg = field.background(dirs)
    else:
        bg = bg_color.to(dev).expand(R, 3)
    rgb = acc_rgb + (1 - acc_w)[:, None] * bg
    return {"rgb": rgb, "opacity": acc_w, "depth": acc_d,
            "samples_per_ray": torch.tensor(evaluated / max(R, 1))}


def render(field, cams: Cameras, occupancy=None, num_samples: int = 128, perturb: bool = False,
           generator: torch.Generator | None = None, bg_color: Tensor | None = None, chunk: int = 1 << 16,
           segment: int | None = None, t_eps: float = 1e-4) -> dict[str, Tensor]:
    """Render all pixels of all cameras: {"rgb": [B, H, W, 3], "opacity": [B, H, W], "depth": [B, H, W],
    "samples_per_ray": scalar}. Differentiable w.r.t. the field; `chunk` bounds rays per field call
    (under torch.no_grad it bounds memory; with grad the graph of every chunk is kept)."""
    cams = cams.to(field.device)
    origins, dirs = generate_rays(cams)
    B, H, W = origins.shape[:3]
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    outs = [render_rays(field, o[i:i + chunk], d[i:i + chunk], occupancy, num_samples, perturb, generator,
                        bg_color, segment, t_eps) for i in range(0, o.shape[0], chunk)]
    n = [x["rgb"].shape[0] for x in outs]
    spr = sum(x["samples_per_ray"] * k for x, k in zip(outs, n)) / sum(n)
    return {"rgb": torch.cat([x["rgb"] for x in outs]).view(B, H, W, 3),
            "opacity": torch.cat([x["opacity"] for x in outs]).view(B, H, W),
            "depth": torch.cat([x["depth"] for x in outs]).view(B, H, W),
            "samples_per_ray": spr}
