"""Where an edit step's time goes, and the whole edit's time, each part set against its floor.

    PYTHONUNBUFFERED=1 python bench/edit_speed.py [--device cuda] [--object "a red mug"] [--prompt "a blue mug"]
        [--fit-steps 300] [--fraction 0.1] [--preset paper] [--json out.json] [--profile prof.txt]

1. Source: the domain object rendered exactly (pnr.data.domain), a field fitted to it (pnr.fit).
2. Samples per ray: the renderer with occupancy skipping + early termination against the uniform
   count (every sample of every ray through the box), and how much the render changes.
3. Per step (median over steps, device synchronised between parts): render forward (render +
   encode_images), prior forward (SDS: noising + CFG denoiser pass), backward, optimizer; at the
   low and high edit resolutions. Floors: FLOPs / measured matmul peak and bytes / measured copy
   bandwidth (the larger of the two), counted per part as printed.
4. Whole edit: pnr.edit.loop.edit run with every step count scaled by --fraction, per-phase mean
   step time extrapolated to the preset's counts (50 + 1500 + 1000 for `paper`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pnr.data.domain.grammar import spec_from_text, vocabulary  # noqa: E402
from pnr.data.domain.render import render_dataset  # noqa: E402
from pnr.data.transforms import TransformsDataset  # noqa: E402
from pnr.edit.config import preset  # noqa: E402
from pnr.edit.loop import Guide, _optimizer, _render_train, edit  # noqa: E402
from pnr.field.config import FieldConfig  # noqa: E402
from pnr.fit import FitConfig, fit  # noqa: E402
from pnr.guidance.sds import sds  # noqa: E402
from pnr.render import graphed  # noqa: E402
from pnr.render.cameras import random_orbit_views  # noqa: E402
from pnr.render.volume import render  # noqa: E402


def sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def ceilings(dev) -> dict:
    """Measured copy bandwidth (bytes read + written per s) and matmul rate (bf16 on GPU, fp32 on CPU)."""
    n = 2**28 if dev.type == "cuda" else 2**25
    a = torch.rand(n, device=dev)
    b = torch.empty_like(a)
    m = 8192 if dev.type == "cuda" else 1024
    dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    x, y = torch.randn(m, m, device=dev, dtype=dt), torch.randn(m, m, device=dev, dtype=dt)

    def best(fn, reps):
        fn()
        sync(dev)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            sync(dev)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    bw = 2 * n * 4 / best(lambda: b.copy_(a), 10)
    fl = 2 * m**3 / best(lambda: x @ y, 5)
    return {"copy_bytes_per_s": bw, "matmul_flops": fl, "matmul_dtype": str(dt)}


def make_source(obj: str, fit_steps: int, dev, field_cfg: FieldConfig, fit_rays: int, res: int = 64, views: int = 40):
    spec = spec_from_text(obj)
    rgba, cams = render_dataset(spec, views=views, res=res, seed=0)
    a = rgba[..., 3]
    bg = (1.0, 1.0, 1.0)
    images = rgba[..., :3] * a[..., None] + (1 - a[..., None]) * torch.tensor(bg)
    ds = TransformsDataset(images=images, alpha=a, cams=cams, splits={"train": torch.arange(views)},
                           files=[f"v{i}" for i in range(views)], background=bg)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        field, occ, metrics = fit(ds, field_cfg, FitConfig(steps=fit_steps, device=str(dev), checkpoint_every=10**9,
                                                               rays_per_batch=fit_rays),
                                  d, progress=False)
    return field, occ, {"fit_s": time.time() - t0, "fit_steps": fit_steps, "occupied_fraction": occ.occupied_fraction(),
                        "train_loss": metrics["train_loss"]}


def samples_per_ray(field, occ, dev, res: int, num_samples: int) -> dict:
    g = torch.Generator().manual_seed(3)
    cams = random_orbit_views(1, 4, generator=g, res=res, device=dev)
    with torch.no_grad():
        fast = render(field, cams, occ, num_samples=num_samples)
        full = render(field, cams, None, num_samples=num_samples, t_eps=0.0)
    spr_fast, spr_full = float(fast["samples_per_ray"]), float(full["samples_per_ray"])
    d = (fast["rgb"] - full["rgb"]).abs()
    return {"res": res, "num_samples": num_samples, "evaluated_per_ray": spr_fast, "uniform_per_ray": spr_full,
            "ratio_vs_uniform": spr_fast / max(spr_full, 1e-9), "ratio_vs_num_samples": spr_fast / num_samples,
            "rgb_max_abs_diff": float(d.max()), "rgb_mean_abs_diff": float(d.mean()),
            "occupied_fraction": occ.occupied_fraction()}


def field_flops_per_sample(cfg: FieldConfig) -> int:
    """Multiply-adds x2 of the density + colour MLPs for one sample (see pnr.field.field)."""
    L, h, geo = cfg.levels * cfg.features_per_level, cfg.hidden_dim, cfg.geo_feat_dim
    sh = cfg.sh_degree**2
    macs = L * h + h * (1 + geo) + (geo + sh) * h + h * h + h * 3
    return 2 * macs


def step_breakdown(field, occ, guide: Guide, cfg, dev, res: int, steps: int, ceil: dict) -> dict:
    """Median seconds of each part of one SDS step at render resolution `res`, and its floor."""
    opt = _optimizer(field, cfg)
    g = torch.Generator().manual_seed(5)
    prior = guide.prior
    v = cfg.views or int(getattr(prior, "num_views", 1))
    parts = {"render_fwd": [], "prior_fwd": [], "backward": [], "optimizer": []}
    graphs_on = dev.type == "cuda" and (cfg.render_graphs or graphed.enabled())
    spr = []
    flops_prior = None
    for i in range(steps + 2):
        cams = random_orbit_views(cfg.groups, v, generator=g, res=res, device=dev)
        sync(dev)
        t0 = time.perf_counter()
        if graphs_on:  # CUDA-graph replay of the render (pnr/render/graphed.py, PNR_RENDER_GRAPHS=1)
            rgb = _render_train(field, occ, cams, cfg, g)
        else:
            out = render(field, cams, occ, num_samples=cfg.num_samples, perturb=True, generator=g)
            rgb = out["rgb"]
        b = rgb.shape[0] // v
        x = prior.encode_images(rgb.view(b, v, *rgb.shape[1:]).permute(0, 1, 4, 2, 3))
        sync(dev)
        t1 = time.perf_counter()
        c2w = cams.c2w.view(-1, v, 4, 4).to(dev)
        t = torch.full((b,), 0.5, device=dev)
        if flops_prior is None:
            from torch.utils.flop_counter import FlopCounterMode

            graphs, prior.use_cuda_graphs = getattr(prior, "use_cuda_graphs", False), False  # count eager ops
            with FlopCounterMode(display=False) as fc:
                sds(prior, x, guide.cond, guide.uncond, c2w, t, cfg.guidance_scale, x0_range=1.0, generator=g)
            prior.use_cuda_graphs = graphs
            flops_prior = fc.get_total_flops()
            sync(dev)
            t1 = time.perf_counter()
        loss = sds(prior, x, guide.cond, guide.uncond, c2w, t, cfg.guidance_scale, x0_range=1.0, generator=g)["loss"]
        sync(dev)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync(dev)
        t3 = time.perf_counter()
        opt.step()
        sync(dev)
        t4 = time.perf_counter()
        if i >= 2:  # first steps: allocator / kernel compilation warm-up
            for k, a, z in (("render_fwd", t0, t1), ("prior_fwd", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
                parts[k].append(z - a)
            if graphs_on:  # samples the dynamic renderer would evaluate: the floors are the same work
                with torch.no_grad():
                    out = render(field, cams, occ, num_samples=cfg.num_samples)
            spr.append(float(out["samples_per_ray"]))
    n_rays = rgb.shape[0] * res * res
    samples = statistics.median(spr) * n_rays
    fps = field_flops_per_sample(field.cfg)
    n_params = sum(p.numel() for p in field.parameters())
    enc_bytes = samples * (12 + 4 * field.cfg.levels * field.cfg.features_per_level)
    prior_bytes = sum(p.numel() * p.element_size() for p in prior.parameters())
    bw, fl = ceil["copy_bytes_per_s"], ceil["matmul_flops"]
    floors = {  # (flops, bytes) per part
        "render_fwd": (samples * fps, enc_bytes + samples * 4 * 2 * field.cfg.hidden_dim),
        "prior_fwd": (flops_prior, prior_bytes),
        "backward": (2 * samples * fps, enc_bytes + samples * 4 * 2 * field.cfg.hidden_dim
                     + field.encoding_tables.numel() * 4 * 2),
        "optimizer": (0, n_params * 4 * 7),  # Adam: read p, g, m, v; write p, m, v
    }
    rows = {}
    for k, ts in parts.items():
        f, by = floors[k]
        floor_s = max(f / fl, by / bw)
        med = statistics.median(ts)
        rows[k] = {"median_s": med, "floor_s": floor_s, "flops": f, "bytes": by,
                   "bound": "flops" if f / fl >= by / bw else "bytes", "x_floor": med / max(floor_s, 1e-12)}
    total = sum(r["median_s"] for r in rows.values())
    return {"res": res, "views": v * cfg.groups, "samples_per_ray": statistics.median(spr), "samples": samples,
            "parts": rows, "step_s": total}


def whole_edit(field, occ, guide: Guide, cfg, fraction: float, dev) -> dict:
    """Runs edit() with counts scaled by `fraction`; extrapolates per-phase mean step time to cfg's counts."""
    small = replace(cfg, search_steps=max(10, round(cfg.search_steps * fraction)),
                    edit_steps=max(4, round(cfg.edit_steps * fraction)),
                    revise_steps=max(2, round(cfg.revise_steps * fraction)), eta=None, checkpoint_every=10**9)
    stamps: list[tuple[str, int, float]] = []
    n_edit = small.edit_steps

    def on_step(phase, step, loss):
        sync(dev)
        stamps.append((phase, step, time.perf_counter()))

    t0 = time.perf_counter()
    res = edit(field, occ, guide, small, out_dir=None, progress=False, on_step=on_step)
    wall = time.perf_counter() - t0
    per: dict[str, list[float]] = {}
    prev = t0
    for phase, step, ts in stamps:
        key = phase
        if phase == "edit":
            key = "edit_low" if step < small.milestone * n_edit else "edit_high"
        per.setdefault(key, []).append(ts - prev)
        prev = ts
    first = per.get("search", [0.0])
    if first:
        first = first[1:] or first  # the first search step includes set-up (probe copy, perceptual net)
        per["search"] = first
    counts = {"search": cfg.search_steps, "edit_low": round(cfg.edit_steps * cfg.milestone),
              "edit_high": cfg.edit_steps - round(cfg.edit_steps * cfg.milestone), "revise": cfg.revise_steps}
    mean = {k: statistics.mean(v) for k, v in per.items() if v}
    est = sum(mean.get(k, 0.0) * n for k, n in counts.items())
    return {"fraction": fraction, "steps_run": {k: len(v) for k, v in per.items()}, "wall_s": wall,
            "mean_step_s": mean, "paper_counts": counts, "estimated_whole_edit_s": est, "eta": res.eta}


