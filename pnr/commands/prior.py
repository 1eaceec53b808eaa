"""`pnr prior train | sample`: train the built-in multi-view prior, or sample 4 views from a prior."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pnr.errors import PnrError


def add_parser(sub):
    p = sub.add_parser("prior", help="train or sample the built-in multi-view diffusion prior")
    ps = p.add_subparsers(dest="prior_command", required=True)

    t = ps.add_parser("train", help="train (or resume) the built-in prior on the procedural object domain")
    t.add_argument("--out", required=True, help="run folder: ckpt.pt (full precision), log.jsonl, prior.safetensors")
    t.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    t.add_argument("--resume", help="ckpt.pt of an earlier run to continue from")
    t.add_argument("--init", help="prior .safetensors to continue from (fresh optimizer; EMA restarts from it)")
    t.add_argument("--warmup", type=int, help="learning-rate warm-up steps")
    t.add_argument("--batch", type=int, help="objects per step (4 views each); default from TrainConfig")
    t.add_argument("--lr", type=float)
    t.add_argument("--planned-steps", type=int, help="length of the cosine learning-rate decay")
    t.add_argument("--device", default=None, help="cuda if available, else cpu")
    t.add_argument("--data", choices=["domain", "synthetic"], default="domain",
                   help="domain = procedural objects rendered on the fly; synthetic = coloured discs (smoke tests)")
    t.add_argument("--tiny", action="store_true", help="tiny model config (smoke tests)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--compile", action="store_true", help="torch.compile the UNet (GPU; see bench/prior_train_speed.py)")
    t.set_defaults(func=run)

    s = ps.add_parser("sample", help="sample 4 consistent views for a prompt and write a grid PNG")
    s.add_argument("prompt")
    s.add_argument("--out", required=True, help="output PNG (one row per sample, 4 views each)")
    s.add_argument("--prior", help="prior checkpoint (.safetensors); default: the shipped weights")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps (<= 1000)")
    s.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num", type=int, default=1, help="samples (rows)")
    s.add_argument("--views", type=int, default=4)
    s.add_argument("--elevation", type=float, default=15.0)
    s.add_argument("--device", default=None)
    s.set_defaults(func=run)
    return p


def _device(name):
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def run(args):
    if args.prior_command == "train":
        return _train(args)
    return _sample(args)


def _sample(args) -> int:
    import torch

    from pnr.io import save_png
    from pnr.priors.builtin import ddim_sample, default_views, load_builtin_prior

    if not 1 <= args.steps <= 1000:
        raise PnrError(f"--steps {args.steps}: must be between 1 and 1000")
    dev = _device(args.device)
    prior = load_builtin_prior(args.prior, device=dev)
    gen = torch.Generator().manual_seed(args.seed)
    c2w = default_views(args.num, args.views, args.elevation, device=dev)
    t0 = time.time()
    rgb = ddim_sample(prior, [args.prompt] * args.num, c2w, steps=args.steps, guidance_scale=args.guidance,
                      generator=gen, progress=True)  # [N, V, 3, S, S]
    dt = time.time() - t0
    n, v, _, s, _ = rgb.shape
    grid = rgb.permute(0, 3, 1, 4, 2).reshape(n * s, v * s, 3)  # rows = samples, columns = views
    save_png(args.out, grid.float().cpu())
    print(f"wrote {args.out} ({n}x{v} views, {args.steps} DDIM steps, guidance {args.guidance}, {dt:.1f}s on {dev})")
    return 0


def _train(args) -> int:
    from pnr.priors.builtin.model import PriorConfig
    from pnr.priors.builtin.train import SyntheticData, Trainer, TrainConfig

    dev = _device(args.device)
    out = Path(args.out)
    if args.data == "synthetic":
        vocab = SyntheticData.vocab()
    else:
        from pnr.priors.builtin.data import domain_vocab

        vocab = domain_vocab()
    overrides = {"batch_groups": args.batch, "lr": args.lr, "planned_steps": args.planned_steps,
                 "warmup_steps": args.warmup, "compile": True if args.compile else None}
    if args.init:
        tc = TrainConfig(seed=args.seed, bf16=dev.startswith("cuda"))
        for k, v in overrides.items():
            if v is not None:
                setattr(tc, k, v)
        tr = Trainer.from_prior(args.init, tc, dev)
        if tr.cfg.vocab != vocab:
            raise PnrError(f"{args.init}: its vocabulary differs from the current domain's; start a new run")
    elif args.resume:
        tr = Trainer.resume(args.resume, dev, **overrides)
        if tr.cfg.vocab != vocab:
            raise PnrError(f"{args.resume}: its vocabulary differs from the current domain's; start a new run")
    else:
        cfg = PriorConfig.tiny(vocab) if args.tiny else PriorConfig(vocab=vocab)
        tc = TrainConfig(seed=args.seed, bf16=dev.startswith("cuda"))
        for k, v in overrides.items():
            if v is not None:
                setattr(tc, k, v)
        tr = Trainer(cfg, tc, dev)
    if args.data == "synthetic":
        data = SyntheticData(tr.cfg.image_size, dev, seed=args.seed + tr.step)
    else:
        from pnr.priors.builtin.data import DomainData

        data = DomainData(tr.cfg.image_size, dev, seed=args.seed + tr.step)
    recs = tr.train(data, args.minutes * 60, out)
    path = tr.export(out / "prior.safetensors")
    summary = {"step": tr.step, "last_loss": recs[-1]["loss"] if recs else None, "prior": str(path),
               "params": tr.model.num_parameters()}
    print(json.dumps(summary))
    return 0
