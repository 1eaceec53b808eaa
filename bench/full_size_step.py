"""Seconds per PnR step with full-size, randomly initialised priors (speed does not depend on weight values).

Per prior (MVDream: 4 views, VAE at 256^2, UNet CFG batch 8; SD-1.5 / SD-2.1-base: 1 view, VAE at 512^2,
CFG batch 2) and render resolution (64 before the milestone, 256 after; paper App. E), one step is split into
  render   - hash-grid field render of the V views (pnr.render.volume.render, Field(FieldConfig()))
  vae      - VAE encoder forward of the resized renders (with autograd graph)
  unet     - UNet forward, both CFG branches in one batch (no grad), through the adapter's predict_eps_cfg
  backward - SDS surrogate backward: VAE encoder + render
  optim    - Adam step over the field's parameters
and projected to a full edit: 50 (eta search) + 1500 editing (half at 64, half at 256) + 1000 revise steps at
256 with identity-preserving gradients (extra: a render of theta and of theta_src at a random camera, L1 and a
perceptual term; the perceptual net is timed as torchvision's AlexNet trunk, random weights, standing in for
ST-LPIPS-alex whose weights do not travel here). Compared with the paper's 7 min (4 min without IPG).

Usage: python bench/full_size_step.py [--iters 10] [--json out.json] [--priors mvdream,sd15,sd21] [--no-render]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnr.priors.base import predict_eps_cfg  # noqa: E402
from pnr.priors.mvdream import MultiViewUNet, MVDreamConfig, MVDreamPrior  # noqa: E402
from pnr.priors.sd import UNET_CONFIGS, VAE_CONFIGS, SDConfig, StableDiffusionPrior  # noqa: E402

PAPER_MIN = {"ipg": 7.0, "no_ipg": 4.0}  # paper App. F
DEV = "cuda"
SMOKE = False  # --smoke: tiny configs on the CPU, to check this script's code paths
LOW_MEMORY = False  # --low-memory: pnr edit --low-memory's path (checkpointed render chunks and VAE encoder)
ANCHORS_MS = {"sd21_unet_b8_32": 29.0, "sd15_unet_b8_32": 47.0, "vae_enc_fwd_bwd_4x256": 23.0}  # issue 8


class Timer:
    """Wall-clock stages of one step, the device synchronised at each mark; medians over steps."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}
        self.last = 0.0

    def start(self):
        sync()
        self.last = time.perf_counter()

    def mark(self, name: str):
        sync()
        now = time.perf_counter()
        self.times.setdefault(name, []).append(now - self.last)
        self.last = now

    def stop(self):
        pass

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.times.items()}


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def bench_fn(fn, iters: int, warmup: int = 3) -> float:
    """Median milliseconds of fn() (CUDA events on the GPU)."""
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(iters):
        if DEV == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            ts.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            ts.append(1000 * (time.perf_counter() - t0))
    return statistics.median(ts)


def sd_unet(kind: str, dtype):
    from diffusers import UNet2DConditionModel

    with torch.device(DEV):
        return UNet2DConditionModel(**UNET_CONFIGS["tiny" if SMOKE else kind],
                                    norm_num_groups=32).to(dtype).eval().requires_grad_(False)


def sd_vae(dtype):
    from diffusers import AutoencoderKL

    with torch.device(DEV):
        return AutoencoderKL(**VAE_CONFIGS["tiny" if SMOKE else "sd"]).to(dtype).eval().requires_grad_(False)


class NoText(nn.Module):
    """Stands in for the text encoder: conditioning is a random tensor, text is encoded once per edit."""


def make_prior(name: str, vae, dtype) -> tuple[StableDiffusionPrior, int]:
    if name == "mvdream":
        with torch.device(DEV):
            unet = MultiViewUNet(mv_config()).to(dtype).eval().requires_grad_(False)
        return MVDreamPrior(unet, vae, NoText(), None, SDConfig(image_size=16 if SMOKE else 256)), ctx_dim("mvdream")
    unet = sd_unet(name, dtype)
    return StableDiffusionPrior(unet, vae, NoText(), None, SDConfig(image_size=16 if SMOKE else 512)), ctx_dim(name)


def mv_config() -> MVDreamConfig:
    return MVDreamConfig.tiny() if SMOKE else MVDreamConfig()


def ctx_dim(name: str) -> int:
    return 32 if SMOKE else (768 if name == "sd15" else 1024)