def graph_check(prior, guide: Guide, dev, reps: int = 20) -> dict:
    """CUDA-graph replay vs eager for the CFG'd 4-view prior forward: max abs difference and time each."""
    from pnr.priors.base import predict_eps_cfg

    v = int(getattr(prior, "num_views", 1))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, v, 3, prior.image_size, prior.image_size, generator=g).to(dev)
    t = torch.full((1,), 0.5, device=dev)
    c2w = random_orbit_views(1, v, generator=g, res=64).c2w.view(1, v, 4, 4).to(dev)
    out, ms = {}, {}
    for mode in (False, True):
        prior.use_cuda_graphs = mode
        with torch.no_grad():
            eps = predict_eps_cfg(prior, x, t, guide.cond, guide.uncond, c2w, 7.5)
            for _ in range(3):
                predict_eps_cfg(prior, x, t, guide.cond, guide.uncond, c2w, 7.5)
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(reps):
                predict_eps_cfg(prior, x, t, guide.cond, guide.uncond, c2w, 7.5)
            sync(dev)
        out[mode], ms[mode] = eps.float(), (time.perf_counter() - t0) / reps * 1e3
    prior.use_cuda_graphs = True
    return {"max_abs_diff": float((out[True] - out[False]).abs().max()), "eager_ms": ms[False], "graph_ms": ms[True],
            "bit_equal": bool(torch.equal(out[True], out[False]))}


