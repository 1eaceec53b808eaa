"""`pnr fit DATASET --out RUN`: fit a hash-grid NeRF to a transforms.json dataset.

Every FitConfig setting (pnr/fit.py) is an option (pnr.settings.flag_of: --rays for rays_per_batch, ...).
"""

from __future__ import annotations

from pathlib import Path

from pnr.errors import PnrError
from pnr.field.config import FIELD_PRESETS, field_preset  # noqa: F401  (field_preset: re-exported for scripts)
from pnr.settings import add_device_option, config_from, resolve_device  # noqa: F401  (resolve_device: re-export)

PRESETS = tuple(FIELD_PRESETS)


def add_parser(sub):
    from pnr.fit_config import FitConfig
    from pnr.settings import add_options

    p = sub.add_parser("fit", help="fit a NeRF to a transforms.json dataset (NeRF-synthetic / nerfstudio)",
                       description=__doc__)
    p.add_argument("dataset", help="dataset folder (transforms.json or transforms_{train,test}.json) or JSON file")
    p.add_argument("--out", required=True, help="run folder: checkpoint/ and metrics.json are written here")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--field", choices=PRESETS, default="default", help="field size preset")
    p.add_argument("--background", choices=("learned", "fixed"), default=None,
                   help="background model of the field (default: the field preset's, learned)")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--unbounded", action="store_true",
                       help="scene with background: contract space outside the unit ball (mip-NeRF 360); chosen "
                            "automatically for opaque photos with a non-uniform background or aabb_scale > 1")
    scope.add_argument("--bounded", action="store_true", help="an object in the box, even if the images look unbounded")
    p.add_argument("--downscale", type=int, default=1, metavar="N",
                   help="load images N times smaller (nerfstudio's images_N/ folders when present, else resized)")
    p.add_argument("--skip-missing-images", action="store_true",
                   help="drop frames whose image file is missing (with a warning) instead of stopping")
    add_device_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_options(p.add_argument_group("fit settings (pnr.fit.FitConfig)"), FitConfig)
    p.set_defaults(func=run)
    return p


def run(args):
    from dataclasses import replace

    from pnr.data.transforms import load_transforms_dataset
    from pnr.fit import FitConfig, fit, fit_config_for
    from pnr.io import check_writable

    if args.downscale < 1:
        raise PnrError(f"--downscale must be a positive integer, got {args.downscale}")
    device = resolve_device(args.device)
    cfg = config_from(args, FitConfig, fit_config_for, device)  # out-of-range settings: before any work
    out = Path(args.out)
    check_writable(out)  # fail before the (slow) dataset load
    data = load_transforms_dataset(args.dataset, downscale=args.downscale, skip_missing=args.skip_missing_images)
    fcfg = field_preset(args.field)
    if args.background is not None:
        fcfg = replace(fcfg, background=args.background)
    if args.unbounded:
        fcfg = replace(fcfg, contraction="mipnerf360")
    elif not args.bounded and not args.resume:
        from pnr.data.scene import detect_unbounded

        unbounded, why = detect_unbounded(data.images, data.alpha, data.scene)
        if unbounded:
            fcfg = replace(fcfg, contraction="mipnerf360")
            if not args.quiet:
                print(f"fit: {why}: fitting an unbounded field (scene contraction; --bounded to override)")
    _, _, m = fit(data, fcfg, cfg, out, resume=args.resume, progress=not args.quiet)
    msg = f"fit: {m['step']} steps, {m['train_time_s']:.1f} s; checkpoint {out / 'checkpoint'}"
    if "heldout_psnr" in m:
        msg += (f"; held-out PSNR {m['heldout_psnr']:.2f} dB over {m['heldout_views']} views "
                f"at {m['heldout_res'][0]}x{m['heldout_res'][1]}")
    print(msg)
    return 0
