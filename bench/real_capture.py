"""A real capture end to end: fit it with `pnr fit`, then compare held-out photos with the renders.

    python -m pnr.cli fit DATA --out RUN --downscale 4 --eval-every 500 --device cuda
    python bench/real_capture.py DATA RUN --downscale 4 --png docs/real_capture.png --json RUN/heldout.json

Writes a contact sheet (rows: held-out photo | render) and prints held-out PSNR per view and the PSNR-vs-step
trace `pnr fit` recorded (--eval-every), with the step at which a PSNR bar was first reached.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pnr.data.scene import SceneTransform
from pnr.data.transforms import load_transforms_dataset
from pnr.field.checkpoint import load_checkpoint
from pnr.fit import _area_resize, eval_size
from pnr.io import save_png
from pnr.metrics.image_metrics import psnr
from pnr.render.volume import render


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("run", help="the --out folder of `pnr fit`")
    ap.add_argument("--downscale", type=int, default=1)
    ap.add_argument("--views", type=int, default=3, help="held-out views on the sheet")
    ap.add_argument("--max-res", type=int, default=480)
    ap.add_argument("--bar", type=float, default=25.0, help="report the first step whose held-out PSNR >= this")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--png")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    run = Path(a.run)
    field, occ, meta = load_checkpoint(run / "checkpoint", device=a.device)
    scene = SceneTransform.from_meta(meta)
    data = load_transforms_dataset(a.data, downscale=a.downscale)
    held = data.subset("test") if data.splits.get("test") is not None and data.splits["test"].numel() else data
    held = held.with_cameras(held.cams.transformed(scene.apply_c2w(held.cams.c2w)))
    w, h = eval_size(held.cams.width, held.cams.height, a.max_res)
    rows, per_view = [], []
    with torch.no_grad():
        for i in range(min(a.views, len(held))):
            pred = render(field, held.cams[i].resized(w, h), occ, num_samples=128)["rgb"][0].cpu().clamp(0, 1)
            gt = _area_resize(held.images[i], w, h)
            per_view.append(psnr(pred, gt))
            rows.append(torch.cat([gt, pred], dim=1))
    metrics = json.loads((run / "metrics.json").read_text())
    trace = metrics.get("heldout_psnr_trace", [])
    first = next((s for s, p in trace if p >= a.bar), None)
    steps, secs = metrics.get("step"), metrics.get("train_time_s")
    out = {"heldout_psnr": metrics.get("heldout_psnr"), "heldout_views": metrics.get("heldout_views"),
           "heldout_res": metrics.get("heldout_res"), "sheet_psnr_per_view": per_view, "sheet_res": [w, h],
           "steps": steps, "train_time_s": secs, "trace": trace, "bar_db": a.bar, "first_step_at_bar": first,
           "approx_s_to_bar": (secs * first / steps) if (first and steps and secs) else None,
           "unbounded": metrics.get("field_config", {}).get("contraction") is not None,
           "device": torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"}
    print(json.dumps(out, indent=1))
    if a.png:
        save_png(a.png, torch.cat(rows, dim=0))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