def profile_edit(field, occ, guide: Guide, cfg, dev, rows: int = 30) -> str:
    """torch.profiler tables of edit() (after a warm-up run of each): 16 edit steps, then 1 edit + 16 revise steps
    that all carry the identity term (ipg_anneal 1.0 keeps its weight > 0 to the end) — on the H200 a revise step
    with it took 18 ms against 8 ms for an edit step (2026-12-04), so it gets a table of its own."""
    from torch.profiler import ProfilerActivity, profile

    runs = {"16 edit steps": replace(cfg, search_steps=0, eta=0.2, edit_steps=16, revise_steps=0, milestone=0.5,
                                     checkpoint_every=10**9),
            "1 edit + 16 revise steps with the identity term": replace(
                cfg, search_steps=0, eta=0.2, edit_steps=1, revise_steps=16, ipg_anneal=1.0, milestone=0.0,
                checkpoint_every=10**9)}
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    txt = ""
    for name, small in runs.items():
        edit(field, occ, guide, small, out_dir=None, progress=False)  # warm-up: graphs, kernels, perceptual net
        sync(dev)
        with profile(activities=acts) as prof:
            edit(field, occ, guide, small, out_dir=None, progress=False)
            sync(dev)
        ka = prof.key_averages()
        txt += f"## {name}\n" + ka.table(sort_by="self_cpu_time_total", row_limit=rows)
        if dev.type == "cuda":
            txt += "\n" + ka.table(sort_by="self_cuda_time_total", row_limit=rows)
        txt += "\n\n"
    return txt