def anchors(vae, iters: int, dtype) -> dict[str, float]:
    out = {}
    for kind in ("sd21", "sd15"):
        unet = sd_unet(kind, dtype)
        x, ctx = torch.randn(8, 4, 32, 32, device=DEV, dtype=dtype), torch.randn(8, 77, ctx_dim(kind), device=DEV, dtype=dtype)
        t = torch.full((8,), 500, device=DEV)
        with torch.no_grad():
            out[f"{kind}_unet_b8_32"] = bench_fn(lambda u=unet: u(x, t, encoder_hidden_states=ctx), iters)
        del unet
        empty_cache()
    side = 32 if SMOKE else 256
    img = torch.rand(4, 3, side, side, device=DEV, dtype=dtype, requires_grad=True)

    def enc():
        lat = vae.encode(img).latent_dist.mean
        lat.float().square().sum().backward()

    out["vae_enc_fwd_bwd_4x256"] = bench_fn(enc, iters)
    with torch.no_grad():
        with torch.device(DEV):
            mv = MultiViewUNet(mv_config()).to(dtype).eval()
        cam = torch.randn(8, 16, device=DEV)
        ctx = torch.randn(8, 77, ctx_dim("mvdream"), device=DEV, dtype=dtype)
        x = torch.randn(8, 4, 32, 32, device=DEV, dtype=dtype)
        t = torch.full((8,), 500, device=DEV)
        out["mvdream_unet_b8_32"] = bench_fn(lambda m=mv: m(x, t, ctx, cam, 4), iters)
    del mv
    empty_cache()
    return out


def empty_cache():
    if DEV == "cuda":
        torch.cuda.empty_cache()


def make_field():
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field

    return Field(FieldConfig.tiny() if SMOKE else FieldConfig(), seed=0, device=DEV)


def _render(field, cams) -> torch.Tensor:
    """rgb [B, H, W, 3] with grad: volume.render (128 samples, no grid), or its checkpointed chunks (--low-memory)."""
    if LOW_MEMORY:
        from pnr.render.low_memory import render_low_memory

        return render_low_memory(field, cams, None, 128, torch.Generator().manual_seed(0))
    from pnr.render.volume import render

    return render(field, cams)["rgb"]


def step_breakdown(prior, ctx_dim: int, field, res: int, iters: int, dtype, ipg: bool = False, alex=None,
                   field_src=None) -> dict[str, float]:
    """Median seconds of each stage of one SDS step (plus the IPG extra when ipg=True)."""
    from pnr.render.cameras import random_orbit_views

    v = prior.num_views
    cond = torch.randn(1, 77, ctx_dim, device=DEV, dtype=dtype)
    uncond = torch.randn(1, 77, ctx_dim, device=DEV, dtype=dtype)
    opt = torch.optim.Adam(field.parameters(), lr=1e-2, eps=1e-15) if field is not None else None
    gen = torch.Generator().manual_seed(0)
    fake = torch.rand(1, v, 3, res, res, device=DEV, requires_grad=True)
    timer = Timer()
    scale = 50.0 if v == 4 else 100.0
    for i in range(iters + 2):
        cams = random_orbit_views(1, v, generator=gen, res=res, device=DEV)
        timer.start()
        if field is not None:
            rgb = _render(field, cams).permute(0, 3, 1, 2).unsqueeze(0)  # [1, V, 3, H, W]
        else:
            rgb = fake
        timer.mark("render")
        with torch.autocast(DEV, dtype=dtype, enabled=DEV == "cuda"):
            x = checkpoint(prior.encode_images, rgb, use_reentrant=False) if LOW_MEMORY else prior.encode_images(rgb)
        timer.mark("vae")
        t = torch.rand(1, device=DEV) * 0.96 + 0.02
        a, s = prior.schedule.alpha_sigma(t)
        noise = torch.randn_like(x)
        with torch.no_grad():
            eps = predict_eps_cfg(prior, a * x.detach() + s * noise, t, cond, uncond, cams.c2w.view(1, v, 4, 4), scale)
        timer.mark("unet")
        grad = (s**2) * (eps - noise)
        loss = 0.5 * ((x - (x - grad).detach()) ** 2).sum()
        loss.backward()
        timer.mark("backward")
        if ipg and field is not None:
            from pnr.render.volume import render

            cam1 = random_orbit_views(1, 1, generator=gen, res=res, device=DEV)
            with torch.no_grad():
                ref = render(field_src, cam1)["rgb"].permute(0, 3, 1, 2)
            cur = _render(field, cam1).permute(0, 3, 1, 2)
            feat_loss = 0.0
            if alex is not None:
                with torch.autocast(DEV, dtype=dtype, enabled=DEV == "cuda"):
                    feat_loss = sum((fa - fb).square().mean()
                                    for fa, fb in zip(alex_feats(alex, cur), alex_feats(alex, ref)))
            (300 * (cur - ref).abs().mean() + 30000 * feat_loss).backward()
            timer.mark("ipg_extra")
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        timer.mark("optim")
        timer.stop()
        if i < 2:  # warm-up steps (kernel selection, Triton compilation)
            timer.times = {}
    med = timer.medians()
    med["total"] = sum(med.values())
    return med


def alex_feats(alex, img):
    feats, h = [], img * 2 - 1
    for layer in alex:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            feats.append(h)
    return feats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--priors", default="mvdream,sd15,sd21")
    ap.add_argument("--no-render", action="store_true", help="time without the field (render reported as n/a)")
    ap.add_argument("--smoke", action="store_true", help="tiny configs on the CPU (checks the code paths only)")
    ap.add_argument("--low-memory", action="store_true",
                    help="pnr edit --low-memory's step: checkpointed render chunks and VAE encoder (issue 21)")
    args = ap.parse_args(argv)
    global DEV, SMOKE, LOW_MEMORY
    LOW_MEMORY = args.low_memory
    if args.smoke:
        DEV, SMOKE, dtype, dev_name = "cpu", True, torch.float32, "cpu (smoke test: tiny configs)"
    else:
        assert torch.cuda.is_available(), "needs a CUDA GPU (or --smoke)"
        torch.backends.cudnn.benchmark = True
        dtype, dev_name = torch.float16, torch.cuda.get_device_name()
    print(f"device: {dev_name}, torch {torch.__version__}, {dtype}, random weights", flush=True)
    res: dict = {"device": dev_name, "torch": torch.__version__}
    vae = sd_vae(dtype)
    t0 = time.time()
    res["anchors_ms"] = anchors(vae, args.iters, dtype)
    for k, v in res["anchors_ms"].items():
        print(f"anchor {k}: {v:.1f} ms (issue's H100 anchor: {ANCHORS_MS.get(k, float('nan')):.0f} ms)", flush=True)
    print(f"[anchors took {time.time() - t0:.0f}s]", flush=True)

    field = field_src = alex = None
    if not args.no_render:
        try:
            field, field_src = make_field(), make_field()
        except Exception as e:  # renderer not available: report n/a
            print(f"render: n/a ({type(e).__name__}: {e})", flush=True)
            field = None
        try:
            import torchvision

            with torch.device(DEV):
                alex = torchvision.models.alexnet(weights=None).features[:12].eval().requires_grad_(False)
        except Exception as e:
            print(f"perceptual stand-in: n/a ({type(e).__name__}: {e}); IPG extra = renders + L1 only", flush=True)
    res["steps"] = {}
    for name in args.priors.split(","):
        t0 = time.time()
        prior, d = make_prior(name, vae, dtype)
        for r, label in zip((16, 32) if SMOKE else (64, 256), (64, 256)):
            key = f"{name}@{label}"
            try:
                med = step_breakdown(prior, d, field, r, args.iters, dtype, ipg=(label == 256 and field is not None),
                                     alex=alex, field_src=field_src)
            except torch.OutOfMemoryError as e:
                med = {"error": f"OOM: {str(e)[:120]}"}
            res["steps"][key] = med
            print(key, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in med.items()}),
                  flush=True)
            torch.cuda.empty_cache()
        del prior
        torch.cuda.empty_cache()
        peak = torch.cuda.max_memory_allocated() / 2**30 if DEV == "cuda" else float("nan")
        print(f"[{name} took {time.time() - t0:.0f}s, peak mem {peak:.1f} GiB]", flush=True)

    # projection: 50 eta-search + 750 steps at 64, 750 at 256, then 1000 revise steps at 256 (+ IPG extra)
    print("\n| prior | render | s/step @64 | s/step @256 | IPG extra | 50+1500 (no IPG) | full edit (IPG) | paper |")
    print("|---|---|---|---|---|---|---|---|")
    res["projection_min"] = {}
    for name in args.priors.split(","):
        s64, s256 = res["steps"].get(f"{name}@64", {}), res["steps"].get(f"{name}@256", {})
        if "total" not in s64 or "total" not in s256:
            continue
        extra = s256.get("ipg_extra", 0.0)
        base256 = s256["total"] - extra
        no_ipg = (800 * s64["total"] + 750 * base256) / 60
        full = no_ipg + 1000 * s256["total"] / 60
        res["projection_min"][name] = {"no_ipg": no_ipg, "ipg": full}
        rend = "hash-grid" if field is not None else "n/a"
        print(f"| {name} | {rend} | {s64['total']:.3f} | {base256:.3f} | {extra:.3f} | {no_ipg:.1f} min | "
              f"{full:.1f} min | {PAPER_MIN['no_ipg']:.0f} / {PAPER_MIN['ipg']:.0f} min |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
