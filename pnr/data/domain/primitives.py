"""Primitives of the built-in domain and their exact ray intersections (closed form, batched).

Every primitive is a canonical shape in its own local frame, placed by an affine map. A primitive stores
the inverse map `M: [3, 4]` (world -> local). Affine maps keep a ray's parameter t, so a world ray
o + t d hits the primitive at the t where the local ray M(o) + t M3 d hits the canonical shape; the world
normal is M3^T n_local. One closed-form pass per primitive replaces tens of sphere-tracing steps.

Canonical shapes (params p0, p1):
  SPHERE   unit sphere (ellipsoids through the affine map)
  BOX      [-1, 1]^3
  FRUSTUM  z in [-1, 1], radius p0 at z=-1 and p1 at z=+1, capped (cylinder when p0 == p1)
  CAPSULE  segment z in [-p0, p0], radius 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

SPHERE, BOX, FRUSTUM, CAPSULE = 0, 1, 2, 3
N_TYPES = 4
INF = float("inf")
EPS = 1e-4

PLAIN, STRIPES, CHECKS, DOTS = 0, 1, 2, 3
CYLINDRICAL, PLANAR = 0, 1


@dataclass
class Prim:
    """One placed primitive with its material. `Q` maps world points to the pattern frame (world units)."""

    kind: int
    M: np.ndarray  # [3, 4] world -> local
    p0: float = 0.0
    p1: float = 0.0
    color: tuple = (0.5, 0.5, 0.5)
    color2: tuple = (1.0, 1.0, 1.0)
    pattern: int = PLAIN
    pmode: int = CYLINDRICAL
    Q: np.ndarray = field(default_factory=lambda: np.eye(3, 4))
    uv_scale: tuple = (1.0, 1.0)  # pattern cells per radian (cylindrical) or per unit (planar) / per unit along v
    phase: float = 0.0


def frame_from_axis(axis) -> np.ndarray:
    """Rotation [3, 3] whose columns are an orthonormal frame with the third column along `axis`."""
    z = np.asarray(axis, np.float64)
    z = z / math.sqrt(z @ z)
    a, b, c = z
    x = np.array([0.0, -c, b]) if abs(a) < 0.9 else np.array([c, 0.0, -a])  # (1,0,0) x z or (0,1,0) x z
    x /= math.sqrt(x @ x)
    y = np.array([b * x[2] - c * x[1], c * x[0] - a * x[2], a * x[1] - b * x[0]])  # z x x
    return np.stack([x, y, z], axis=1)


def inverse_affine(R: np.ndarray, scale, center) -> np.ndarray:
    """M [3, 4] inverting x = R diag(scale) l + center."""
    Ainv = R.T / np.asarray(scale, np.float64)[:, None]  # (R diag(s))^-1 for a rotation R
    return np.concatenate([Ainv, -(Ainv @ np.asarray(center, np.float64))[:, None]], axis=1)


def rigid_inverse(R: np.ndarray, center) -> np.ndarray:
    return inverse_affine(R, (1.0, 1.0, 1.0), center)


# ---- batched intersections: o, d [..., 3] local (d not unit), p0/p1 [...]; return t [...] (inf on miss)


def _first_root(a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Roots of a t^2 + 2 b t + c = 0, (near, far); NaN-free (inf where no real root)."""
    disc = b * b - a * c
    ok = (disc >= 0) & (a.abs() > 1e-12)
    sq = disc.clamp_min(0).sqrt()
    a_safe = torch.where(a.abs() > 1e-12, a, torch.ones_like(a))
    t0 = torch.where(ok, (-b - sq) / a_safe, INF)
    t1 = torch.where(ok, (-b + sq) / a_safe, INF)
    return torch.minimum(t0, t1), torch.maximum(t0, t1)


def _front(t: Tensor) -> Tensor:
    return torch.where(t > EPS, t, INF)


def hit_sphere(o: Tensor, d: Tensor, p0: Tensor, p1: Tensor) -> Tensor:
    t0, t1 = _first_root((d * d).sum(-1), (o * d).sum(-1), (o * o).sum(-1) - 1.0)
    return torch.minimum(_front(t0), _front(t1))


def hit_box(o: Tensor, d: Tensor, p0: Tensor, p1: Tensor) -> Tensor:
    d = torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    inv = 1.0 / d
    ta, tb = (-1.0 - o) * inv, (1.0 - o) * inv
    tmin = torch.minimum(ta, tb).amax(-1)
    tmax = torch.maximum(ta, tb).amin(-1)
    hit = tmax >= torch.maximum(tmin, torch.zeros_like(tmin))
    t = torch.where(tmin > EPS, tmin, tmax)  # far side if the origin is inside
    return torch.where(hit, _front(t), INF)


def hit_frustum(o: Tensor, d: Tensor, p0: Tensor, p1: Tensor) -> Tensor:
    alpha, beta = 0.5 * (p0 + p1), 0.5 * (p1 - p0)
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    ro = alpha + beta * oz  # radius at the origin's height
    a = dx * dx + dy * dy - beta * beta * dz * dz
    b = ox * dx + oy * dy - beta * ro * dz
    c = ox * ox + oy * oy - ro * ro
    best = torch.full_like(ox, INF)
    for t in _first_root(a, b, c):
        z = oz + t * dz
        ok = (z >= -1) & (z <= 1) & (alpha + beta * z >= 0)
        best = torch.minimum(best, torch.where(ok, _front(t), INF))
    dz_safe = torch.where(dz.abs() < 1e-9, torch.full_like(dz, 1e-9), dz)
    for zc, rc in ((-1.0, p0), (1.0, p1)):
        t = (zc - oz) / dz_safe
        x, y = ox + t * dx, oy + t * dy
        ok = x * x + y * y <= rc * rc
        best = torch.minimum(best, torch.where(ok, _front(t), INF))
    return best


def hit_capsule(o: Tensor, d: Tensor, p0: Tensor, p1: Tensor) -> Tensor:
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    t0, _ = _first_root(dx * dx + dy * dy, ox * dx + oy * dy, ox * ox + oy * oy - 1.0)
    z = oz + t0 * dz
    best = torch.where((z >= -p0) & (z <= p0), _front(t0), INF)
    dd = (d * d).sum(-1)
    for sgn in (-1.0, 1.0):
        oc_z = oz - sgn * p0
        b = ox * dx + oy * dy + oc_z * dz
        c = ox * ox + oy * oy + oc_z * oc_z - 1.0
        s0, s1 = _first_root(dd, b, c)
        best = torch.minimum(best, torch.minimum(_front(s0), _front(s1)))
    return best


HIT_FNS = (hit_sphere, hit_box, hit_frustum, hit_capsule)


def local_normal(kind: Tensor, p: Tensor, p0: Tensor, p1: Tensor) -> Tensor:
    """Outward normal (unnormalised) [N, 3] of the canonical shape `kind: [N]` at local points `p: [N, 3]`."""
    x, y, z = p.unbind(-1)
    n_sphere = p
    ax = p.abs()
    n_box = torch.nn.functional.one_hot(ax.argmax(-1), 3).to(p.dtype) * torch.sign(p)
    # frustum: side gradient (x, y, -beta r(z)), caps where |z| ~ 1 and inside the cap radius
    alpha, beta = 0.5 * (p0 + p1), 0.5 * (p1 - p0)
    r = alpha + beta * z
    side = torch.stack([x, y, -beta * r], -1)
    rho = (x * x + y * y).sqrt()
    # whichever surface the point is closest to
    d_side = (rho - r).abs() / (1 + beta * beta).sqrt()
    d_cap = (1 - z.abs())
    cap = torch.stack([torch.zeros_like(z), torch.zeros_like(z), torch.sign(z)], -1)
    n_frustum = torch.where((d_cap < d_side)[..., None], cap, side)
    n_capsule = torch.stack([x, y, z - z.clamp(-p0, p0)], -1)
    k = kind[..., None]
    return torch.where(k == SPHERE, n_sphere, torch.where(k == BOX, n_box, torch.where(k == FRUSTUM, n_frustum, n_capsule)))
