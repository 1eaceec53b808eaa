"""Turntable renders: `n` views evenly spaced on one orbit around the object."""

from __future__ import annotations

import torch
from tqdm import tqdm

from pnr.render.cameras import orbit_cameras
from pnr.render.volume import render


@torch.no_grad()
def turntable(field, occupancy=None, n: int = 60, elevation: float = 20.0, radius: float = 3.0, res: int = 128,
              fov: float = 40.0, num_samples: int = 128, progress: bool = False, chunk: int = 1 << 15):
    """-> uint8 frames [n, res, res, 3]; azimuth starts at 0 (+x) and turns counter-clockwise."""
    cams = orbit_cameras(n, elevation_deg=elevation, radius=radius, fov_deg=fov, res=res, device=field.device)
    frames = []
    for i in tqdm(range(n), disable=not progress, desc="render", dynamic_ncols=True):
        rgb = render(field, cams[i], occupancy, num_samples=num_samples, chunk=chunk)["rgb"][0]
        frames.append((rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
    return torch.stack(frames)
