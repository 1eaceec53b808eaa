"""`pnr edit SOURCE "PROMPT" --out DIR`: text-guided edit of a NeRF with Perturb-and-Revise or a baseline.

SOURCE is a pnr checkpoint (a `pnr fit` run folder or its checkpoint/) or a transforms.json dataset,
which is fitted first (into DIR/source). Every EditConfig setting is an option of the same name;
--preset picks the defaults (paper: 50 + 1500 + 1000 steps; quick: minutes on a CPU).
A DIR holding a partial run (DIR/state.pt) is continued; --restart starts it over.
"""

from __future__ import annotations

from pnr.errors import PnrError

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


def run(args):
    from pnr.edit.config import SourceConfig
    from pnr.edit.prepare import prepare_edit
    from pnr.settings import config_from

    cfg = _config(args)
    prep = prepare_edit(args.source, args.prompt, cfg, args.out, prior=args.prior, editor=args.editor,
                        device=args.device, source_prompt=args.source_prompt,
                        source_cfg=config_from(args, SourceConfig), restart=args.restart, progress=not args.quiet,
                        preset=args.preset)
    if prep.replaces_finished:
        print(f"pnr edit: {prep.out} holds a finished edit; running it again replaces its files")
    res, rec = prep.run(progress=not args.quiet)
    extra = f", source caption {prep.source_prompt!r}" if prep.source_prompt else ""
    eta = f", eta {res.eta:.3f}" if cfg.method in ("pnr", "regen") else ""  # the baselines have no η
    resumed = f", resumed from step {res.resumed_from}" if res.resumed_from else ""
    print(f"edit ({cfg.method}{eta}{extra}): {rec['conditioning_text']!r} in {res.seconds:.1f} s on {prep.device}"
          f"{resumed}; wrote {prep.out}: {', '.join(rec['outputs'])}")
    return 0
