"""Speed of the built-in domain's exact renderer: views/s at 64^2 and 128^2, and the 100-view 128^2 dataset.

    python bench/domain_render_speed.py --device cpu  --n64 512 --n128 128
    python bench/domain_render_speed.py --device cuda --n64 100000 --n128 4096

Views are 4 per object on one random orbit (as the prior trains), every object a different random spec;
timing includes building and packing the primitive tables (spec cache cleared first). The dataset row
is `render_dataset(spec, 100, 128)` as `pnr data object` runs it (2x2 supersampling). On CUDA it also
checks that GPU and CPU renders agree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch

from pnr.data.domain.grammar import sample_spec
from pnr.data.domain.render import render_dataset, render_specs
from pnr.data.domain.shapes import build_primitives
from pnr.render.cameras import random_orbit_views


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_views(n_views: int, res: int, dev: torch.device, batch_views: int, seed: int = 0) -> float:
    """Seconds to render n_views (4 per random object) at res^2, in calls of batch_views views."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    build_primitives.cache_clear()
    _sync(dev)
    t0 = time.perf_counter()
    done = 0
    while done < n_views:
        nv = min(batch_views, n_views - done)
        nb = max(1, nv // 4)
        specs = [sample_spec(rng) for _ in range(nb)]
        cams = random_orbit_views(nb, 4, generator=g, res=res, device=dev)
        rgba, depth = render_specs(specs, cams, views_per_spec=4)
        done += nb * 4
    _sync(dev)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n64", type=int, default=512)
    ap.add_argument("--n128", type=int, default=128)
    ap.add_argument("--batch-views", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    bv = args.batch_views or (4096 if dev.type == "cuda" else 256)
    rows = []
    time_views(min(64, args.n64), 64, dev, bv)  # warm-up
    for res, n in ((64, args.n64), (128, args.n128)):
        s = time_views(n, res, dev, bv if res == 64 else max(4, bv // 4))
        rows.append({"what": f"{n} views {res}x{res} (4/object)", "seconds": s, "views_per_s": n / s})
    spec = sample_spec(random.Random(1))
    _sync(dev)
    t0 = time.perf_counter()
    render_dataset(spec, 100, 128, seed=0, supersample=2, device=dev)
    _sync(dev)
    s = time.perf_counter() - t0
    rows.append({"what": "100-view 128x128 dataset (2x2 supersampled)", "seconds": s, "views_per_s": 100 / s})
    extra = {}
    if dev.type == "cuda":
        specs = [sample_spec(random.Random(i)) for i in range(8)]
        cams = random_orbit_views(8, 4, generator=torch.Generator().manual_seed(3), res=64)
        a_cpu, d_cpu = render_specs(specs, cams, 4)
        a_gpu, d_gpu = render_specs(specs, cams.to(dev), 4)
        extra = {"gpu_vs_cpu_max_abs_rgba": float((a_gpu.cpu() - a_cpu).abs().max()),
                 "gpu_vs_cpu_mean_abs_rgba": float((a_gpu.cpu() - a_cpu).abs().mean()),
                 "gpu_vs_cpu_max_abs_depth": float((d_gpu.cpu() - d_cpu).abs().max()),
                 "device_name": torch.cuda.get_device_name(dev)}
    name = extra.get("device_name", f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)")
    print(f"device: {name}  torch {torch.__version__}")
    print(f"{'what':48s} {'seconds':>9s} {'views/s':>10s}")
    for r in rows:
        print(f"{r['what']:48s} {r['seconds']:9.2f} {r['views_per_s']:10.1f}")
    for k, v in extra.items():
        print(f"{k}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows, **extra}, f, indent=1)


if __name__ == "__main__":
    main()
