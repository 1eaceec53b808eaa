"""`pnr render CKPT --out DIR`: turntable PNG frames, turntable.mp4 and contact_sheet.png.

The orbit options are pnr.render.orbit.OrbitConfig's (defaults: RENDER_ORBIT), the rest TurntableOutputConfig's.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    from pnr.render.orbit import RENDER_ORBIT, OrbitConfig, TurntableOutputConfig
    from pnr.settings import add_device_option, add_options

    p = sub.add_parser("render", help="render a turntable of a checkpoint (PNGs, MP4, contact sheet)",
                       description=__doc__)
    p.add_argument("checkpoint", help="checkpoint folder (or a run folder holding checkpoint/)")
    p.add_argument("--out", required=True, help="output folder")
    add_options(p, OrbitConfig, RENDER_ORBIT)
    add_options(p, TurntableOutputConfig)
    add_device_option(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args):
    from pnr.field.checkpoint import load_checkpoint
    from pnr.io import check_writable, contact_sheet, save_png, save_video
    from pnr.render.orbit import RENDER_ORBIT, OrbitConfig, TurntableOutputConfig
    from pnr.render.turntable import orbit_turntable
    from pnr.settings import config_from, resolve_device

    orbit = config_from(args, OrbitConfig, RENDER_ORBIT.with_)
    out_cfg = config_from(args, TurntableOutputConfig)
    out = Path(args.out)
    check_writable(out)
    field, occ, _ = load_checkpoint(args.checkpoint, device=resolve_device(args.device))
    frames = orbit_turntable(field, occ, orbit, num_samples=out_cfg.num_samples, progress=not args.quiet).numpy()
    for i, f in enumerate(frames):
        save_png(out / f"frame_{i:03d}.png", f)
    save_video(out / "turntable.mp4", frames, fps=out_cfg.fps)
    k = min(out_cfg.sheet_frames, len(frames))
    pick = [round(i * len(frames) / k) for i in range(k)]
    save_png(out / "contact_sheet.png", contact_sheet(frames[pick], cols=min(k, 6)))
    print(f"render: {len(frames)} frames, turntable.mp4 and contact_sheet.png in {out}")
    return 0
