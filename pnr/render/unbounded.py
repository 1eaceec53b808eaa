"""Volume rendering for contracted (unbounded) fields: piecewise linear / disparity sampling.

Each ray gets `num_samples` bins: a fraction `linear_fraction` spaced evenly in depth from the camera (`near`)
to where the ray leaves the inner ball of radius `bound` (for rays that miss it: to its closest approach to the
centre), the rest evenly in inverse depth (disparity) from there to `far` (nerfacto's
UniformLinDispPiecewiseSampler, mip-NeRF 360's s-space beyond the ball). Samples sit at the bin centres
(jittered inside their bins when training); the quadrature uses each bin's own length. Empty-space skipping
uses the occupancy grid over the contracted space (pnr/render/occupancy_contracted.py) and early ray
termination stops rays whose transmittance falls below `t_eps`, as the bounded renderer does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pnr import rng
from pnr.render.volume import composite

FAR = 1000.0  # far plane in units of the field's bound (nerfacto: 1000)


def bin_edges(origins: Tensor, dirs: Tensor, bound: float, num_samples: int, near: float = 0.0,
              far: float | None = None, linear_fraction: float = 0.5) -> Tensor:
    """Depths of the bin edges [R, num_samples + 1], increasing along each ray."""
    far = FAR * bound if far is None else far
    od = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - bound * bound
    disc = od * od - c
    t_exit = torch.where(disc > 0, -od + torch.sqrt(disc.clamp(min=0)), -od)
    t1 = t_exit.clamp(min=near + 1e-3 * bound, max=far * 0.5)
    n_lin = max(1, min(num_samples - 1, round(num_samples * linear_fraction)))
    n_dis = num_samples - n_lin
    dev = origins.device
    s_lin = torch.arange(n_lin + 1, device=dev, dtype=origins.dtype) / n_lin
    lin = near + s_lin[None] * (t1[:, None] - near)  # [R, n_lin + 1]
    s_dis = torch.arange(1, n_dis + 1, device=dev, dtype=origins.dtype) / n_dis
    inv = 1 / t1[:, None] + s_dis[None] * (1 / far - 1 / t1[:, None])
    return torch.cat([lin, 1 / inv], dim=1)


def render_rays_unbounded(field, origins: Tensor, dirs: Tensor, occupancy=None, num_samples: int = 128,
                          perturb: bool = False, generator: torch.Generator | None = None,
                          bg_color: Tensor | None = None, segment: int | None = None,
                          t_eps: float = 1e-4) -> dict[str, Tensor]:
    """Same contract as `pnr.render.volume.render_rays` for a field with a contraction."""
    R, dev = origins.shape[0], origins.device
    if segment is None:
        segment = num_samples if dev.type == "cuda" else 32
    edges = bin_edges(origins, dirs, field.cfg.bound, num_samples)
    width = edges[:, 1:] - edges[:, :-1]  # [R, S]
    T = torch.ones(R, device=dev)
    alive = torch.ones(R, dtype=torch.bool, device=dev)
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
        u = rng.rand((r, k), generator, dev) if perturb else torch.full((r, k), 0.5, device=dev)
        delta = width[ridx, s0:s0 + k]
        ts = edges[ridx, s0:s0 + k] + u * delta  # [r, k]
        o, d = origins[ridx], dirs[ridx]
        pts = (o[:, None] + d[:, None] * ts[..., None]).reshape(-1, 3)
        sel = (occupancy.query(pts) if occupancy is not None else torch.ones(r * k, dtype=torch.bool, device=dev))
        sel = sel.nonzero()[:, 0]
        evaluated += sel.numel()
        sigma_s, rgb_s = field.query(pts[sel], d[:, None].expand(r, k, 3).reshape(-1, 3)[sel])
        sigma = torch.zeros(r * k, device=dev, dtype=sigma_s.dtype).index_put((sel,), sigma_s).view(r, k)
        rgb = torch.zeros(r * k, 3, device=dev, dtype=rgb_s.dtype).index_put((sel,), rgb_s).view(r, k, 3)
        c_rgb, c_w, c_d, c_tau = composite(sigma, rgb, ts, delta, T[ridx])
        acc_rgb = acc_rgb.index_add(0, ridx, c_rgb)
        acc_w = acc_w.index_add(0, ridx, c_w)
        acc_d = acc_d.index_add(0, ridx, c_d)
        T = T.index_put((ridx,), T[ridx] * torch.exp(-c_tau))
        alive = alive & (T.detach() > t_eps)
    bg = field.background(dirs) if bg_color is None else bg_color.to(dev).expand(R, 3)
    rgb = acc_rgb + (1 - acc_w)[:, None] * bg
    return {"rgb": rgb, "opacity": acc_w, "depth": acc_d, "samples_per_ray": torch.tensor(evaluated / max(R, 1))}
