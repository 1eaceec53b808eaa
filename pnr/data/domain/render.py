"""Exact batched renderer of the built-in domain: analytic ray casting of packed primitive lists.

One call renders many DIFFERENT objects: spec i is seen by cameras [i*V, (i+1)*V). Every ray is
intersected in closed form with every primitive of its own object (primitives padded per type across
the batch), the nearest hit is shaded with Lambert + ambient under fixed world lights (view-independent,
so a NeRF can fit it exactly), and coloured by its primitive's material and pattern in a frame attached
to the object. Output: RGBA [B*V, H, W, 4] in [0, 1] (straight, not premultiplied alpha; rgb = 0 on the
background) and depth [B*V, H, W] = distance along the unit ray to the surface, 0 on the background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import torch
from torch import Tensor

from pnr.data.domain.grammar import ObjectSpec
from pnr.data.domain.primitives import (BOX, CHECKS, CYLINDRICAL, DOTS, FRUSTUM, HIT_FNS, INF, N_TYPES, SPHERE, STRIPES,
                                        Prim, local_normal)
from pnr.data.domain.shapes import FIT_RADIUS, build_primitives
from pnr.render.cameras import Cameras, from_fov, generate_rays, look_at, orbit_positions


@dataclass(frozen=True)
class Light:
    """Fixed world-space lighting (a key light from the front-left-top, a weak fill from behind, ambient)."""

    key_dir: tuple = (-0.45, -0.65, 0.62)
    key: float = 0.62
    fill_dir: tuple = (0.5, 0.7, 0.2)
    fill: float = 0.18
    ambient: float = 0.32


DEFAULT_FOV = 40.0  # degrees; cameras at radius ~3 see [-1, 1]^3 objects whole
DEFAULT_RADIUS = 3.0
_FIELDS = 12 + 2 + 3 + 3 + 1 + 1 + 12 + 2 + 1 + 4 + 1  # M, p0 p1, color, color2, pattern, pmode, Q, uv, phase, bsph, kind


def _prim_row(p: Prim) -> list[float]:
    return [*p.M.reshape(-1).tolist(), p.p0, p.p1, *p.color, *p.color2, float(p.pattern), float(p.pmode),
            *p.Q.reshape(-1).tolist(), *p.uv_scale, p.phase, 0.0, 0.0, 0.0, 0.0, float(p.kind)]


@lru_cache(maxsize=65536)
def _spec_table(spec: ObjectSpec) -> tuple[np.ndarray, tuple[int, ...]]:
    """One object's primitive rows [k, F] sorted by type, and its count per type (cached: specs are frozen)."""
    prims = sorted(build_primitives(spec), key=lambda p: p.kind)
    rows = np.array([_prim_row(p) for p in prims], np.float32).reshape(len(prims), _FIELDS)
    return rows, tuple(sum(p.kind == t for p in prims) for t in range(N_TYPES))


def pack(specs: list[ObjectSpec], device) -> tuple[Tensor, list[int]]:
    """Primitive table [B, K, F] sorted by type (type t occupies columns offsets[t]:offsets[t+1]), padded
    rows have kind -1 (never hit)."""
    tabs = [_spec_table(s) for s in specs]
    counts = np.max([c for _, c in tabs], axis=0) if tabs else np.zeros(N_TYPES, int)
    offsets = [0] + np.cumsum(counts).tolist()
    K = max(offsets[-1], 1)
    table = np.zeros((len(specs), K, _FIELDS), np.float32)
    table[..., -1] = -1.0
    for b, (rows, cnt) in enumerate(tabs):
        src = 0
        for t in range(N_TYPES):
            table[b, offsets[t]:offsets[t] + cnt[t]] = rows[src:src + cnt[t]]
            src += cnt[t]
    table = torch.from_numpy(table).to(device, non_blocking=True)
    table[..., -5:-1] = _bounding_spheres(table)
    return table, offsets


