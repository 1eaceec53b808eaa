"""`pnr export mesh RUN --out FILE.{glb,obj,ply}` and `pnr export points RUN --out FILE.ply`.

RUN is a checkpoint folder or a run folder holding checkpoint/ (`pnr fit`, `pnr edit` outputs). Marching
cubes on the field's density (pnr/export/mesh.py); needs the `export` extra: pip install "pnr[export]".
"""

from __future__ import annotations

import math
from pathlib import Path

from pnr.errors import PnrError
from pnr.render.orbit import MESH_PREVIEW_ORBIT


def _common(p):
    from pnr.export.mesh import DEFAULT_THRESHOLD

    p.add_argument("run", help="checkpoint folder (or a run folder holding checkpoint/)")
    p.add_argument("--res", type=int, default=128, help="density grid points per axis over the field's box (256 "
                   "for fields fitted to larger images)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="density (sigma) of the surface; outside the field's density range is an error that says "
                        f"the range (default {DEFAULT_THRESHOLD:g})")
    p.add_argument("--min-piece", type=float, default=0.05,
                   help="drop connected pieces with fewer faces than this fraction of the largest piece's "
                        "(1: the largest piece only; 0: keep every piece)")
    p.add_argument("--smooth", type=int, default=100, help="Taubin smoothing iterations (volume-preserving; 0: none)")
    p.add_argument("--all-cells", action="store_true",
                   help="evaluate the density everywhere (default: skip cells the occupancy grid marks empty)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(sub):
    p = sub.add_parser("export", help="export a checkpoint as a mesh (.glb/.obj/.ply) or a coloured point cloud")
    esub = p.add_subparsers(dest="export_command", required=True)
    m = esub.add_parser("mesh", help="marching-cubes mesh with vertex colours (.glb, .obj or .ply)")
    _common(m)
    m.add_argument("--out", required=True, help="FILE.glb, FILE.obj or FILE.ply")
    m.add_argument("--preview", metavar="PNG", help="also write a PNG of the mesh from 4 azimuths (own rasteriser)")
    m.add_argument("--preview-res", type=int, default=MESH_PREVIEW_ORBIT.res, help="pixels per view of --preview")
    pts = esub.add_parser("points", help="coloured point cloud on the surface (.ply)")
    _common(pts)
    pts.add_argument("--out", required=True, help="FILE.ply")
    pts.add_argument("--points", type=int, default=200_000, help="number of points")
    pts.add_argument("--seed", type=int, default=0, help="seed of the point placement")
    p.set_defaults(func=run)
    return p


def _check(args) -> Path:
    from pnr.export.mesh import MESH_FORMATS

    if args.res < 8:
        raise PnrError(f"--res {args.res}: must be at least 8")
    if not math.isfinite(args.threshold):
        raise PnrError(f"--threshold {args.threshold}: must be a finite number")
    if not 0 <= args.min_piece <= 1:
        raise PnrError(f"--min-piece {args.min_piece}: must be in [0, 1]")
    if args.smooth < 0:
        raise PnrError(f"--smooth {args.smooth}: must be >= 0")
    out = Path(args.out)
    suffix = out.suffix.lower()
    if args.export_command == "mesh" and suffix not in MESH_FORMATS:
        raise PnrError(f"--out {out}: unknown mesh format {out.suffix or '(none)'!r}; use {', '.join(MESH_FORMATS)}")
    if getattr(args, "preview", None) and (not args.preview.lower().endswith(".png") or args.preview_res < 16):
        raise PnrError(f"--preview {args.preview} --preview-res {args.preview_res}: give a .png file and >= 16 px")
    if args.export_command == "points":
        if suffix != ".ply":
            raise PnrError(f"--out {out}: point clouds are written as .ply (got {out.suffix or 'no suffix'!r})")
        if args.points <= 0:
            raise PnrError(f"--points {args.points}: must be positive")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PnrError(f"--out {out}: cannot create its folder ({e.strerror})") from None
    if out.is_dir():
        raise PnrError(f"--out {out}: is a folder; give a file name")
    return out


def run(args):
    import time

    from pnr.settings import resolve_device
    from pnr.export.mesh import export_mesh

    out = _check(args)
    t0 = time.time()
    n = args.points if args.export_command == "points" else 0
    r = export_mesh(args.run, out, args.res, args.threshold, args.min_piece, args.smooth,
                    device=resolve_device(args.device), progress=not args.quiet, skip_empty=not args.all_cells,
                    points=n, seed=getattr(args, "seed", 0), preview_png=getattr(args, "preview", None),
                    preview_res=getattr(args, "preview_res", MESH_PREVIEW_ORBIT.res))
    lo, hi = r["density_range"]
    what = f"{n} points" if n else f"{r['vertices']} vertices, {r['faces']} faces"
    dropped = f", {r['pieces_dropped']} small pieces dropped" if r["pieces_dropped"] else ""
    print(f"export: {what} -> {out} (threshold {r['threshold']:g} in density range [{lo:.3g}, {hi:.3g}] at --res "
          f"{r['res']}{dropped}; {time.time() - t0:.1f} s)")
    return 0
