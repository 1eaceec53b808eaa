"""`pnr edit SOURCE "PROMPT" --out DIR`: text-guided edit of a NeRF with Perturb-and-Revise or a baseline.

SOURCE is a pnr checkpoint (a `pnr fit` run folder or its checkpoint/) or a transforms.json dataset,
which is fitted first (into DIR/source). Every EditConfig setting is an option of the same name;
--preset picks the defaults (paper: 50 + 1500 + 1000 steps; quick: minutes on a CPU).
A DIR holding a partial run (DIR/state.pt) is continued; --restart starts it over.
"""

from __future__ import annotations

import time
from pathlib import Path

from pnr.errors import DataError, PnrError

_SPECIAL = {"eta"}  # EditConfig.eta is a number or 'auto' on the command line


def add_parser(sub):
    from pnr.edit.config import PRESETS, EditConfig, SourceConfig
    from pnr.settings import add_device_option, add_options

    p = sub.add_parser("edit", help="edit a NeRF with a text prompt (Perturb-and-Revise, SDS, PDS, IDU, regen)",
                       description=__doc__)
    p.add_argument("source", help="pnr checkpoint / fit run folder, or a transforms.json dataset (fitted first)")
    p.add_argument("prompt", help='the edit: with the built-in prior name only the change ("sitting", "in blue")')
    p.add_argument("--out", required=True, help="output folder (checkpoint/, edit.json, turntable.mp4, contact.png)")
    p.add_argument("--eta", default="auto", help="perturbation strength in [0, 1], or 'auto' (Alg. 2)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                   help=("; ".join(f"{n}: {PRESETS[n].description}" for n in sorted(PRESETS))
                         + " (default paper)").replace("%", "%%"))
    p.add_argument("--source-prompt", default=None, help="caption of the source (PDS; composes the built-in "
                   "prior's text). Default: the caption stored with the source")
    p.add_argument("--prior", default="builtin", help="builtin | sd15 | sd21 | mvdream | PATH")
    p.add_argument("--editor", default=None, metavar="PATH_OR_HUB_ID",
                   help="--method idu only: edit the dataset views with this InstructPix2Pix (diffusers folder or "
                   "hub id, e.g. timbrooks/instruct-pix2pix) instead of SDEdit with the prior; the prompt is its "
                   "instruction as written, --prior is not used, --idu-ddim-steps sets its denoising steps, its "
                   "noise level is U(0.02, 0.98) (Instruct-NeRF2NeRF) instead of --idu-t")
    add_device_option(p)
    p.add_argument("--restart", action="store_true", help="ignore a partial run in --out and start over")
    add_options(p, SourceConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def by_preset(name):
        return "".join(f"; {n} {PRESETS[n].overrides()[name]}" for n in sorted(PRESETS)
                       if name in PRESETS[n].overrides())

    add_options(p.add_argument_group("edit settings (defaults from --preset; see docs/edit.md)"), EditConfig,
                PRESETS["paper"].config, exclude=_SPECIAL, extra_help=by_preset)
    p.set_defaults(func=run)
    return p


def _config(args):
    from pnr.edit.config import EditConfig, preset
    from pnr.settings import overrides

    over = overrides(args, EditConfig, exclude=_SPECIAL)
    if args.eta == "auto":
        eta = None
    else:
        try:
            eta = float(args.eta)
        except ValueError:
            raise PnrError(f"--eta must be 'auto' or a number in [0, 1], got {args.eta!r}") from None
        if not 0.0 <= eta <= 1.0:
            raise PnrError(f"--eta must be in [0, 1], got {eta}")
    return preset(args.preset, eta=eta, **over)


def _dataset_json(src: Path) -> Path | None:
    if src.is_file() and src.suffix == ".json" and src.name != "config.json":
        return src
    for name in ("transforms.json", "transforms_train.json"):
        if src.is_dir() and (src / name).exists():
            return src / name
    return None


def _load_source(args, out: Path, device: str):
    """-> (field, occupancy, caption or None, description). A dataset is fitted into DIR/source first."""
    from pnr.field.checkpoint import load_checkpoint

    src = Path(args.source)
    if not src.exists():
        raise DataError(f"{src}: no such checkpoint or dataset")
    is_ckpt = (src / "config.json").exists() or (src / "checkpoint" / "config.json").exists() or src.name == "config.json"
    tjson = None if is_ckpt else _dataset_json(src)
    if tjson is None:
        field, occ, meta = load_checkpoint(src, device=device)
        return field, occ, meta.get("caption"), f"checkpoint {src}"
    from pnr.data.transforms import load_transforms_dataset
    from pnr.edit.config import SourceConfig
    from pnr.field.config import field_preset
    from pnr.fit import FitConfig, fit
    from pnr.settings import config_from

    data = load_transforms_dataset(src)
    caption = data.caption
    fit_dir = out / "source"
    resume = (fit_dir / "checkpoint" / "config.json").exists()
    scfg = config_from(args, SourceConfig)
    field, occ, _ = fit(data, field_preset(scfg.field), FitConfig(steps=scfg.fit_steps, device=device), fit_dir,
                        resume=resume, progress=not args.quiet)
    return field, occ, caption, f"dataset {src} (fitted into {fit_dir})"


def run(args):
    from pnr.edit.loop import STATE_FILE
    from pnr.settings import resolve_device
    from pnr.edit.run import edit_to_dir

    cfg = _config(args)
    if not args.prompt or not args.prompt.strip():
        raise PnrError("the edit prompt is empty: say what to change, e.g. \"sitting\" or \"in blue\"")
    if args.editor and cfg.method != "idu":
        raise PnrError(f"--editor is used only by --method idu (the dataset update's image editor), "
                       f"not --method {cfg.method}")
    device = resolve_device(args.device)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PnrError(f"--out {out} exists and is not a folder")
    if args.restart:
        (out / STATE_FILE).unlink(missing_ok=True)
    if (out / "edit.json").is_file() and not (out / STATE_FILE).exists():
        print(f"pnr edit: {out} holds a finished edit; running it again replaces its files")
    t0 = time.time()
    if args.editor:
        from pnr.priors.ip2p import IP2PConfig, load_ip2p

        editor, prior = load_ip2p(args.editor, device=device, cfg=IP2PConfig(steps=cfg.idu_ddim_steps)), None
    else:
        editor, prior = None, _load_prior(args.prior, device)
    field, occ, caption, desc = _load_source(args, out, device)
    source_prompt = args.source_prompt or caption
    res, rec = edit_to_dir(field, occ, prior, args.prompt, source_prompt, cfg, out, resume=True,
                           progress=not args.quiet, editor=editor,
                           extra_record={"source": desc, "prior": None if editor else args.prior,
                                         "editor": args.editor, "preset": args.preset,
                                         "wall_seconds_incl_loading": None})
    rec["wall_seconds_incl_loading"] = time.time() - t0
    from pnr.edit.loop import write_record

    write_record(out / "edit.json", rec)
    extra = f", source caption {source_prompt!r}" if source_prompt else ""
    eta = f", eta {res.eta:.3f}" if cfg.method in ("pnr", "regen") else ""  # the baselines have no η
    resumed = f", resumed from step {res.resumed_from}" if res.resumed_from else ""
    print(f"edit ({cfg.method}{eta}{extra}): {rec['conditioning_text']!r} in {res.seconds:.1f} s on {device}"
          f"{resumed}; wrote {out}: {', '.join(rec['outputs'])}")
    return 0


def _load_prior(name: str, device: str):
    try:
        from pnr.priors.load import load_prior
    except ImportError:
        load_prior = None
    if load_prior is not None:
        return load_prior(name, device=device)
    from pnr.priors.builtin.prior import load_builtin_prior

    if name not in ("builtin",) and not Path(name).exists():
        raise PnrError(f"--prior {name}: only the built-in prior (or a path to its checkpoint) is available")
    return load_builtin_prior(None if name == "builtin" else name, device=device)

