"""Fit speed: rays/s and samples/s of `pnr fit` steps (forward + backward + Adam + occupancy update) at
64x64 and 256x256, and held-out PSNR after 30 s and 2 min of training, on a built-in domain object.

    python bench/fit_speed.py --device cpu  --field small   --out bench_cpu.json
    python bench/fit_speed.py --device cuda --field default --out bench_gpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnr.commands.fit import field_preset  # noqa: E402
from pnr.data.domain.grammar import sample_spec  # noqa: E402
from pnr.data.domain.render import render_dataset  # noqa: E402
from pnr.data.transforms import load_transforms_dataset, write_transforms_dataset  # noqa: E402
from pnr.fit import FitConfig, fit  # noqa: E402


def make_dataset(root: Path, res: int, views: int, seed: int):
    spec = sample_spec(seed)
    rgba, cams = render_dataset(spec, views=views, res=res, seed=seed)
    fov = 2 * torch.atan(0.5 * cams.width / cams.fx[0]).item()
    write_transforms_dataset(root, rgba, cams.c2w, fov, test_every=8)
    return load_transforms_dataset(root)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--field", default="default", choices=["default", "small", "tiny"])
    ap.add_argument("--rays", type=int, default=None, help="rays per batch (default 8192 GPU, 1024 CPU)")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--views", type=int, default=40)
    ap.add_argument("--budgets", default="30,120", help="training seconds at which held-out PSNR is measured (64x64)")
    ap.add_argument("--budget256", type=float, default=30.0, help="training seconds at 256x256")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rays = a.rays or (8192 if a.device.startswith("cuda") else 1024)
    fcfg = field_preset(a.field)
    budgets = [float(b) for b in a.budgets.split(",")]
    machine = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"
    rows = []
    root = Path(tempfile.mkdtemp(prefix="pnr-fitbench-"))
    for res, limits in ((64, budgets), (256, [a.budget256])):
        ds = make_dataset(root / f"data{res}", res, a.views, a.seed)
        run = root / f"run{res}"
        for k, lim in enumerate(limits):
            cfg = FitConfig(steps=20000, rays_per_batch=rays, num_samples=a.samples, checkpoint_every=10**9,
                            device=a.device, time_limit_s=lim, seed=a.seed,
                            occupancy_resolution=64 if a.device.startswith("cuda") else 32)
            t0 = time.time()
            _, _, m = fit(ds, fcfg, cfg, run, resume=k > 0, progress=False)
            row = {"res": res, "train_s": round(m["train_time_s"], 1), "steps": m["step"],
                   "rays_per_s": round(m["rays_per_s"]), "samples_per_s": round(m["samples_per_s"]),
                   "samples_per_ray": round(m["samples_per_ray"], 1), "heldout_psnr": round(m["heldout_psnr"], 2),
                   "wall_s": round(time.time() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = {"machine": machine, "device": a.device, "field": a.field, "rays_per_batch": rays,
           "samples_per_ray_max": a.samples, "torch": torch.__version__, "rows": rows}
    print("\n| res | train s | steps | rays/s | samples/s | samples/ray | held-out PSNR |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['res']} | {r['train_s']} | {r['steps']} | {r['rays_per_s']} | {r['samples_per_s']} | "
              f"{r['samples_per_ray']} | {r['heldout_psnr']} |")
    print(f"machine: {machine}, device {a.device}, field {a.field}, {rays} rays/batch")
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
