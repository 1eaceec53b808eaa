"""Turntable renders: `n` views evenly spaced on one orbit around the object (pnr.render.orbit.OrbitConfig)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from pnr.render.cameras import orbit_cameras
from pnr.render.orbit import RENDER_ORBIT, OrbitConfig, TurntableOutputConfig  # noqa: F401
from pnr.render.volume import render


@torch.no_grad()
def turntable(field, occupancy=None, n: int = RENDER_ORBIT.frames, elevation: float = RENDER_ORBIT.elevation,
              radius: float = RENDER_ORBIT.radius, res: int = RENDER_ORBIT.res, fov: float = RENDER_ORBIT.fov,
              num_samples: int = 128, progress: bool = False, chunk: int = 1 << 15,
              azimuth0: float = RENDER_ORBIT.azimuth0):
    """-> uint8 frames [n, res, res, 3]; azimuth starts at `azimuth0` (0 = +x) and turns counter-clockwise."""
    cams = orbit_cameras(n, elevation_deg=elevation, radius=radius, fov_deg=fov, res=res, azimuth0_deg=azimuth0,
                         device=field.device)
    frames = []
    for i in tqdm(range(n), disable=not progress, desc="render", dynamic_ncols=True):
        rgb = render(field, cams[i], occupancy, num_samples=num_samples, chunk=chunk)["rgb"][0]
        frames.append((rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu())
    return torch.stack(frames)


def orbit_turntable(field, occupancy, orbit: OrbitConfig, num_samples: int = 128, progress: bool = False,
                    chunk: int = 1 << 15):
    """`turntable` on a named orbit (RENDER_ORBIT, EVAL_ORBIT, EDIT_ORBIT, ...)."""
    return turntable(field, occupancy, n=orbit.frames, elevation=orbit.elevation, radius=orbit.radius,
                     res=orbit.res, fov=orbit.fov, num_samples=num_samples, progress=progress, chunk=chunk,
                     azimuth0=orbit.azimuth0)
