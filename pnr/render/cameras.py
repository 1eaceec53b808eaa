"""Pinhole cameras in the Blender/OpenGL convention used by `transforms.json`.

camera-to-world `c2w: [B, 4, 4]`; the camera looks down its -z axis with +y up, +x right.
The world is z-up (as in NeRF-synthetic). Pixel (i, j) samples its centre (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Cameras:
    c2w: Tensor  # [B, 4, 4] float32
    fx: Tensor  # [B]
    fy: Tensor  # [B]
    cx: Tensor  # [B]
    cy: Tensor  # [B]
    width: int
    height: int

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def to(self, device) -> "Cameras":
        return Cameras(self.c2w.to(device), self.fx.to(device), self.fy.to(device),
                       self.cx.to(device), self.cy.to(device), self.width, self.height)

    def __getitem__(self, idx) -> "Cameras":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Cameras(self.c2w[idx], self.fx[idx], self.fy[idx], self.cx[idx], self.cy[idx],
                       self.width, self.height)

    def resized(self, width: int, height: int | None = None) -> "Cameras":
        """Same cameras at another resolution (intrinsics scaled)."""
        height = width if height is None else height
        sx, sy = width / self.width, height / self.height
        return Cameras(self.c2w, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height)

    @staticmethod
    def cat(cams: list["Cameras"]) -> "Cameras":
        w, h = cams[0].width, cams[0].height
        assert all(c.width == w and c.height == h for c in cams), "cameras differ in resolution"
        return Cameras(*(torch.cat([getattr(c, k) for c in cams]) for k in ("c2w", "fx", "fy", "cx", "cy")), w, h)


def from_fov(c2w: Tensor, fov_x_deg: float, width: int, height: int | None = None) -> Cameras:
    """Cameras with a horizontal field of view (`camera_angle_x` in transforms.json), centred principal point."""
    height = width if height is None else height
    b = c2w.shape[0]
    f = 0.5 * width / math.tan(0.5 * math.radians(fov_x_deg))
    full = lambda v: torch.full((b,), float(v), device=c2w.device)  # noqa: E731
    return Cameras(c2w.float(), full(f), full(f), full(width / 2), full(height / 2), width, height)


def look_at(eye: Tensor, target: Tensor | None = None, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> Tensor:
    """c2w [B, 4, 4] for cameras at `eye: [B, 3]` looking at `target: [3]` (origin by default)."""
    target = torch.zeros(3, device=eye.device) if target is None else target.to(eye.device)
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)  # camera -z
    upv = torch.tensor(up, device=eye.device, dtype=eye.dtype).expand_as(fwd)
    right = torch.nn.functional.normalize(torch.cross(fwd, upv, dim=-1), dim=-1)
    true_up = torch.cross(right, fwd, dim=-1)
    c2w = torch.zeros(eye.shape[0], 4, 4, device=eye.device, dtype=eye.dtype)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, true_up, -fwd, eye
    c2w[:, 3, 3] = 1.0
    return c2w


def orbit_positions(azimuth_deg: Tensor, elevation_deg: Tensor, radius: Tensor | float) -> Tensor:
    """Points [B, 3] on a sphere around the origin; azimuth 0 is +x (front of built-in objects is -y)."""
    az, el = torch.deg2rad(azimuth_deg), torch.deg2rad(elevation_deg)
    return torch.stack([radius * torch.cos(el) * torch.cos(az),
                        radius * torch.cos(el) * torch.sin(az),
                        radius * torch.sin(el) * torch.ones_like(az)], dim=-1)


def orbit_cameras(n: int, elevation_deg: float = 20.0, radius: float = 3.0, fov_deg: float = 40.0,
                  res: int = 64, azimuth0_deg: float = 0.0, device="cpu") -> Cameras:
    """`n` cameras evenly spaced in azimuth on one orbit (turntables, the prior's 4 views)."""
    az = azimuth0_deg + torch.arange(n, device=device, dtype=torch.float32) * (360.0 / n)
    el = torch.full_like(az, elevation_deg)
    return from_fov(look_at(orbit_positions(az, el, radius)), fov_deg, res)


def random_orbit_views(batch: int, n_views: int, generator: torch.Generator | None = None,
                       elevation_range: tuple[float, float] = (0.0, 30.0), radius_range: tuple[float, float] = (2.8, 3.2),
                       fov_deg: float = 40.0, res: int = 64, device="cpu") -> Cameras:
    """`batch` groups of `n_views` cameras; each group shares one random orbit (elevation, radius, start
    azimuth) and spaces its views 360/n_views apart, as MVDream renders its 4 views. Returns B*V cameras,
    group-major ([b0v0, b0v1, ..., b1v0, ...])."""
    g = generator
    u = lambda: torch.rand(batch, generator=g)  # noqa: E731
    az0 = u() * 360.0
    el = elevation_range[0] + u() * (elevation_range[1] - elevation_range[0])
    rad = radius_range[0] + u() * (radius_range[1] - radius_range[0])
    az = (az0[:, None] + torch.arange(n_views)[None] * (360.0 / n_views)).reshape(-1)
    el = el[:, None].expand(batch, n_views).reshape(-1)
    rad = rad[:, None].expand(batch, n_views).reshape(-1)
    return from_fov(look_at(orbit_positions(az, el, rad)), fov_deg, res).to(device)


def generate_rays(cams: Cameras) -> tuple[Tensor, Tensor]:
    """World-space rays for every pixel: origins, unit directions, each [B, H, W, 3]."""
    dev = cams.device
    j, i = torch.meshgrid(torch.arange(cams.width, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(cams.height, device=dev, dtype=torch.float32) + 0.5, indexing="xy")
    x = (j[None] - cams.cx[:, None, None]) / cams.fx[:, None, None]
    y = -(i[None] - cams.cy[:, None, None]) / cams.fy[:, None, None]
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B, H, W, 3]
    rot = cams.c2w[:, None, None, :3, :3]
    dirs = torch.nn.functional.normalize((rot @ d_cam[..., None])[..., 0], dim=-1)
    origins = cams.c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs
