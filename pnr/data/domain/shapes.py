"""Geometry of each category: ObjectSpec -> list of placed, coloured primitives.

Conventions: world z-up, objects inside about [-0.9, 0.9]^3 (a sphere of radius ~1, which a camera at
radius ~3 with a 40 degree FOV sees whole), standing on z = -0.9 (mugs and vases a little higher),
front facing -y. The figure's left arm is on +x (its left as it faces the viewer at -y).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import replace
from functools import lru_cache

import numpy as np

from pnr.data.domain.grammar import COLORS, ObjectSpec
from pnr.data.domain.primitives import (BOX, CAPSULE, CHECKS, CYLINDRICAL, DOTS, FRUSTUM, PLAIN, PLANAR, SPHERE,
                                        STRIPES, Prim, frame_from_axis, inverse_affine, rigid_inverse)

GROUND = -0.9
HEIGHT_F = {"medium": 1.0, "tall": 1.3, "short": 0.72, "": 1.0}
WIDTH_F = {"medium": 1.0, "wide": 1.3, "narrow": 0.72, "": 1.0}
PATTERN_ID = {"plain": PLAIN, "striped": STRIPES, "checkered": CHECKS, "dotted": DOTS}
# fixed accessory materials (chosen to stay distinguishable from the named colours)
HAT = (0.08, 0.08, 0.09)
SCARF, SCARF2 = (0.08, 0.50, 0.52), (0.97, 0.97, 0.95)
BALL, BALL2 = (0.97, 0.97, 0.95), (0.08, 0.08, 0.09)
STEM, PETAL, PISTIL = (0.20, 0.50, 0.15), (0.93, 0.30, 0.50), (0.98, 0.80, 0.10)
METAL = (0.30, 0.30, 0.32)
EYE = (0.05, 0.05, 0.06)
I3 = np.eye(3)


def body_colors(spec: ObjectSpec) -> tuple[tuple, tuple]:
    """The named colour with the spec's hue/tone jitter, and the pattern's second colour."""
    h, s, v = colorsys.rgb_to_hsv(*COLORS[spec.color])
    h = (h + 0.02 * spec.j_hue) % 1.0
    v = min(1.0, max(0.0, v * (1 + 0.07 * spec.j_tone)))
    s = min(1.0, max(0.0, s * (1 - 0.05 * spec.j_tone)))
    c = colorsys.hsv_to_rgb(h, s, v)
    c2 = (0.14, 0.14, 0.16) if spec.color in ("white", "yellow") else (0.97, 0.97, 0.95)
    return c, c2


# ---- primitive constructors (world units)

def ellipsoid(center, radii, R=I3, **mat) -> Prim:
    return Prim(SPHERE, inverse_affine(R, radii, center), **mat)


def box(center, half, R=I3, **mat) -> Prim:
    return Prim(BOX, inverse_affine(R, half, center), **mat)


def cylinder(center, r, hh, axis=(0, 0, 1), r_top=None, **mat) -> Prim:
    """Capped cylinder / frustum of half-height `hh` around `axis`; radius r at the bottom, r_top at the top."""
    R = frame_from_axis(axis)
    return Prim(FRUSTUM, inverse_affine(R, (r, r, hh), center), p0=1.0, p1=1.0 if r_top is None else r_top / r, **mat)


def capsule(a, b, r, **mat) -> Prim:
    a, b = np.asarray(a, float), np.asarray(b, float)
    axis = b - a
    half = max(np.linalg.norm(axis) / 2, 1e-6)
    R = frame_from_axis(axis if half > 1e-5 else (0, 0, 1))
    return Prim(CAPSULE, inverse_affine(R, (r, r, r), (a + b) / 2), p0=half / r, **mat)


def pattern_mat(spec: ObjectSpec, center, radius: float, axis=(0, 0, 1), planar_R=None, freq: float = 7.0) -> dict:
    """Material with the spec's colour and pattern, in a cylindrical frame (around `axis`, nominal `radius`)
    or a planar one (`planar_R` columns: u, v, normal)."""
    c, c2 = body_colors(spec)
    f = freq * (1 + 0.1 * spec.j_pattern)
    phase = 0.25 * spec.j_pattern
    if planar_R is not None:
        return dict(color=c, color2=c2, pattern=PATTERN_ID[spec.pattern], pmode=PLANAR,
                    Q=rigid_inverse(np.asarray(planar_R, float), center), uv_scale=(f, f), phase=phase)
    n_around = max(4, 2 * round(math.pi * radius * f))  # even count so checks close around
    return dict(color=c, color2=c2, pattern=PATTERN_ID[spec.pattern], pmode=CYLINDRICAL,
                Q=rigid_inverse(frame_from_axis(axis), center), uv_scale=(n_around / (2 * math.pi), f), phase=phase)


def plain(color) -> dict:
    return dict(color=tuple(color))


def flower(base, length: float = 0.4) -> list[Prim]:
    """A stem from `base` up and a round flower head facing -y."""
    base = np.asarray(base, float)
    top = base + np.array([0.04, 0.0, length])
    out = [capsule(base, top, 0.022, **plain(STEM)), ellipsoid(top, (0.055, 0.045, 0.055), **plain(PISTIL))]
    for k in range(6):
        a = 2 * math.pi * k / 6
        out.append(ellipsoid(top + 0.085 * np.array([math.cos(a), 0.015, math.sin(a)]), (0.05, 0.03, 0.05),
                             **plain(PETAL)))
    return out


def ball(center, r: float = 0.14) -> Prim:
    return ellipsoid(center, (r, r, r), color=BALL, color2=BALL2, pattern=CHECKS, pmode=CYLINDRICAL,
                     Q=rigid_inverse(I3, center), uv_scale=(6 / (2 * math.pi), 2.2 / r / 2))


# ---- categories

def _mug(spec: ObjectSpec) -> list[Prim]:
    hf = HEIGHT_F[spec.height] * (1 + 0.06 * spec.j_height)
    wf = WIDTH_F[spec.width] * (1 + 0.06 * spec.j_width)
    R, H, z0 = 0.36 * wf, 0.8 * hf, -0.6
    zc, ztop = z0 + H / 2, z0 + H
    mat = pattern_mat(spec, (0, 0, zc), R)
    c, _ = body_colors(spec)
    inner = tuple(0.3 * x for x in c)
    if spec.profile == "square":
        s = 0.9 * R
        out = [box((0, 0, zc), (s, s, H / 2), **mat), box((0, 0, ztop + 0.003), (0.85 * s, 0.85 * s, 0.004), **plain(inner))]
        xr = s
    else:
        out = [cylinder((0, 0, zc), R, H / 2, **mat), cylinder((0, 0, ztop + 0.003), 0.86 * R, 0.004, **plain(inner))]
        xr = R
    hh = min(0.3 * H, 0.25)
    pts = [(xr - 0.03, 0, zc + hh), (xr + 0.24, 0, zc + 0.8 * hh), (xr + 0.24, 0, zc - 0.8 * hh), (xr - 0.03, 0, zc - hh)]
    out += [capsule(pts[i], pts[i + 1], 0.055, **plain(c)) for i in range(3)]
    if spec.accessory == "straw":
        out.append(capsule((-0.1 * R, 0.1 * R, ztop - 0.1), (-0.45 * R, -0.2, ztop + 0.38), 0.028,
                           color=(0.88, 0.12, 0.12), color2=(0.97, 0.97, 0.95), pattern=STRIPES, pmode=PLANAR,
                           Q=rigid_inverse(I3, (0, 0, 0)), uv_scale=(12.0, 12.0)))
    elif spec.accessory == "flower":
        out += flower((0, 0, ztop - 0.05), 0.38)
    return out


def _vase(spec: ObjectSpec) -> list[Prim]:
    hf = HEIGHT_F[spec.height] * (1 + 0.06 * spec.j_height)
    wf = WIDTH_F[spec.width] * (1 + 0.06 * spec.j_width)
    R, H, z0 = 0.4 * wf, 1.0 * hf, -0.85
    zb = z0 + 0.38 * H
    zn0, ztop = z0 + 0.62 * H, z0 + H
    mat = pattern_mat(spec, (0, 0, zb), R)
    c, _ = body_colors(spec)
    inner = tuple(0.25 * x for x in c)
    rn = 0.42 * R
    if spec.profile == "square":
        out = [box((0, 0, zb), (0.85 * R, 0.85 * R, 0.38 * H), **mat),
               box((0, 0, (zn0 + ztop) / 2 - 0.05), (rn, rn, (ztop - zn0) / 2 + 0.05), **mat),
               box((0, 0, ztop + 0.003), (0.8 * rn, 0.8 * rn, 0.004), **plain(inner))]
    else:
        out = [ellipsoid((0, 0, zb), (R, R, 0.38 * H), **mat),
               cylinder((0, 0, (zn0 + ztop) / 2 - 0.05), rn, (ztop - zn0) / 2 + 0.05, r_top=1.25 * rn, **mat),
               cylinder((0, 0, ztop + 0.003), 1.05 * rn, 0.004, **plain(inner))]
    if spec.accessory == "flower":
        out += flower((0, 0, ztop - 0.05), 0.36)
    return out


def _lamp(spec: ObjectSpec) -> list[Prim]:
    hf = HEIGHT_F[spec.height] * (1 + 0.06 * spec.j_height)
    wf = WIDTH_F[spec.width] * (1 + 0.06 * spec.j_width)
    H, z0 = 1.3 * hf, GROUND
    sh = 0.42  # shade height
    zs = z0 + H - sh / 2
    out = [cylinder((0, 0, z0 + 0.04), 0.3, 0.04, r_top=0.25, **plain(METAL)),
           cylinder((0, 0, (z0 + 0.08 + zs) / 2), 0.035, (zs - z0 - 0.08) / 2, **plain(METAL))]
    mat = pattern_mat(spec, (0, 0, zs), 0.35 * wf)
    if spec.profile == "square":
        out.append(box((0, 0, zs), (0.34 * wf, 0.34 * wf, sh / 2), **mat))
    else:
        out.append(cylinder((0, 0, zs), 0.45 * wf, sh / 2, r_top=0.24 * wf, **mat))
    return out


def _table(spec: ObjectSpec) -> list[Prim]:
    hf = HEIGHT_F[spec.height] * (1 + 0.06 * spec.j_height)
    wf = WIDTH_F[spec.width] * (1 + 0.06 * spec.j_width)
    H, W, z0 = 0.8 * hf, 0.7 * wf, GROUND
    ztop = z0 + H
    c, _ = body_colors(spec)
    mat = pattern_mat(spec, (0, 0, ztop), W, planar_R=I3, freq=5.0)
    leg = 0.45 * W
    if spec.profile == "square":
        out = [box((0, 0, ztop - 0.04), (0.92 * W, 0.92 * W, 0.04), **mat)]
        out += [box((sx * leg * 1.2, sy * leg * 1.2, z0 + (H - 0.08) / 2), (0.045, 0.045, (H - 0.08) / 2), **plain(c))
                for sx in (-1, 1) for sy in (-1, 1)]
    else:
        out = [cylinder((0, 0, ztop - 0.04), W, 0.04, **mat)]
        out += [cylinder((sx * leg, sy * leg, z0 + (H - 0.08) / 2), 0.045, (H - 0.08) / 2, **plain(c))
                for sx in (-1, 1) for sy in (-1, 1)]
    if spec.accessory == "ball":
        out.append(ball((0.15 * W, -0.1 * W, ztop + 0.14)))
    elif spec.accessory == "flower":
        out.append(cylinder((-0.15 * W, 0.1 * W, ztop + 0.1), 0.08, 0.1, r_top=0.06, **plain((0.95, 0.95, 0.93))))
        out += flower((-0.15 * W, 0.1 * W, ztop + 0.18), 0.3)
    return out


def _chair(spec: ObjectSpec) -> list[Prim]:
    hf = HEIGHT_F[spec.height] * (1 + 0.06 * spec.j_height)
    wf = WIDTH_F[spec.width] * (1 + 0.06 * spec.j_width)
    W, z0 = 0.4 * wf, GROUND
    zs = z0 + 0.55  # seat top
    bh = 0.65 * hf  # back height above the seat
    c, _ = body_colors(spec)
    seat = pattern_mat(spec, (0, 0, zs), W, planar_R=I3, freq=6.0)
    back_R = np.stack([np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0])], axis=1)
    yb = 0.88 * W
    back = pattern_mat(spec, (0, yb, zs + bh / 2), W, planar_R=back_R, freq=6.0)
    leg = 0.78 * W
    if spec.profile == "square":
        out = [box((0, 0, zs - 0.04), (W, W, 0.04), **seat),
               box((0, yb, zs + bh / 2 + 0.02), (W, 0.035, bh / 2), **back)]
        out += [box((sx * leg, sy * leg, z0 + 0.255), (0.04, 0.04, 0.255), **plain(c)) for sx in (-1, 1) for sy in (-1, 1)]
    else:
        out = [cylinder((0, 0, zs - 0.04), 1.05 * W, 0.04, **seat),
               cylinder((0, yb, zs + bh * 0.62), 0.9 * W, 0.035, axis=(0, 1, 0), **back)]
        out += [capsule((sx * 0.55 * W, yb, zs), (sx * 0.55 * W, yb, zs + bh * 0.45), 0.035, **plain(c)) for sx in (-1, 1)]
        out += [cylinder((sx * 0.65 * W, sy * 0.65 * W, z0 + 0.255), 0.04, 0.255, **plain(c))
                for sx in (-1, 1) for sy in (-1, 1)]
    if spec.accessory == "ball":
        out.append(ball((0, -0.1 * W, zs + 0.15)))
    return out


def _figure(spec: ObjectSpec) -> list[Prim]:
    s = 0.85 * {"medium": 1.0, "tall": 1.1, "short": 0.82}[spec.height] * (1 + 0.04 * spec.j_height)
    w = {"medium": 1.0, "wide": 1.35, "narrow": 0.72}[spec.width] * (1 + 0.06 * spec.j_width)
    P = lambda x, y, z: np.array([x * s, y * s, GROUND + z * s])  # noqa: E731  figure units -> world
    c, _ = body_colors(spec)
    body = plain(c)
    sit = spec.pose == "sitting"
    dz = -0.33 if sit else 0.0  # upper body drop when sitting
    hipx, shx = 0.11 * min(w, 1.15), 0.22 + 0.05 * w
    out: list[Prim] = []
    # legs
    for sx in (-1, 1):
        if sit:
            out.append(capsule(P(sx * hipx, 0, 0.45), P(sx * hipx, -0.4, 0.45), 0.085 * s * min(w, 1.2), **body))
            out.append(capsule(P(sx * hipx, -0.4, 0.45), P(sx * hipx, -0.42, 0.07), 0.08 * s * min(w, 1.2), **body))
        else:
            out.append(capsule(P(sx * hipx, 0, 0.78), P(sx * hipx * 1.05, 0, 0.07), 0.085 * s * min(w, 1.2), **body))
    if sit:
        out.append(box(P(0, 0.05, 0.2), (0.22 * s, 0.2 * s, 0.2 * s), **plain((0.45, 0.42, 0.38))))
    # torso (carries the pattern), head, eyes
    t0, t1, tr = P(0, 0, 0.88 + dz), P(0, 0, 1.12 + dz), 0.2 * s * w
    out.append(capsule(t0, t1, tr, **pattern_mat(spec, (t0 + t1) / 2, tr, freq=9.0)))
    head = P(0, 0, 1.5 + dz)
    out.append(ellipsoid(head, (0.17 * s, 0.17 * s, 0.17 * s), **body))
    out.append(capsule(P(0, 0, 1.3 + dz), P(0, 0, 1.38 + dz), 0.06 * s, **body))
    for sx in (-1, 1):
        out.append(ellipsoid(head + s * np.array([sx * 0.06, -0.15, 0.03]), (0.03 * s,) * 3, **plain(EYE)))
    # arms: hands per pose (+x is the figure's left)
    down = lambda sx: (sx * (shx + 0.06), 0, 0.84 + dz)  # noqa: E731
    up = lambda sx: (sx * (shx + 0.08), 0, 1.88 + dz)  # noqa: E731
    out_ = lambda sx: (sx * (shx + 0.52), 0, 1.27 + dz)  # noqa: E731
    hands = {"standing": (down(1), down(-1)), "sitting": ((shx + 0.05, -0.25, 0.9 + dz), (-shx - 0.05, -0.25, 0.9 + dz)),
             "arms raised": (up(1), up(-1)), "arms out": (out_(1), out_(-1)),
             "left arm raised": (up(1), down(-1)), "right arm raised": (down(1), up(-1))}[spec.pose]
    for sx, hand in zip((1, -1), hands):
        out.append(capsule(P(sx * shx, 0, 1.27 + dz), P(*hand), 0.075 * s * min(w, 1.2), **body))
    # accessories
    if spec.accessory == "hat":
        top = head + np.array([0, 0, 0.15 * s])
        out.append(cylinder(top, 0.28 * s, 0.012 * s, **plain(HAT)))
        out.append(cylinder(top + np.array([0, 0, 0.1 * s]), 0.17 * s, 0.1 * s, r_top=0.16 * s, **plain(HAT)))
    elif spec.accessory == "scarf":
        neck = P(0, 0, 1.33 + dz)
        sc = dict(color=SCARF, color2=SCARF2, pattern=STRIPES, pmode=PLANAR, Q=rigid_inverse(I3, neck), uv_scale=(14, 14))
        out.append(cylinder(neck, 0.13 * s * max(w, 1.0), 0.05 * s, **sc))
        out.append(capsule(neck + s * np.array([0.06, -0.11, -0.02]), neck + s * np.array([0.09, -0.2 - 0.03 * w, -0.28]),
                           0.04 * s, **sc))
    elif spec.accessory == "ball":
        h = np.asarray(P(*hands[1]))
        off = np.array([0, 0, 0.16 * s]) if hands[1][2] > 1.5 + dz else np.array([-0.04 * s, -0.15 * s, 0.02 * s])
        out.append(ball(h + off, 0.14 * s))
    return out


def _surface_samples(p: Prim, n: int = 24) -> np.ndarray:
    """World points [m, 3] on (or, for boxes, at the corners of) a primitive: enough for its extent."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)
    if p.kind == SPHERE:
        el = np.linspace(-np.pi / 2, np.pi / 2, n // 2)
        loc = np.concatenate([np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.full_like(a, np.sin(e))], 1)
                              for e in el])
    elif p.kind == BOX:
        loc = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    elif p.kind == FRUSTUM:
        loc = np.concatenate([ring * p.p0 + [0, 0, -1], ring * p.p1 + [0, 0, 1]])
    else:
        el = np.linspace(-np.pi / 2, np.pi / 2, n // 2)
        sph = np.concatenate([np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.full_like(a, np.sin(e))], 1)
                              for e in el])
        loc = np.concatenate([sph + [0, 0, -p.p0], sph + [0, 0, p.p0]])
    Minv = np.linalg.inv(np.concatenate([p.M, [[0, 0, 0, 1]]]))
    return loc @ Minv[:3, :3].T + Minv[:3, 3]


