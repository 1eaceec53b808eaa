"""Analytic unbounded test scene: the coloured spheres of tests/field/spheres.py inside the unit ball, and a
distant textured background sphere (radius 6, a checkerboard in azimuth/elevation) around everything; the
cameras sit inside it, 2.5 units from the centre. Rendered exactly, opaque (no alpha), as a real capture is."""

from __future__ import annotations

import math

import torch

from pnr.data.transforms import write_transforms_dataset
from pnr.render.cameras import from_fov, generate_rays, look_at, orbit_positions
from tests.field.spheres import render_spheres

BG_RADIUS = 8.0
BG_COLORS = ((0.92, 0.78, 0.32), (0.18, 0.34, 0.62))
FOV = 60.0


def background_rgb(o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Colour where rays from inside the background sphere hit it: 8 x 4 checker cells."""
    od = (o * d).sum(-1)
    t = -od + torch.sqrt(od * od - ((o * o).sum(-1) - BG_RADIUS**2))
    p = (o + t[..., None] * d) / BG_RADIUS
    az = torch.atan2(p[..., 1], p[..., 0])
    el = torch.asin(p[..., 2].clamp(-1, 1))
    cell = (torch.floor((az + math.pi) / (2 * math.pi) * 8) + torch.floor((el + math.pi / 2) / math.pi * 4)) % 2
    a, b = torch.tensor(BG_COLORS[0]), torch.tensor(BG_COLORS[1])
    return torch.where(cell[..., None] > 0, a, b)


def render_unbounded(cams) -> torch.Tensor:
    """RGBA [B, H, W, 4] with alpha 1: the spheres over the background sphere."""
    fg = render_spheres(cams)
    o, d = generate_rays(cams)
    rgb = fg[..., :3] * fg[..., 3:] + background_rgb(o, d) * (1 - fg[..., 3:])
    return torch.cat([rgb, torch.ones_like(rgb[..., :1])], dim=-1)


def unbounded_cameras(n: int, res: int, seed: int = 0, radius: float = 3.5):
    g = torch.Generator().manual_seed(seed)
    az = torch.rand(n, generator=g) * 360
    el = torch.rand(n, generator=g) * 50 - 10
    return from_fov(look_at(orbit_positions(az, el, radius)), FOV, res)


def make_unbounded_dataset(out_dir, n: int = 32, res: int = 24, test_every: int = 8, seed: int = 0):
    cams = unbounded_cameras(n, res, seed)
    return write_transforms_dataset(out_dir, render_unbounded(cams), cams.c2w, math.radians(FOV), test_every=test_every)