def _bounding_spheres(table: Tensor) -> Tensor:
    """[B, K, 4] (centre, radius) holding each primitive, from its map x = A l + c with A = R diag(s) (as
    shapes.py builds them): tight for every canonical shape, computed on the table's device."""
    f = _split(table)
    M3 = f["M"][..., :3]
    pad = f["kind"][..., 0] < 0
    A = torch.linalg.inv(torch.where(pad[..., None, None], torch.eye(3, device=table.device), M3))
    c = -(A @ f["M"][..., 3:])[..., 0]
    s = A.norm(dim=-2)  # column norms: the per-axis scales
    smax = s.amax(-1)
    p0, p1, kind = f["p"][..., 0], f["p"][..., 1], f["kind"][..., 0]
    r = torch.where(kind == SPHERE, smax, torch.where(kind == BOX, s.norm(dim=-1),
        torch.where(kind == FRUSTUM, torch.hypot(s[..., :2].amax(-1) * torch.maximum(p0, p1), s[..., 2]),
                    smax * (p0 + 1))))
    return torch.cat([c, (r * 1.001 + 1e-4)[..., None]], -1).masked_fill(pad[..., None], 0.0)


def _split(table: Tensor) -> dict[str, Tensor]:
    i = 0
    out = {}
    for name, n in (("M", 12), ("p", 2), ("color", 3), ("color2", 3), ("pattern", 1), ("pmode", 1), ("Q", 12),
                    ("uv", 2), ("phase", 1), ("bsph", 4), ("kind", 1)):
        out[name] = table[..., i:i + n]
        i += n
    out["M"] = out["M"].reshape(*table.shape[:-1], 3, 4)
    out["Q"] = out["Q"].reshape(*table.shape[:-1], 3, 4)
    return out


def _pattern_mask(pattern: Tensor, pmode: Tensor, q: Tensor, uv: Tensor, phase: Tensor) -> Tensor:
    """True where the second colour shows. q: [N, 3] point in the pattern frame."""
    cyl_u = torch.atan2(q[:, 1], q[:, 0])
    u = torch.where(pmode == CYLINDRICAL, cyl_u, q[:, 0]) * uv[:, 0]
    v = torch.where(pmode == CYLINDRICAL, q[:, 2], q[:, 1]) * uv[:, 1] + phase
    stripes = torch.frac(v - torch.floor(v)) < 0.5
    checks = (torch.floor(u) + torch.floor(v)).remainder(2) < 0.5
    fu, fv = u - torch.floor(u) - 0.5, v - torch.floor(v) - 0.5
    dots = fu * fu + fv * fv < 0.3 ** 2
    return ((pattern == STRIPES) & stripes) | ((pattern == CHECKS) & checks) | ((pattern == DOTS) & dots)


