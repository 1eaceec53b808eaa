"""`pnr fit DATASET --out RUN`: fit a hash-grid NeRF to a transforms.json dataset."""

from __future__ import annotations

from pathlib import Path

from pnr.errors import PnrError

PRESETS = ("default", "small", "tiny")


def add_parser(sub):
    p = sub.add_parser("fit", help="fit a NeRF to a transforms.json dataset (NeRF-synthetic / nerfstudio)")
    p.add_argument("dataset", help="dataset folder (transforms.json or transforms_{train,test}.json) or JSON file")
    p.add_argument("--out", required=True, help="run folder: checkpoint/ and metrics.json are written here")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--rays", type=int, default=4096, help="rays per batch")
    p.add_argument("--samples", type=int, default=128, help="samples per ray")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--occupancy-res", type=int, default=None,
                   help="occupancy grid cells per axis (default 64 on CUDA, 32 on CPU where its updates cost more)")
    p.add_argument("--field", choices=PRESETS, default="default", help="field size preset")
    p.add_argument("--background", choices=("learned", "fixed"), default="learned")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--unbounded", action="store_true",
                       help="scene with background: contract space outside the unit ball (mip-NeRF 360); chosen "
                            "automatically for opaque photos with a non-uniform background or aabb_scale > 1")
    scope.add_argument("--bounded", action="store_true", help="an object in the box, even if the images look unbounded")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--downscale", type=int, default=1, metavar="N",
                   help="load images N times smaller (nerfstudio's images_N/ folders when present, else resized)")
    p.add_argument("--eval-res", type=int, default=256, metavar="PX",
                   help="held-out views are evaluated at most PX pixels a side (default 256; 0: full size)")
    p.add_argument("--eval-every", type=int, default=0, metavar="STEPS",
                   help="also report held-out PSNR (4 views) every STEPS steps (default 0: only at the end)")
    p.add_argument("--normalize", choices=("auto", "cameras", "none"), default="auto",
                   help="scene frame: 'cameras' centres and scales the region the cameras look at into the field's "
                        "box (instant-ngp's scale/offset when the file has them); 'auto' (default) does so unless the "
                        "scene already fits the box; 'none' keeps the dataset's frame")
    p.add_argument("--orient", choices=("up", "none"), default="up",
                   help="when normalising: turn the mean camera up vector to +z (default) or keep the axes")
    p.add_argument("--scale", type=float, default=1.0,
                   help="extra factor on the scene scale: < 1 shrinks the scene into the box (if it is cut off), "
                        "> 1 enlarges it (default 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def field_preset(name: str):
    from pnr.field.config import FieldConfig

    return {"default": FieldConfig, "small": FieldConfig.small, "tiny": FieldConfig.tiny}[name]()


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PnrError(f"--device {name}: CUDA is not available on this machine")
    return name


def run(args):
    from dataclasses import replace

    from pnr.data.transforms import load_transforms_dataset
    from pnr.fit import FitConfig, _check_writable, fit

    for name in ("steps", "rays", "samples", "checkpoint_every"):
        if getattr(args, name) <= 0:
            raise PnrError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("downscale",):
        if getattr(args, name) < 1:
            raise PnrError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    for name in ("eval_res", "eval_every"):
        if getattr(args, name) < 0:
            raise PnrError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    import math

    if not (args.scale > 0 and math.isfinite(args.scale)):
        raise PnrError(f"--scale must be a positive number, got {args.scale}")
    out = Path(args.out)
    _check_writable(out)  # fail before the (slow) dataset load
    data = load_transforms_dataset(args.dataset, downscale=args.downscale)
    fcfg = replace(field_preset(args.field), background=args.background)
    if args.unbounded:
        fcfg = replace(fcfg, contraction="mipnerf360")
    elif not args.bounded and not args.resume:
        from pnr.data.scene import detect_unbounded

        unbounded, why = detect_unbounded(data.images, data.alpha, data.scene)
        if unbounded:
            fcfg = replace(fcfg, contraction="mipnerf360")
            if not args.quiet:
                print(f"fit: {why}: fitting an unbounded field (scene contraction; --bounded to override)")
    device = resolve_device(args.device)
    occ_res = args.occupancy_res or (64 if device.startswith("cuda") else 32)
    cfg = FitConfig(steps=args.steps, rays_per_batch=args.rays, num_samples=args.samples, lr=args.lr,
                    checkpoint_every=args.checkpoint_every, seed=args.seed, device=device,
                    occupancy_resolution=occ_res, eval_max_res=args.eval_res, eval_every=args.eval_every,
                    normalize=args.normalize, orient=args.orient, scale=args.scale)
    _, _, m = fit(data, fcfg, cfg, out, resume=args.resume, progress=not args.quiet)
    msg = f"fit: {m['step']} steps, {m['train_time_s']:.1f} s; checkpoint {out / 'checkpoint'}"
    if "heldout_psnr" in m:
        msg += (f"; held-out PSNR {m['heldout_psnr']:.2f} dB over {m['heldout_views']} views "
                f"at {m['heldout_res'][0]}x{m['heldout_res'][1]}")
    print(msg)
    return 0
