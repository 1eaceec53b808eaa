"""Analytic test scene: a few diffuse coloured spheres, ray-traced exactly into RGBA views."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from pnr.data.transforms import write_transforms_dataset
from pnr.field.config import FieldConfig
from pnr.render.cameras import from_fov, generate_rays, look_at, orbit_positions

# Colours are mid-saturated: at 64x64 the error of a small fit is dominated by silhouette pixels, and
# fully saturated colours on white make those alone cost ~1-2 dB (measured, docs/foundation.md).
SPHERES = [  # centre, radius, colour
    ((0.35, 0.0, 0.0), 0.45, (0.89, 0.47, 0.47)),
    ((-0.3, 0.3, 0.1), 0.35, (0.47, 0.83, 0.53)),
    ((-0.2, -0.4, -0.2), 0.3, (0.47, 0.53, 0.89)),
]


def render_spheres(cams) -> torch.Tensor:
    """RGBA [B, H, W, 4]: nearest-hit sphere colour with Lambert shading from a fixed light."""
    o, d = generate_rays(cams)
    best = torch.full(o.shape[:-1], float("inf"))
    rgb = torch.zeros(*o.shape[:-1], 3)
    light = torch.nn.functional.normalize(torch.tensor([0.4, -0.5, 0.8]), dim=0)
    for c, r, col in SPHERES:
        c = torch.tensor(c)
        oc = o - c
        b = (oc * d).sum(-1)
        disc = b * b - ((oc * oc).sum(-1) - r * r)
        t = -b - torch.sqrt(disc.clamp(min=0))
        hit = (disc > 0) & (t > 0) & (t < best)
        n = torch.nn.functional.normalize(o + t[..., None] * d - c, dim=-1)
        shade = 0.35 + 0.65 * (n @ light).clamp(min=0)
        rgb = torch.where(hit[..., None], torch.tensor(col) * shade[..., None], rgb)
        best = torch.where(hit, t, best)
    alpha = torch.isfinite(best).float()
    return torch.cat([rgb, alpha[..., None]], dim=-1)


def sphere_cameras(n: int, res: int = 64, seed: int = 0, radius: float = 3.0, fov: float = 40.0):
    g = torch.Generator().manual_seed(seed)
    az = torch.rand(n, generator=g) * 360
    el = torch.rand(n, generator=g) * 70 - 20
    return from_fov(look_at(orbit_positions(az, el, radius)), fov, res)


def make_spheres_dataset(out_dir, n: int = 40, res: int = 64, test_every: int = 8, seed: int = 0):
    import math

    cams = sphere_cameras(n, res, seed)
    return write_transforms_dataset(out_dir, render_spheres(cams), cams.c2w, math.radians(40.0), test_every=test_every)


# small enough for a 2-core CPU: 64x64 views need no more than 128 cells across the box
TEST_FIELD = FieldConfig(levels=6, log2_table_size=14, base_resolution=8, max_resolution=128, hidden_dim=32)
FIT_STEPS = 800  # ~80 s on a free 2-core CPU; 28.8 dB held-out when tuned (docs/foundation.md)
FIT_RAYS = 1024


@functools.lru_cache(maxsize=1)
def fitted_spheres():
    """One small fit of the sphere scene shared by the tests of one pytest process:
    -> (dataset, field, occupancy, metrics, run_dir)."""
    import tempfile

    from pnr.data.transforms import load_transforms_dataset
    from pnr.fit import FitConfig, fit

    root = Path(tempfile.mkdtemp(prefix="pnr-spheres-"))
    ds = load_transforms_dataset(make_spheres_dataset(root / "data"))
    cfg = FitConfig(steps=FIT_STEPS, rays_per_batch=FIT_RAYS, num_samples=128, checkpoint_every=10**9,
                    occupancy_resolution=32)
    field, occ, metrics = fit(ds, TEST_FIELD, cfg, root / "run", progress=False)
    return ds, field, occ, metrics, root / "run"