def bounding_sphere(p: Prim) -> tuple[float, float, float, float]:
    """A sphere (centre, radius) holding the primitive, with a 3% + 1e-3 margin for the sampled surface."""
    pts = _surface_samples(p)
    c = (pts.min(0) + pts.max(0)) / 2
    return (*c.tolist(), float(np.linalg.norm(pts - c, axis=1).max()) * 1.03 + 1e-3)


def extent(prims) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (lo [3], hi [3]) of placed primitives."""
    pts = np.concatenate([_surface_samples(p) for p in prims])
    return pts.min(0), pts.max(0)


def bounding_radius(prims, center=(0.0, 0.0, 0.0)) -> float:
    """Radius of the sphere around `center` holding all primitives (sampled surfaces, so up to ~1% low)."""
    pts = np.concatenate([_surface_samples(p) for p in prims])
    return float(np.linalg.norm(pts - np.asarray(center), axis=1).max())


BUILDERS = {"mug": _mug, "vase": _vase, "lamp": _lamp, "table": _table, "chair": _chair, "figure": _figure}


FIT_RADIUS = 0.92  # every object of the domain lies in the ball of this radius around the origin


def _variants(cat: str):
    """The extreme variants of a category (tall or short, wide, proportion jitter at its extreme; every profile,
    pose and accessory): widths grow monotonically and the base stays put, so these bound the category."""
    from pnr.data.domain.grammar import CATEGORY_ACCESSORIES, CATEGORY_ATTRS, POSES

    own = CATEGORY_ATTRS[cat]
    for pr in (("round", "square") if "profile" in own else ("",)):
        for po in (POSES if "pose" in own else ("",)):
            for acc in ("none",) + CATEGORY_ACCESSORIES[cat]:
                for h, jh in (("tall", 1.0), ("short", -1.0)):
                    yield ObjectSpec(cat, "red", height=h, width="wide", profile=pr, pose=po, accessory=acc,
                                     j_height=jh, j_width=1.0)


@lru_cache(maxsize=None)
def category_fit(cat: str) -> tuple[tuple[float, float, float], float]:
    """(centre, scale) mapping a category's raw geometry so that all its variants fit the ball of radius
    FIT_RADIUS around the origin (centre of the union of their bounds -> origin). A camera at radius 2.8
    with a 40 degree FOV sees a ball of radius 2.8 sin(20 deg) = 0.96 whole. One map per category, so an
    edit never rescales the object."""
    prims = [list(BUILDERS[cat](s)) for s in _variants(cat)]
    bounds = [extent(p) for p in prims]
    lo = np.min([b[0] for b in bounds], 0)
    hi = np.max([b[1] for b in bounds], 0)
    c = (lo + hi) / 2
    r = max(bounding_radius(p, c) for p in prims)
    return tuple(float(x) for x in c), FIT_RADIUS / r


def _refit(p: Prim, c: np.ndarray, scale: float) -> Prim:
    """The primitive after world' = (world - c) * scale (materials and patterns move with it)."""
    def conj(M):  # local = M3 world + Mt, world = c + world' / scale
        return np.concatenate([M[:, :3] / scale, (M[:, :3] @ c + M[:, 3])[:, None]], axis=1)

    return replace(p, M=conj(p.M), Q=conj(p.Q))  # pattern coordinates stay in raw units: patterns scale too


@lru_cache(maxsize=65536)
def build_primitives(spec: ObjectSpec) -> tuple[Prim, ...]:
    """The placed primitives of one object, fitted into the ball of radius FIT_RADIUS (cached: specs are frozen)."""
    c, scale = category_fit(spec.category)
    return tuple(_refit(p, np.asarray(c), scale) for p in BUILDERS[spec.category](spec))