def _first_hits(f: dict, offsets: list[int], origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest hit t [B, N] (inf on a miss) and the primitive index k [B, N]. Only (ray, primitive) pairs whose
    ray enters the primitive's bounding sphere are intersected exactly (most pairs are culled)."""
    B, N, _ = dirs.shape
    c, r = f["bsph"][..., :3], f["bsph"][..., 3]  # [B, K, 3], [B, K]
    bq = (dirs * origins).sum(-1)[..., None] - torch.einsum("bnj,bkj->bnk", dirs, c)  # d.(o - c)
    cq = (origins * origins).sum(-1)[..., None] - 2 * torch.einsum("bnj,bkj->bnk", origins, c) \
        + ((c * c).sum(-1) - r * r)[:, None]  # |o - c|^2 - r^2
    cand = (bq * bq >= cq) & ((bq < 0) | (cq < 0)) & (f["kind"][:, None, :, 0] >= 0)  # [B, N, K]
    ts, rays, prims = [], [], []
    for t in range(N_TYPES):
        a, b = offsets[t], offsets[t + 1]
        if a == b:
            continue
        bi, ni, ki = cand[:, :, a:b].nonzero(as_tuple=True)
        ki = ki + a
        M = f["M"][bi, ki]  # [P, 3, 4]
        o_l = (M[..., :3] * origins[bi, ni][:, None]).sum(-1) + M[..., 3]
        d_l = (M[..., :3] * dirs[bi, ni][:, None]).sum(-1)
        pp = f["p"][bi, ki]
        ts.append(HIT_FNS[t](o_l, d_l, pp[:, 0], pp[:, 1]))
        rays.append(bi * N + ni)
        prims.append(ki)
    tmin = torch.full((B * N,), INF, device=dirs.device)
    k = torch.zeros(B * N, dtype=torch.long, device=dirs.device)
    if ts:
        tp, rp, kp = torch.cat(ts), torch.cat(rays), torch.cat(prims)
        tmin.scatter_reduce_(0, rp, tp, reduce="amin")
        win = torch.isfinite(tp) & (tp == tmin[rp])
        k[rp[win]] = kp[win]
    return tmin.reshape(B, N), k.reshape(B, N)


def _render_chunk(table: Tensor, offsets: list[int], origins: Tensor, dirs: Tensor, light: Light):
    """table [B, K, F]; origins, dirs [B, N, 3] (dirs unit; object b's rays) -> rgb [B, N, 3], hit, t [B, N]."""
    B, N, _ = dirs.shape
    f = _split(table)
    tmin, k = _first_hits(f, offsets, origins, dirs)
    hit = torch.isfinite(tmin)
    # shade hits only
    bi, ni = hit.nonzero(as_tuple=True)
    ki, th, dh = k[bi, ni], tmin[bi, ni], dirs[bi, ni]
    x = origins[bi, ni] + th[:, None] * dh  # world hit [n, 3]
    row = {name: v[bi, ki] for name, v in f.items()}
    pl = (row["M"][..., :3] @ x[:, :, None])[..., 0] + row["M"][..., 3]
    nl = local_normal(row["kind"][:, 0].long(), pl, row["p"][:, 0], row["p"][:, 1])
    n = torch.nn.functional.normalize((row["M"][..., :3].transpose(-1, -2) @ nl[:, :, None])[..., 0], dim=-1)
    n = torch.where(((n * dh).sum(-1) > 0)[:, None], -n, n)
    q = (row["Q"][..., :3] @ x[:, :, None])[..., 0] + row["Q"][..., 3]
    second = _pattern_mask(row["pattern"][:, 0], row["pmode"][:, 0], q, row["uv"], row["phase"][:, 0])
    albedo = torch.where(second[:, None], row["color2"], row["color"])
    kd = torch.nn.functional.normalize(torch.tensor(light.key_dir, device=x.device), dim=0)
    fd = torch.nn.functional.normalize(torch.tensor(light.fill_dir, device=x.device), dim=0)
    shade = light.ambient + light.key * (n @ kd).clamp_min(0) + light.fill * (n @ fd).clamp_min(0)
    rgb = torch.zeros(B, N, 3, device=dirs.device)
    rgb[bi, ni] = (albedo * shade[:, None]).clamp(0, 1)
    depth = torch.where(hit, tmin, torch.zeros_like(tmin))
    return rgb, hit.float(), depth


def _in_ball(o: Tensor, d: Tensor, radius: float) -> Tensor:
    """Rays (unit d) that enter the ball of `radius` around the origin ahead of them."""
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - radius * radius
    return (b * b - c >= 0) & ((b < 0) | (c < 0))


@torch.no_grad()
def render_specs(specs: list[ObjectSpec], cams: Cameras, views_per_spec: int = 1, light: Light = Light(),
                 supersample: int = 1, chunk_pairs: int | None = None) -> tuple[Tensor, Tensor]:
    """Render object i with cameras [i*V, (i+1)*V). Returns rgba [B*V, H, W, 4] in [0, 1] (straight alpha,
    rgb 0 on background) and depth [B*V, H, W] (distance along the unit ray; 0 on background), on cams' device.
    `supersample` s renders s*s rays per pixel and box-filters them (antialiased edges; depth averaged over
    the hits). Rays missing the ball that holds every object (shapes.FIT_RADIUS) are skipped; the others
    are packed per object. `chunk_pairs` bounds the ray-primitive pairs held at once (memory)."""
    V, S = views_per_spec, len(specs)
    if len(cams) != S * V:
        raise ValueError(f"{S} specs x {V} views need {S * V} cameras, got {len(cams)}")
    dev = cams.device
    H, W = cams.height, cams.width
    ss = int(supersample)
    rc = cams.resized(W * ss, H * ss) if ss > 1 else cams
    h, w = rc.height, rc.width
    o_all, d_all = generate_rays(rc)  # [S*V, h, w, 3]
    o_all = o_all.reshape(S, V * h * w, 3)
    d_all = d_all.reshape(S, V * h * w, 3)
    live = _in_ball(o_all, d_all, FIT_RADIUS + 1e-3)  # [S, R]
    counts = live.sum(1).tolist()
    chunk_pairs = chunk_pairs or (1 << 25 if dev.type == "cuda" else 1 << 21)
    rgb_out = torch.zeros(S, V * h * w, 3, device=dev)
    a_out = torch.zeros(S, V * h * w, device=dev)
    d_out = torch.zeros(S, V * h * w, device=dev)
    i = 0
    while i < S:
        K = _spec_table(specs[i])[0].shape[0]
        nb, nmax = 1, counts[i]
        while i + nb < S and (nb + 1) * max(nmax, counts[i + nb]) * K <= chunk_pairs:  # K: a guess, fine for memory
            nmax = max(nmax, counts[i + nb])
            nb += 1
        table, offs = pack(specs[i:i + nb], dev)
        # live rays first (stable), padded to the chunk's largest count
        order = torch.argsort((~live[i:i + nb]).to(torch.uint8), dim=1, stable=True)[:, :nmax]  # [nb, nmax]
        step = max(1, chunk_pairs // max(nb * table.shape[1], 1))
        for p in range(0, nmax, step):
            idx = order[:, p:p + step]
            valid = torch.arange(p, p + idx.shape[1], device=dev)[None] < torch.tensor(counts[i:i + nb], device=dev)[:, None]
            g = lambda x: torch.gather(x[i:i + nb], 1, idx[..., None].expand(-1, -1, 3))  # noqa: E731
            rgb, a, d = _render_chunk(table, offs, g(o_all), g(d_all), light)
            bi, ni = valid.nonzero(as_tuple=True)
            ri = idx[bi, ni]
            rgb_out[i + bi, ri], a_out[i + bi, ri], d_out[i + bi, ri] = rgb[bi, ni], a[bi, ni], d[bi, ni]
        i += nb
    n = S * V
    rgb_out = rgb_out.reshape(n, h, w, 3)
    a_out = a_out.reshape(n, h, w)
    d_out = d_out.reshape(n, h, w)
    if ss > 1:
        pool = lambda x: torch.nn.functional.avg_pool2d(x, ss)  # noqa: E731
        prem = pool((rgb_out * a_out[..., None]).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        alpha = pool(a_out[:, None])[:, 0]
        dsum = pool((d_out * a_out)[:, None])[:, 0]
        rgb_out = torch.where(alpha[..., None] > 0, prem / alpha.clamp_min(1e-6)[..., None], torch.zeros_like(prem))
        d_out = torch.where(alpha > 0, dsum / alpha.clamp_min(1e-6), torch.zeros_like(alpha))
        a_out = alpha
    return torch.cat([rgb_out, a_out[..., None]], -1), d_out


@torch.no_grad()
def cast_rays(spec: ObjectSpec, origins: Tensor, dirs: Tensor, light: Light = Light()) -> tuple[Tensor, Tensor, Tensor]:
    """Arbitrary rays against one object: origins, dirs [N, 3] (dirs unit) -> rgb [N, 3], hit [N] (0/1),
    t [N] (distance to the first surface, 0 on a miss)."""
    table, offs = pack([spec], origins.device)
    rgb, a, d = _render_chunk(table, offs, origins[None], dirs[None], light)
    return rgb[0], a[0], d[0]


def dataset_cameras(views: int, res: int, seed: int = 0, radius: float = DEFAULT_RADIUS, fov_deg: float = DEFAULT_FOV,
                    elevation_range: tuple[float, float] = (-10.0, 60.0), device="cpu") -> Cameras:
    """`views` cameras spread over the upper view sphere (stratified azimuth, random elevation), seeded."""
    g = torch.Generator().manual_seed(seed)
    az = (torch.arange(views, dtype=torch.float32) + torch.rand(views, generator=g)) * (360.0 / views)
    az = az[torch.randperm(views, generator=g)]
    lo, hi = (math.sin(math.radians(e)) for e in elevation_range)
    el = torch.rad2deg(torch.asin(lo + torch.rand(views, generator=g) * (hi - lo)))  # uniform on the sphere band
    return from_fov(look_at(orbit_positions(az, el, radius)), fov_deg, res).to(device)


def render_dataset(spec: ObjectSpec, views: int = 100, res: int = 128, seed: int = 0, supersample: int = 2,
                   device="cpu", progress: bool = False) -> tuple[Tensor, Cameras]:
    """A multi-view dataset of one object: rgba [views, res, res, 4] and its cameras (tqdm bar if `progress`)."""
    from tqdm import tqdm

    cams = dataset_cameras(views, res, seed, device=device)
    step = 8
    parts = []
    for i in tqdm(range(0, views, step), desc="render", unit="x8 views", disable=not progress):
        n = min(step, views - i)
        parts.append(render_specs([spec], cams[i:i + n], views_per_spec=n, supersample=supersample)[0])
    return torch.cat(parts), cams
