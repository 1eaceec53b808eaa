"""Pinhole cameras in the Blender/OpenGL convention used by `transforms.json`.

camera-to-world `c2w: [B, 4, 4]`; the camera looks down its -z axis with +y up, +x right.
The world is z-up (as in NeRF-synthetic). Pixel (i, j) samples its centre (j + 0.5, i + 0.5).
Optional OpenCV radial/tangential lens distortion per camera (`distortion: [B, 5]` = k1, k2, p1, p2, k3 in
OpenCV's order, applied to normalised image coordinates with y down, as COLMAP/nerfstudio do): rays go
through the undistorted point of each pixel, found by Newton iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pnr.h2d import to_device


@dataclass
class Cameras:
    c2w: Tensor  # [B, 4, 4] float32
    fx: Tensor  # [B]
    fy: Tensor  # [B]
    cx: Tensor  # [B]
    cy: Tensor  # [B]
    width: int
    height: int
    distortion: Tensor | None = None  # [B, 5] k1, k2, p1, p2, k3 (OpenCV order); None = pinhole

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def to(self, device) -> "Cameras":
        """On `device`; CPU -> CUDA without stalling the host (the edit step makes its cameras on the CPU)."""
        return Cameras(to_device(self.c2w, device), to_device(self.fx, device), to_device(self.fy, device),
                       to_device(self.cx, device), to_device(self.cy, device), self.width, self.height,
                       None if self.distortion is None else to_device(self.distortion, device))

    def __getitem__(self, idx) -> "Cameras":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Cameras(self.c2w[idx], self.fx[idx], self.fy[idx], self.cx[idx], self.cy[idx],
                       self.width, self.height, None if self.distortion is None else self.distortion[idx])

    def resized(self, width: int, height: int | None = None) -> "Cameras":
        """Same cameras at another resolution (intrinsics scaled)."""
        height = width if height is None else height
        sx, sy = width / self.width, height / self.height
        return Cameras(self.c2w, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height,
                       self.distortion)  # distortion acts on normalised coordinates: unchanged

    def transformed(self, c2w: Tensor) -> "Cameras":
        """Same intrinsics with other poses (e.g. in a normalised scene frame)."""
        return Cameras(c2w, self.fx, self.fy, self.cx, self.cy, self.width, self.height, self.distortion)

    @staticmethod
    def cat(cams: list["Cameras"]) -> "Cameras":
        w, h = cams[0].width, cams[0].height
        assert all(c.width == w and c.height == h for c in cams), "cameras differ in resolution"
        dist = None
        if any(c.distortion is not None for c in cams):
            dist = torch.cat([c.distortion if c.distortion is not None else c.c2w.new_zeros(len(c), 5) for c in cams])
        return Cameras(*(torch.cat([getattr(c, k) for c in cams]) for k in ("c2w", "fx", "fy", "cx", "cy")), w, h, dist)


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


def distort(x: Tensor, y: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """OpenCV's radial/tangential model on normalised coordinates (y down); k: [..., 5] = k1, k2, p1, p2, k3,
    broadcast against x, y."""
    k1, k2, p1, p2, k3 = k.unbind(-1)
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort(xd: Tensor, yd: Tensor, k: Tensor, iters: int = 20) -> tuple[Tensor, Tensor]:
    """Inverse of `distort` by Newton's method on the 2x2 system (as nerfstudio's
    radial_and_tangential_undistort), in float64; starts at the distorted point."""
    dt = xd.dtype
    xd, yd, k = xd.double(), yd.double(), k.double()
    k1, k2, p1, p2, k3 = k.unbind(-1)
    x, y = xd.clone(), yd.clone()
    for _ in range(iters):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
        fx = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x) - xd
        fy = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y - yd
        fx_x = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
        fx_y = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
        fy_x = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
        fy_y = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
        det = fx_x * fy_y - fx_y * fy_x
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        x = x - (fx * fy_y - fy * fx_y) / det
        y = y - (fy * fx_x - fx * fy_x) / det
    return x.to(dt), y.to(dt)


def generate_rays(cams: Cameras) -> tuple[Tensor, Tensor]:
    """World-space rays for every pixel: origins, unit directions, each [B, H, W, 3]."""
    dev = cams.device
    j, i = torch.meshgrid(torch.arange(cams.width, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(cams.height, device=dev, dtype=torch.float32) + 0.5, indexing="xy")
    x = (j[None] - cams.cx[:, None, None]) / cams.fx[:, None, None]
    y = -(i[None] - cams.cy[:, None, None]) / cams.fy[:, None, None]
    if cams.distortion is not None and bool((cams.distortion != 0).any()):
        xu, yu = undistort(x, -y, cams.distortion[:, None, None, :])  # OpenCV's y points down
        x, y = xu, -yu
    d_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B, H, W, 3]
    rot = cams.c2w[:, None, None, :3, :3]
    dirs = torch.nn.functional.normalize((rot @ d_cam[..., None])[..., 0], dim=-1)
    origins = cams.c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs
