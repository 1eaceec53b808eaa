"""Meshes and point clouds from a field: marching cubes on the density, colours from the colour head.

`extract_mesh(field, occupancy)` samples the density on a `res`^3 grid over the field's box (cells the
occupancy grid marks empty, and their neighbours' farther than one cell, are skipped and read as 0), runs
marching cubes (PyMCubes) at `threshold`, keeps the large connected pieces, and colours each vertex by the
field's colour averaged over a few view directions pointing into the surface. `write_mesh` writes
.glb/.obj/.ply with trimesh; `sample_points` gives a coloured point cloud on the surface. `render_mesh` is a
small z-buffer rasteriser (pinhole cameras of pnr.render.cameras) for previews and silhouette tests.

Needs the `export` extra: pip install "pnr[export]" (PyMCubes, trimesh, scipy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pnr.errors import PnrError
from pnr.render.orbit import MESH_PREVIEW_ORBIT

MESH_FORMATS = (".glb", ".obj", ".ply")
DEFAULT_THRESHOLD = 10.0  # sigma; a surface where 1.1 world units of such density would be opaque (1 - e^-11)


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PnrError(f"mesh export needs the Python package {module!r}: pip install \"pnr[export]\" "
                       "(PyMCubes, trimesh, scipy)") from None


def _bound(field) -> float:
    cfg = getattr(field, "cfg", None)
    return float(getattr(cfg, "bound", 1.0))


def _device(field) -> torch.device:
    dev = getattr(field, "device", None)
    return torch.device(dev) if dev is not None else torch.device("cpu")


def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="pt", unit_scale=True, disable=not progress, leave=False)


def _grid_axis(res: int, bound: float) -> np.ndarray:
    return np.linspace(-bound, bound, res, dtype=np.float64)


@torch.no_grad()
def _skip_mask(occupancy, res: int, bound: float) -> np.ndarray | None:
    """bool [res, res, res] (x, y, z): grid points worth evaluating (occupied cells dilated by one cell)."""
    if occupancy is None:
        return None
    r = occupancy.resolution
    occ = occupancy.occupied.detach().to("cpu", torch.float32).reshape(r, r, r)  # [z, y, x]
    occ = torch.nn.functional.max_pool3d(occ[None, None], 3, stride=1, padding=1)[0, 0] > 0
    occ = occ.permute(2, 1, 0).numpy()  # [x, y, z]
    ax = _grid_axis(res, bound)
    cell = np.clip(((ax / occupancy.bound + 1) * 0.5 * r).astype(np.int64), 0, r - 1)
    return occ[np.ix_(cell, cell, cell)]


@torch.no_grad()
def density_grid(field, res: int = 128, occupancy=None, chunk: int = 1 << 16, progress: bool = True) -> np.ndarray:
    """sigma float32 [res, res, res], indexed [x, y, z], at the nodes of a regular grid over [-bound, bound]^3.
    Points the occupancy grid rules out (see module doc) are 0 without a field call. Progress bar over chunks."""
    if res < 2:
        raise PnrError(f"--res {res}: must be at least 2")
    b = _bound(field)
    ax = _grid_axis(res, b)
    mask = _skip_mask(occupancy, res, b)
    grid = np.zeros((res, res, res), dtype=np.float32)
    if mask is None:
        idx = np.arange(res**3)
    else:
        idx = np.flatnonzero(mask)
    dev = _device(field)
    with _bar(len(idx), "density", progress) as bar:
        for s in range(0, len(idx), chunk):
            k = idx[s: s + chunk]
            ix, iy, iz = np.unravel_index(k, (res, res, res))
            pts = torch.from_numpy(np.stack([ax[ix], ax[iy], ax[iz]], -1)).to(dev, torch.float32)
            grid.reshape(-1)[k] = field.density(pts).float().cpu().numpy()
            bar.update(len(k))
    return grid


def check_threshold(grid: np.ndarray, threshold: float, what: str = "the field") -> None:
    """PnrError unless `threshold` lies strictly inside the grid's density range (else no surface)."""
    lo, hi = float(grid.min()), float(grid.max())
    if not math.isfinite(threshold) or not lo < threshold < hi:
        res = grid.shape[0]
        raise PnrError(f"--threshold {threshold:g} gives no surface: the density of {what} at --res {res} ranges "
                       f"over [{lo:.4g}, {hi:.4g}]; pick a value inside it (default {DEFAULT_THRESHOLD:g})")


def keep_large_pieces(vertices: np.ndarray, faces: np.ndarray, min_fraction: float = 0.05
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop connected pieces with fewer faces than `min_fraction` x the largest piece's (1: the largest piece
    only; 0: keep all). -> (vertices, faces, pieces dropped); unused vertices are removed."""
    if len(faces) == 0 or min_fraction <= 0:
        return vertices, faces, 0
    sp = _need("scipy.sparse")
    csgraph = _need("scipy.sparse.csgraph")
    n = len(vertices)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    adj = sp.coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    _, labels = csgraph.connected_components(adj, directed=False)
    face_label = labels[faces[:, 0]]
    counts = np.bincount(face_label)
    if min_fraction >= 1:  # exactly one piece, even when two tie
        keep_labels = np.zeros(len(counts), dtype=bool)
        keep_labels[int(np.argmax(counts))] = True
    else:
        keep_labels = counts >= max(1.0, min_fraction * counts.max())
    keep = keep_labels[face_label]
    dropped = int((counts > 0).sum() - keep_labels[counts > 0].sum())
    faces = faces[keep]
    used = np.zeros(n, dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces], dropped


def _tangents(n: Tensor) -> tuple[Tensor, Tensor]:
    a = torch.where(n[:, :1].abs() < 0.9, torch.tensor([1.0, 0.0, 0.0], device=n.device),
                    torch.tensor([0.0, 1.0, 0.0], device=n.device))
    t1 = torch.nn.functional.normalize(torch.cross(n, a, dim=-1), dim=-1)
    return t1, torch.cross(n, t1, dim=-1)


@torch.no_grad()
def field_colors(field, points: np.ndarray, normals: np.ndarray, tilt: float = 0.5, chunk: int = 1 << 15,
                 progress: bool = False) -> np.ndarray:
    """uint8 [N, 3]: the field's colour at surface points, averaged over 5 view directions pointing into the
    surface (along -normal, and tilted by `tilt` toward ± two tangents): the view-dependent part averages out."""
    dev = _device(field)
    out = np.zeros((len(points), 3), dtype=np.float32)
    with _bar(len(points), "colour", progress) as bar:
        for s in range(0, len(points), chunk):
            x = torch.from_numpy(np.asarray(points[s: s + chunk], dtype=np.float32)).to(dev)
            n = torch.nn.functional.normalize(torch.from_numpy(np.asarray(normals[s: s + chunk], dtype=np.float32))
                                              .to(dev), dim=-1)
            t1, t2 = _tangents(n)
            dirs = [-n] + [torch.nn.functional.normalize(-n + sg * tilt * t, dim=-1) for t in (t1, t2) for sg in (1, -1)]
            rgb = sum(field.query(x, d)[1].float() for d in dirs) / len(dirs)
            out[s: s + len(x)] = rgb.clamp(0, 1).cpu().numpy()
            bar.update(len(x))
    return (out * 255 + 0.5).astype(np.uint8)


@dataclass
class MeshResult:
    mesh: object  # trimesh.Trimesh with vertex colours
    density_range: tuple[float, float]
    threshold: float
    res: int
    pieces_dropped: int = 0


def extract_mesh(field, occupancy=None, res: int = 128, threshold: float = DEFAULT_THRESHOLD,
                 min_fraction: float = 0.05, colors: bool = True, progress: bool = True, what: str = "the field",
                 grid: np.ndarray | None = None, smooth: int = 100) -> MeshResult:
    """Marching cubes of `field.density` at `threshold` on a `res`^3 grid (module doc). `field` needs
    `density(x)`, and `query(x, d) -> (sigma, rgb)` when `colors`; `cfg.bound` (default 1). `smooth`: Taubin
    smoothing iterations (volume-preserving; evens out the hash grid's surface noise). PnrError when the
    threshold is outside the density range (the message says the range)."""
    mcubes = _need("mcubes")
    trimesh = _need("trimesh")
    if grid is None:
        grid = density_grid(field, res, occupancy, progress=progress)
    res = grid.shape[0]
    check_threshold(grid, threshold, what)
    b = _bound(field)
    padded = np.pad(grid, 1, constant_values=0.0)  # closes surfaces that touch the box
    v, f = mcubes.marching_cubes(padded, float(threshold))
    v = (v - 1.0) * (2 * b / (res - 1)) - b
    f = np.asarray(f, dtype=np.int64)
    mesh = trimesh.Trimesh(v, f, process=True)  # merges duplicate vertices
    v, f, dropped = keep_large_pieces(np.asarray(mesh.vertices), np.asarray(mesh.faces), min_fraction)
    mesh = trimesh.Trimesh(v, f, process=False)
    if len(mesh.faces) and mesh.volume < 0:  # density is high inside: make normals point out
        mesh.invert()
    if smooth > 0 and len(mesh.faces):
        trimesh.smoothing.filter_taubin(mesh, iterations=int(smooth))
    if colors and len(mesh.vertices):
        rgb = field_colors(field, np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals), progress=progress)
        mesh.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return MeshResult(mesh, (float(grid.min()), float(grid.max())), float(threshold), res, dropped)


def write_mesh(mesh, out: str | Path) -> Path:
    """Write .glb / .obj / .ply (vertex colours included) atomically; PnrError for another suffix."""
    from pnr.io import atomic_write_bytes

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise PnrError(f"--out {out}: unknown mesh format {out.suffix or '(none)'!r}; use "
                       f"{', '.join(MESH_FORMATS)}")
    data = mesh.export(file_type=suffix[1:])
    atomic_write_bytes(out, data if isinstance(data, bytes) else data.encode())
    return out


def sample_points(field, mesh, n: int = 200_000, seed: int = 0, progress: bool = True):
    """A coloured point cloud (trimesh.PointCloud) of `n` points spread uniformly over the mesh surface,
    coloured from the field as the mesh's vertices are."""
    trimesh = _need("trimesh")
    if n <= 0:
        raise PnrError(f"--points {n}: must be positive")
    pts, fidx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    rgb = field_colors(field, pts, np.asarray(mesh.face_normals)[fidx], progress=progress)
    return trimesh.PointCloud(pts, colors=np.concatenate([rgb, np.full((n, 1), 255, np.uint8)], axis=1))


def write_points(cloud, out: str | Path) -> Path:
    from pnr.io import atomic_write_bytes

    out = Path(out)
    if out.suffix.lower() != ".ply":
        raise PnrError(f"--out {out}: point clouds are written as .ply (got {out.suffix or 'no suffix'!r})")
    atomic_write_bytes(out, cloud.export(file_type="ply"))
    return out


# --- a small rasteriser (previews, silhouette tests) ---------------------------------------------------
@torch.no_grad()
def render_mesh(vertices, faces, colors, cams, light=(0.4, -0.5, 0.8), ambient: float = 0.35,
                background: float = 1.0) -> dict[str, Tensor]:
    """Z-buffer rasterisation of a triangle mesh with the pinhole cameras of pnr.render.cameras (pixel
    centres, OpenGL axes). vertices [V, 3], faces [F, 3], colors [V, 3|4] in 0..255 or 0..1 (or None: grey).
    -> {"rgb": [B, H, W, 3] float in [0, 1] (Gouraud-shaded Lambert, two-sided), "alpha": [B, H, W] bool,
    "depth": [B, H, W] (inf where empty)}."""
    V = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    Fc = torch.as_tensor(np.asarray(faces), dtype=torch.long)
    if colors is None:
        C = torch.full((len(V), 3), 0.7)
    else:
        C = torch.as_tensor(np.asarray(colors)[:, :3], dtype=torch.float32)
        C = C / 255.0 if C.max() > 1.0 else C
    cams = cams.to("cpu")
    B, H, W = len(cams), cams.height, cams.width
    tri = V[Fc]  # [F, 3, 3]
    fn = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # area-weighted face normals
    vn = torch.zeros_like(V).index_add_(0, Fc.reshape(-1), fn.repeat_interleave(3, 0))
    vn = torch.nn.functional.normalize(vn, dim=-1)
    lvec = torch.nn.functional.normalize(torch.tensor(light, dtype=torch.float32), dim=0)
    shaded = C * (ambient + (1 - ambient) * (vn @ lvec).abs())[:, None]  # Gouraud, two-sided
    rgb = torch.full((B, H * W, 3), float(background))
    depth = torch.full((B, H * W), float("inf"))
    for b in range(B):
        c2w = cams.c2w[b]
        pc = (V - c2w[:3, 3]) @ c2w[:3, :3]  # camera coordinates (looks down -z)
        z = -pc[:, 2]
        zs = z.clamp(min=1e-6)
        u = pc[:, 0] / zs * cams.fx[b] + cams.cx[b]
        v = -pc[:, 1] / zs * cams.fy[b] + cams.cy[b]
        tu, tv, tz = u[Fc], v[Fc], z[Fc]  # [F, 3]
        ok = (tz > 1e-4).all(1)
        j0 = torch.ceil(tu.amin(1) - 0.5).clamp(min=0)
        j1 = torch.floor(tu.amax(1) - 0.5).clamp(max=W - 1)
        i0 = torch.ceil(tv.amin(1) - 0.5).clamp(min=0)
        i1 = torch.floor(tv.amax(1) - 0.5).clamp(max=H - 1)
        ok &= (j1 >= j0) & (i1 >= i0)
        fid = ok.nonzero()[:, 0]
        if fid.numel() == 0:
            continue
        size = torch.maximum(j1[fid] - j0[fid], i1[fid] - i0[fid]).long() + 1
        order = torch.argsort(size)
        fid, size = fid[order], size[order]
        cand_pix, cand_d, cand_c = [], [], []
        s = 0
        while s < len(fid):
            k = int(size[s])
            e = int(torch.searchsorted(size, torch.tensor(k), right=True))
            e = max(e, s + 1)
            e = min(e, s + max(1, (1 << 22) // (k * k)))  # bounded memory per batch
            f = fid[s:e]
            dj, di = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="xy")
            pj = j0[f, None] + dj.reshape(1, -1)
            pi = i0[f, None] + di.reshape(1, -1)
            inb = (pj <= j1[f, None]) & (pi <= i1[f, None])
            px, py = pj + 0.5, pi + 0.5
            x0, x1, x2 = tu[f, 0:1], tu[f, 1:2], tu[f, 2:3]
            y0, y1, y2 = tv[f, 0:1], tv[f, 1:2], tv[f, 2:3]
            area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
            safe = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
            w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / safe
            w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / safe
            w2 = 1 - w0 - w1
            eps = -1e-6
            inside = inb & (w0 >= eps) & (w1 >= eps) & (w2 >= eps) & (area.abs() >= 1e-12)
            r, q = inside.nonzero(as_tuple=True)
            ff = f[r]
            w = torch.stack([w0[r, q], w1[r, q], w2[r, q]], -1)  # [M, 3]
            cand_pix.append((pi[r, q] * W + pj[r, q]).long())
            cand_d.append((w * tz[ff]).sum(-1))
            cand_c.append((w[..., None] * shaded[Fc[ff]]).sum(1))
            s = e
        pix, d, col = torch.cat(cand_pix), torch.cat(cand_d), torch.cat(cand_c)
        zb = depth[b].scatter_reduce(0, pix, d, reduce="amin")
        win = d <= zb[pix]
        depth[b] = zb
        rgb[b, pix[win]] = col[win].clamp(0, 1)
    depth = depth.view(B, H, W)
    return {"rgb": rgb.view(B, H, W, 3), "alpha": torch.isfinite(depth), "depth": depth}


def preview(mesh, views: int = MESH_PREVIEW_ORBIT.frames, res: int = MESH_PREVIEW_ORBIT.res,
            elevation: float = MESH_PREVIEW_ORBIT.elevation, radius: float = MESH_PREVIEW_ORBIT.radius,
            fov: float = MESH_PREVIEW_ORBIT.fov) -> np.ndarray:
    """uint8 [h, views * w, 3]: the mesh (vertex colours, shaded) from `views` azimuths, side by side, with the
    cameras of `pnr render` (orbit at `elevation`, `radius`, `fov`, `res` px), cropped to the object."""
    from pnr.render.cameras import orbit_cameras

    cams = orbit_cameras(views, elevation_deg=elevation, radius=radius, fov_deg=fov, res=res,
                         azimuth0_deg=MESH_PREVIEW_ORBIT.azimuth0)
    colors = getattr(mesh.visual, "vertex_colors", None) if mesh.visual.kind == "vertex" else None
    out = render_mesh(mesh.vertices, mesh.faces, colors, cams, ambient=0.55)
    rgb, hit = out["rgb"], out["alpha"].any(0)
    if hit.any():
        pad = res // 16
        rows, cols = hit.any(1).nonzero()[:, 0], hit.any(0).nonzero()[:, 0]
        r0, r1 = max(0, int(rows[0]) - pad), min(res, int(rows[-1]) + 1 + pad)
        c0, c1 = max(0, int(cols[0]) - pad), min(res, int(cols[-1]) + 1 + pad)
        rgb = rgb[:, r0:r1, c0:c1]
    return (torch.cat(list(rgb), dim=1).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def mesh_from_file(path: str | Path):
    """trimesh.Trimesh from a .glb/.obj/.ply written by `write_mesh` (a glb scene is merged)."""
    trimesh = _need("trimesh")
    m = trimesh.load(str(path), process=False)
    if isinstance(m, trimesh.Scene):
        m = m.to_mesh() if hasattr(m, "to_mesh") else m.dump(concatenate=True)
    return m


def export_mesh(run: str | Path, out: str | Path, res: int = 128, threshold: float = DEFAULT_THRESHOLD,
                min_fraction: float = 0.05, smooth: int = 100, device="cpu", progress: bool = True,
                skip_empty: bool = True, points: int = 0, seed: int = 0, preview_png: str | Path | None = None,
                preview_res: int = 256) -> dict:
    """Load a checkpoint (or a run folder holding checkpoint/), extract its mesh and write it to `out`
    (.glb/.obj/.ply); with `points` > 0 write that many coloured surface points instead (.ply).
    `preview_png`: also a PNG of the mesh from 4 azimuths (`preview`).
    -> summary {"out", "checkpoint", "vertices", "faces", "points", "pieces_dropped", "density_range", ...}."""
    from pnr.field.checkpoint import load_checkpoint, resolve_checkpoint_dir

    out = Path(out)
    suffix = out.suffix.lower()
    if points and suffix != ".ply":
        raise PnrError(f"--out {out}: point clouds are written as .ply (got {out.suffix or 'no suffix'!r})")
    if not points and suffix not in MESH_FORMATS:
        raise PnrError(f"--out {out}: unknown mesh format {out.suffix or '(none)'!r}; use {', '.join(MESH_FORMATS)}")
    if points < 0:
        raise PnrError(f"--points {points}: must be positive")
    for mod in ("mcubes", "trimesh", "scipy"):  # before any work
        _need(mod)
    ckpt = resolve_checkpoint_dir(run)
    fld, occ, _ = load_checkpoint(ckpt, device=device)
    r = extract_mesh(fld, occ if skip_empty else None, res, threshold, min_fraction, colors=not points,
                     progress=progress, what=str(ckpt), smooth=smooth)
    if points:
        write_points(sample_points(fld, r.mesh, points, seed=seed, progress=progress), out)
    else:
        write_mesh(r.mesh, out)
    if preview_png is not None:
        from pnr.io import save_png

        save_png(preview_png, preview(r.mesh, res=preview_res))
    return {"out": str(out), "checkpoint": str(ckpt), "vertices": len(r.mesh.vertices), "faces": len(r.mesh.faces),
            "points": points, "pieces_dropped": r.pieces_dropped, "density_range": r.density_range,
            "threshold": r.threshold, "res": r.res}
