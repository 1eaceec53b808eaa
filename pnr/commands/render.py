"""`pnr render CKPT --out DIR`: turntable PNG frames, turntable.mp4 and contact_sheet.png."""

from __future__ import annotations

from pathlib import Path

from pnr.errors import PnrError


def add_parser(sub):
    p = sub.add_parser("render", help="render a turntable of a checkpoint (PNGs, MP4, contact sheet)")
    p.add_argument("checkpoint", help="checkpoint folder (or a run folder holding checkpoint/)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--elevation", type=float, default=20.0, help="degrees")
    p.add_argument("--radius", type=float, default=3.0)
    p.add_argument("--res", type=int, default=128)
    p.add_argument("--fov", type=float, default=40.0, help="degrees")
    p.add_argument("--samples", type=int, default=128, help="samples per ray")
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--sheet-frames", type=int, default=12, help="frames on the contact sheet")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args):
    from pnr.commands.fit import resolve_device
    from pnr.field.checkpoint import load_checkpoint
    from pnr.fit import _check_writable
    from pnr.io import contact_sheet, save_png, save_video
    from pnr.render.turntable import turntable

    for name in ("frames", "res", "samples", "fps", "sheet_frames"):
        if getattr(args, name) <= 0:
            raise PnrError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0 < args.fov < 180:
        raise PnrError(f"--fov {args.fov}: must be in (0, 180) degrees")
    if args.radius <= 0:
        raise PnrError(f"--radius {args.radius}: must be positive")
    out = Path(args.out)
    _check_writable(out)
    field, occ, _ = load_checkpoint(args.checkpoint, device=resolve_device(args.device))
    frames = turntable(field, occ, n=args.frames, elevation=args.elevation, radius=args.radius, res=args.res,
                       fov=args.fov, num_samples=args.samples, progress=not args.quiet).numpy()
    for i, f in enumerate(frames):
        save_png(out / f"frame_{i:03d}.png", f)
    save_video(out / "turntable.mp4", frames, fps=args.fps)
    k = min(args.sheet_frames, len(frames))
    pick = [round(i * len(frames) / k) for i in range(k)]
    save_png(out / "contact_sheet.png", contact_sheet(frames[pick], cols=min(k, 6)))
    print(f"render: {len(frames)} frames, turntable.mp4 and contact_sheet.png in {out}")
    return 0
