"""Fixed-shape volume rendering: the same quadrature as `volume.render_rays`, with no host sync.

Why: on a GPU the edit step is bound by kernel launches, not by work (docs/speed.md); a CUDA graph
removes the launches, but needs every tensor shape fixed and no `nonzero()` / `.item()` inside. Here the
occupancy-skipped samples are compacted by a stable sort of the skip mask to a fixed `budget` (occupied
samples first, in ray order) instead of `nonzero()`; everything else is dense over [R, S]. With
`budget >= occupied_samples(...)` the result equals `render_rays(..., segment=S)` up to float summation
order (tests/render/test_static.py); samples past the budget are dropped (they count as empty).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pnr.render.volume import composite, ray_box


def sample_points(origins: Tensor, dirs: Tensor, bound: float, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Stratified samples along rays clipped to the box. u: [R, S] jitter in [0, 1) (0.5 = centres).
    -> ts [R, S], pts [R*S, 3], delta [R] (spacing, 0 for rays missing the box), hit [R]."""
    R, S = u.shape
    near, far, hit = ray_box(origins, dirs, bound)
    delta = torch.where(hit, far - near, torch.zeros_like(far)) / S
    ts = near[:, None] + (torch.arange(S, device=u.device, dtype=u.dtype)[None] + u) * delta[:, None]
    pts = (origins[:, None] + dirs[:, None] * ts[..., None]).reshape(R * S, 3)
    return ts, pts, delta, hit


def sample_mask(pts: Tensor, hit: Tensor, occupancy, S: int) -> Tensor:
    """bool [R*S]: samples to evaluate (ray hits the box and, with a grid, the cell is occupied)."""
    sel = hit[:, None].expand(-1, S).reshape(-1)
    return sel & occupancy.query(pts) if occupancy is not None else sel


def occupied_samples(origins: Tensor, dirs: Tensor, bound: float, occupancy, num_samples: int) -> Tensor:
    """How many samples `render_rays_static` must keep for these rays (0-dim tensor; reading it syncs).
    Jitter moves samples by less than one spacing, so the count is taken at the bin centres; give a margin."""
    u = torch.full((origins.shape[0], num_samples), 0.5, device=origins.device)
    _, pts, _, hit = sample_points(origins, dirs, bound, u)
    return sample_mask(pts, hit, occupancy, num_samples).sum()


def render_rays_static(field, origins: Tensor, dirs: Tensor, occupancy, u: Tensor, budget: int,
                       bg_color: Tensor | None = None) -> dict[str, Tensor]:
    """origins, dirs: [R, 3]; u: [R, S] jitter; budget: samples evaluated (fixed) ->
    {"rgb": [R, 3], "opacity": [R], "depth": [R], "dropped": 0-dim count of occupied samples past the budget}."""
    R, S = u.shape
    ts, pts, delta, hit = sample_points(origins, dirs, field.cfg.bound, u)
    sel = sample_mask(pts, hit, occupancy, S)  # [R*S]
    budget = min(budget, R * S)
    order = torch.argsort((~sel).to(torch.uint8), stable=True)[:budget]  # occupied first, ray-major
    keep = sel[order]
    d = dirs[:, None].expand(R, S, 3).reshape(R * S, 3)
    sigma_k, rgb_k = field.query(pts[order], d[order])
    sigma = torch.zeros(R * S, device=pts.device, dtype=sigma_k.dtype).index_put((order,), sigma_k * keep)
    rgb = torch.zeros(R * S, 3, device=pts.device, dtype=rgb_k.dtype).index_put((order,), rgb_k * keep[:, None])
    acc_rgb, acc_w, acc_d, _ = composite(sigma.view(R, S), rgb.view(R, S, 3), ts, delta[:, None])
    bg = field.background(dirs) if bg_color is None else bg_color.to(pts.device).expand(R, 3)
    return {"rgb": acc_rgb + (1 - acc_w)[:, None] * bg, "opacity": acc_w, "depth": acc_d,
            "dropped": (sel.sum() - keep.sum())}
