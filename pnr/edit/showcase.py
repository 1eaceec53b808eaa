"""Before/after figures, edit timings and Δ_min calibration data on the benchmark's DEV split.

    PYTHONUNBUFFERED=1 python -m pnr.edit.showcase --out DIR [--device cuda] [--fit-steps 400]
        [--edit-steps 300 --revise-steps 200] [--paper-timing] [--calib 1]

For the first dev edit of each of the five edit types: render the source object exactly, fit a field,
edit it with PnR (η from Alg. 2) and with SDS from the source (same total steps), and write one PNG per
type: rows source | PnR | SDS | ground-truth target, four azimuths. `--calib K` runs only the η search
(Alg. 2's 50 steps) on K more dev edits per type. Everything measured goes to DIR/showcase.json. Only
the dev split is used (the test split stays held out).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pnr.data.domain.benchmark import make_benchmark
from pnr.data.domain.render import render_dataset, render_specs
from pnr.data.transforms import TransformsDataset
from pnr.edit.config import EditConfig, SourceConfig, preset
from pnr.edit.eta import loss_decrease
from pnr.edit.loop import edit
from pnr.edit.prepare import fit_dataset, prepare_guide
from pnr.edit.run import make_guide
from pnr.io import atomic_write_text, contact_sheet, save_png, save_video
from pnr.render.orbit import SHOWCASE_ORBIT
from pnr.settings import add_device_option, resolve_device
from pnr.render.volume import render

TYPES = ("color", "pattern", "shape", "pose", "object")


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def fit_source(spec, dev, steps: int, res: int = 64, views: int = 40):
    rgba, cams = render_dataset(spec, views=views, res=res, seed=0, device=dev)
    a = rgba[..., 3]
    images = rgba[..., :3] * a[..., None] + (1 - a[..., None])  # white background, as the prior was trained
    ds = TransformsDataset(images=images.cpu(), alpha=a.cpu(), cams=cams.to("cpu"), splits={"train": torch.arange(views)},
                           files=[f"v{i}" for i in range(views)], background=(1.0, 1.0, 1.0))
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        field, occ, _ = fit_dataset(ds, d, str(dev), SourceConfig(field="small", fit_steps=steps), resume=False,
                                    progress=False, checkpoint_every=10**9)
    return field, occ


@torch.no_grad()
def views_of(field, occ, res: int, n: int = SHOWCASE_ORBIT.frames) -> np.ndarray:
    cams = SHOWCASE_ORBIT.with_(frames=n, res=res).cameras(field.device)
    rgb = render(field, cams, occ)["rgb"]
    return (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()


@torch.no_grad()
def gt_views(spec, res: int, dev, n: int = SHOWCASE_ORBIT.frames) -> np.ndarray:
    cams = SHOWCASE_ORBIT.with_(frames=n, res=res).cameras(dev)
    rgba, _ = render_specs([spec], cams, views_per_spec=n, supersample=2)
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    return (rgb.clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    add_device_option(ap)
    ap.add_argument("--prior", default=None, help="prior checkpoint (default: the shipped one)")
    ap.add_argument("--fit-steps", type=int, default=400)
    ap.add_argument("--search-steps", type=int, default=50)
    ap.add_argument("--edit-steps", type=int, default=300)
    ap.add_argument("--revise-steps", type=int, default=200)
    ap.add_argument("--guidance-scale", type=float, default=None)
    ap.add_argument("--delta-min", type=float, default=None)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--calib", type=int, default=0, help="extra dev edits per type for the η search only")
    ap.add_argument("--calib-only", action="store_true", help="only the η search, on the first --calib dev edits per type")
    ap.add_argument("--paper-timing", action="store_true", help="also time one full `paper` preset edit")
    ap.add_argument("--res", type=int, default=SHOWCASE_ORBIT.res, help="figure resolution")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(resolve_device(a.device))
    from pnr.priors.load import load_prior

    prior = load_prior(a.prior or "builtin", device=dev)
    bench = [e for e in make_benchmark() if e.split == "dev"]
    over = {}
    if a.guidance_scale is not None:
        over["guidance_scale"] = a.guidance_scale
    if a.delta_min is not None:
        over["delta_min"] = a.delta_min
    record: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                    "torch": torch.__version__, "args": vars(a), "edits": [], "calibration": []}

    def run_one(e, cfg: EditConfig, field, occ):
        p = prepare_guide(prior, field, occ, e.prompt, e.source_caption, cfg)
        guide, cfg, text = p.guide, p.cfg, p.edit_text
        _sync(dev)
        t0 = time.time()
        res = edit(field, occ, guide, cfg, progress=False)
        _sync(dev)
        return res, time.time() - t0, text

    turn_rows = []  # per type: source | PnR | SDS turntable frames
    for etype in a.types.split(","):
        es = [e for e in bench if e.edit_type == etype]
        cfg = preset("paper", search_steps=a.search_steps, edit_steps=a.edit_steps, revise_steps=a.revise_steps,
                     **over)
        if not a.calib_only:  # figure edit: PnR and SDS on the first dev edit of the type
            e = es[0]
            t0 = time.time()
            field, occ = fit_source(e.source, dev, a.fit_steps)
            fit_s = time.time() - t0
            pnr, pnr_s, text = run_one(e, cfg, field, occ)
            sds_, sds_s, _ = run_one(e, replace(cfg, method="sds"), field, occ)
            rows = [views_of(field, occ, a.res), views_of(pnr.field, pnr.occupancy, a.res),
                    views_of(sds_.field, sds_.occupancy, a.res), gt_views(e.target, a.res, dev)]
            sheet = contact_sheet(np.concatenate(rows), cols=4)
            save_png(out / f"edit_{etype}.png", sheet)
            dl = loss_decrease(pnr.eta_trace, 10) if pnr.eta_trace else None
            turn_rows.append(np.concatenate([views_of(field, occ, 64, 24), views_of(pnr.field, pnr.occupancy, 64, 24),
                                             views_of(sds_.field, sds_.occupancy, 64, 24)], axis=2))  # [24, 64, 192, 3]
            save_video(out / "edit_turntables.mp4", np.concatenate(turn_rows, axis=1), fps=8)
            rec = {"id": e.id, "type": etype, "prompt": e.prompt, "source": e.source_caption, "target": e.target_caption,
                   "conditioning": text, "eta": pnr.eta, "delta_loss": dl, "eta_trace": pnr.eta_trace,
                   "fit_s": fit_s, "pnr_s": pnr_s, "pnr_phase_s": pnr.phase_seconds, "sds_s": sds_s,
                   "steps": [cfg.search_steps, cfg.edit_steps, cfg.revise_steps]}
            record["edits"].append(rec)
            print(json.dumps({k: v for k, v in rec.items() if k != "eta_trace"}), flush=True)
            atomic_write_text(out / "showcase.json", json.dumps(record, indent=1))
        for e2 in (es[:a.calib] if a.calib_only else es[1:1 + a.calib]):  # η search only (same settings), for the Δ_min calibration
            f2, o2 = fit_source(e2.source, dev, a.fit_steps)
            p2 = prepare_guide(prior, f2, o2, e2.prompt, e2.source_caption, replace(cfg, method="pnr"))
            guide2 = make_guide(prior, f2, o2, p2.edit_text, None)  # Alg. 2 conditioned on the edit text only
            r2 = edit(f2, o2, guide2, p2.cfg, progress=False, search_only=True)
            record["calibration"].append({"id": e2.id, "type": etype, "delta_loss": loss_decrease(r2.eta_trace, 10),
                                          "eta": r2.eta})
            print(json.dumps(record["calibration"][-1]), flush=True)
            atomic_write_text(out / "showcase.json", json.dumps(record, indent=1))
    if a.paper_timing:
        e = [x for x in bench if x.edit_type == "pose"][0]
        field, occ = fit_source(e.source, dev, a.fit_steps)
        cfg = preset("paper", **over)
        res, secs, _ = run_one(e, cfg, field, occ)
        record["paper_timing"] = {"id": e.id, "seconds": secs, "phase_seconds": res.phase_seconds, "eta": res.eta,
                                  "steps": [cfg.search_steps, cfg.edit_steps, cfg.revise_steps]}
        frames = np.concatenate([views_of(field, occ, a.res, 24), views_of(res.field, res.occupancy, a.res, 24)], axis=2)
        save_video(out / "edit_pose_paper.mp4", frames, fps=8)
        print(json.dumps(record["paper_timing"]), flush=True)
    atomic_write_text(out / "showcase.json", json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