def load_prior(dev, tiny: bool = False):
    from pnr.priors.builtin.model import PriorConfig
    from pnr.priors.builtin.prior import SHIPPED, BuiltinPrior, load_builtin_prior

    if SHIPPED.is_file() and not tiny:
        return load_builtin_prior(device=dev), "shipped weights"
    torch.manual_seed(0)  # speed does not depend on weight values
    p = BuiltinPrior(PriorConfig.tiny(vocabulary()) if tiny else PriorConfig(vocab=vocabulary()))
    dt = torch.float16 if dev.type == "cuda" else torch.float32
    return p.to(device=dev, dtype=dt).eval().requires_grad_(False), "random init (no shipped weights yet)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--object", default="a red mug")
    ap.add_argument("--prompt", default="a blue mug")
    ap.add_argument("--fit-steps", type=int, default=300)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--breakdown-steps", type=int, default=10)
    ap.add_argument("--skip-edit", action="store_true")
    ap.add_argument("--field", default="default", choices=["default", "small", "tiny"])
    ap.add_argument("--fit-rays", type=int, default=4096)
    ap.add_argument("--tiny-prior", action="store_true", help="code-path check only: tiny random prior")
    ap.add_argument("--render-graphs", action=argparse.BooleanOptionalAction, default=True,
                    help="replay the differentiable render from CUDA graphs (EditConfig.render_graphs; default on)")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", default="", help="write torch.profiler tables of 16 edit steps and 16 identity-term revise steps to this file")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    rec: dict = {"args": vars(a), "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu x{torch.get_num_threads()}",
                 "torch": torch.__version__}
    from pnr.field import encoding_triton

    rec["fused_encoding"] = dev.type == "cuda" and encoding_triton.available(torch.zeros(1, device=dev))
    rec["ceilings"] = ceilings(dev)
    print(json.dumps(rec), flush=True)
    fcfg = {"default": FieldConfig(), "small": FieldConfig.small(), "tiny": FieldConfig.tiny()}[a.field]
    field, occ, info = make_source(a.object, a.fit_steps, dev, fcfg, a.fit_rays)
    rec["source"] = info
    print("source:", json.dumps(info), flush=True)
    cfg = replace(preset(a.preset), render_graphs=a.render_graphs)
    rec["samples_per_ray"] = [samples_per_ray(field, occ, dev, r, cfg.num_samples) for r in (cfg.res_low, cfg.res_high)]
    for s in rec["samples_per_ray"]:
        print("samples/ray:", json.dumps(s), flush=True)
    prior, how = load_prior(dev, a.tiny_prior)
    rec["prior"] = {"weights": how, "params": sum(p.numel() for p in prior.parameters()),
                    "dtype": str(next(prior.parameters()).dtype)}
    guide = Guide(prior, prior.encode_text([a.prompt]), prior.null_text(1), None, field, occ, 1.0)
    if dev.type == "cuda":
        rec["cuda_graph_check"] = graph_check(prior, guide, dev)
        print("cuda graph vs eager prior forward:", json.dumps(rec["cuda_graph_check"]), flush=True)
    if a.profile:
        with open(a.profile, "w") as fh:
            fh.write(profile_edit(field, occ, guide, cfg, dev))
        print("profile written to", a.profile, flush=True)
    rec["breakdown"] = []
    for res in (cfg.res_low, cfg.res_high):
        work = type(field)(field.cfg, device=dev)
        work.load_params_dict(field.params_dict())
        bd = step_breakdown(work, occ, guide, cfg, dev, res, a.breakdown_steps, rec["ceilings"])
        rec["breakdown"].append(bd)
        print(f"step at {res}px ({bd['views']} views, {bd['samples_per_ray']:.1f} samples/ray, "
              f"{bd['samples'] / 1e6:.2f} M samples): {bd['step_s'] * 1e3:.1f} ms", flush=True)
        for k, r in bd["parts"].items():
            print(f"  {k:11s} {r['median_s'] * 1e3:9.2f} ms   floor {r['floor_s'] * 1e3:8.3f} ms ({r['bound']}-bound, "
                  f"{r['flops'] / 1e9:.2f} GFLOP, {r['bytes'] / 1e6:.1f} MB)   x{r['x_floor']:.0f}", flush=True)
    if not a.skip_edit:
        we = whole_edit(field, occ, guide, cfg, a.fraction, dev)
        rec["whole_edit"] = we
        print("whole edit:", json.dumps(we), flush=True)
        print(f"estimated whole {a.preset} edit: {we['estimated_whole_edit_s']:.1f} s "
              f"(measured {we['wall_s']:.1f} s for fraction {a.fraction})", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rec, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
