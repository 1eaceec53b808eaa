"""`pnr fit` against a peer side by side (issue 21 item 3): held-out PSNR against training seconds on the same
dataset and device, for `pnr fit` and for nerfacc's instant-ngp recipe; time to --target dB and PSNR at 30 s.

    python bench/peer_fit.py --device cuda --json peer.json        # needs CUDA, nvcc and nerfacc 0.5.x

The peer is nerfacc's `examples/train_ngp_nerf_occ.py` recipe for bounded synthetic scenes, written here from its
settings: `OccGridEstimator` (128³, one level, updated every 16 steps with threshold 1e-2 after a 256-step warm-up),
ray marching at 1024 steps per box diagonal (its 5e-3 for a 3-unit box), `nerfacc.rendering`, a dynamic ray batch
aiming at 2^18 samples per step, smooth-L1 loss, Adam 1e-2 (eps 1e-15, weight decay 1e-6 on the MLPs) with a
100-step linear warm-up and steps of 0.33 at 1/2, 3/4, 9/10 of 20k steps, random background colours.
**Deviation**: its field is tiny-cuda-nn's fused hash grid + MLPs, which cannot be built on the lent GPU machine
(no network for its submodules). The peer therefore queries pnr's own `Field` (the same hash grid and MLPs as
`pnr fit`, Triton on CUDA), so the comparison is of what nerfacc is: sampling, compositing and the training recipe,
with the model held equal. Its GradScaler(2^10) is left out: the field is fp32.

Both sides are timed the same way: training seconds only (each step synchronised), evaluation excluded, nerfacc's
JIT build and a warm-up excluded. Held-out PSNR is the mean over the test views of per-view PSNR, each side
rendering with its own renderer (pnr: `pnr.fit.evaluate`; peer: nerfacc in eval mode, white background).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fit_speed import make_dataset  # noqa: E402

from pnr.commands.fit import field_preset  # noqa: E402
from pnr.field.field import Field  # noqa: E402
from pnr.fit import FitConfig, fit, psnr  # noqa: E402
from pnr.render.cameras import generate_rays  # noqa: E402

PEER_MAX_STEPS = 20000  # the recipe's schedule length (its LR milestones are fractions of it)


# ------------------------------------------------------------------------------------------ trace reading
def time_to(trace: list[tuple[float, float]], target: float) -> float | None:
    """Training seconds at which the held-out PSNR first reaches `target`, interpolated linearly between the two
    evaluations around the crossing; None if it never does. trace: [(seconds, psnr)], seconds increasing."""
    prev = None
    for t, p in trace:
        if p >= target:
            if prev is None or prev[1] >= p:
                return t
            t0, p0 = prev
            return t0 + (t - t0) * (target - p0) / (p - p0)
        prev = (t, p)
    return None


def psnr_at(trace: list[tuple[float, float]], seconds: float) -> float | None:
    """Held-out PSNR at the last evaluation at or before `seconds` (+ 2 % slack for the step that crosses it); None
    if the run stopped before it."""
    vals = [p for t, p in trace if t <= seconds * 1.02]
    return vals[-1] if vals and trace[-1][0] >= seconds * 0.98 else None


# ------------------------------------------------------------------------------------------ pnr side
def run_pnr(ds, fcfg, device: str, budgets: list[float], rays: int, seed: int, root: Path) -> dict:
    """`pnr fit` with its defaults, stopped at each budget (a resume continues the same run) and evaluated. A
    3-step fit first, in another folder, takes the Triton compiles and autotuning out of the timed run."""
    fit(ds, fcfg, FitConfig(steps=3, rays_per_batch=rays, checkpoint_every=10**9, device=device, seed=seed),
        root / "pnr_warm", progress=False)
    trace, m = [], {}
    for k, lim in enumerate(budgets):
        cfg = FitConfig(steps=PEER_MAX_STEPS, rays_per_batch=rays, checkpoint_every=10**9, device=device,
                        time_limit_s=lim, seed=seed)
        _, _, m = fit(ds, fcfg, cfg, root / "pnr", resume=k > 0, progress=False)
        trace.append((round(m["train_time_s"], 2), round(m["heldout_psnr"], 3)))
        print(json.dumps({"side": "pnr", "train_s": trace[-1][0], "step": m["step"], "psnr": trace[-1][1]}), flush=True)
    return {"trace": trace, "steps": m.get("step"), "rays_per_s": m.get("rays_per_s"), "rays_per_batch": rays}


# ------------------------------------------------------------------------------------------ peer side
class PeerRun:
    """One run of the recipe: the field, nerfacc's occupancy grid, Adam and the LR schedule, and the dynamic batch."""

    def __init__(self, ds, fcfg, dev: torch.device, seed: int):
        from nerfacc.estimators.occ_grid import OccGridEstimator

        b = float(fcfg.bound)
        self.dev, self.step_size = dev, math.sqrt(3.0) * 2.0 * b / 1024.0  # recipe: 5e-3 for a 3-unit box
        train = ds.subset("train")
        o, d = generate_rays(train.cams.to(dev))
        self.rays_o, self.rays_d = o.reshape(-1, 3), d.reshape(-1, 3)
        self.target = train.images.to(dev).reshape(-1, 3)
        self.alpha = train.alpha.to(dev).reshape(-1, 1)
        self.bg_data = torch.tensor(ds.background, device=dev)
        self.field = Field(fcfg, seed=seed, device=dev)
        self.est = OccGridEstimator(roi_aabb=torch.tensor([-b, -b, -b, b, b, b], device=dev), resolution=128,
                                    levels=1).to(dev)
        mlp = [p for n, p in self.field.named_parameters() if n != "encoding_tables"]
        self.opt = torch.optim.Adam([{"params": [self.field.encoding_tables], "weight_decay": 0.0},
                                     {"params": mlp, "weight_decay": 1e-6}], lr=1e-2, eps=1e-15)
        ms = [PEER_MAX_STEPS // 2, PEER_MAX_STEPS * 3 // 4, PEER_MAX_STEPS * 9 // 10]
        self.sched = torch.optim.lr_scheduler.ChainedScheduler([
            torch.optim.lr_scheduler.LinearLR(self.opt, start_factor=0.01, total_iters=100),
            torch.optim.lr_scheduler.MultiStepLR(self.opt, milestones=ms, gamma=0.33)])
        self.gen = torch.Generator(device=dev).manual_seed(seed)
        self.n_rays = 1024  # the recipe's init_batch_size, then resized toward 2^18 samples per step
        self.step = 0

    def render(self, ro: Tensor, rd: Tensor, bg: Tensor, stratified: bool) -> tuple[Tensor, int]:
        import nerfacc

        f = self.field

        def sigma_fn(t0, t1, ri):
            if t0.shape[0] == 0:
                return torch.empty(0, device=self.dev)
            return f.density(ro[ri] + rd[ri] * ((t0 + t1) / 2.0)[:, None])

        def rgb_sigma_fn(t0, t1, ri):
            if t0.shape[0] == 0:
                return torch.empty(0, 3, device=self.dev), torch.empty(0, device=self.dev)
            sigma, rgb = f.query(ro[ri] + rd[ri] * ((t0 + t1) / 2.0)[:, None], rd[ri])
            return rgb, sigma

        ri, t0, t1 = self.est.sampling(ro, rd, sigma_fn=sigma_fn, render_step_size=self.step_size,
                                       stratified=stratified)
        rgb, _, _, _ = nerfacc.rendering(t0, t1, ri, n_rays=ro.shape[0], rgb_sigma_fn=rgb_sigma_fn, render_bkgd=bg)
        return rgb, int(t0.shape[0])

    def train_step(self) -> int:
        """One step of the recipe; returns the rays it used (0 if no sample was alive)."""
        f, num = self.field, self.rays_o.shape[0]
        self.est.update_every_n_steps(step=self.step, occ_eval_fn=lambda x: f.density(x)[:, None] * self.step_size,
                                      occ_thre=1e-2)
        self.step += 1
        idx = torch.randint(0, num, (self.n_rays,), generator=self.gen, device=self.dev)
        bg = torch.rand(self.n_rays, 3, generator=self.gen, device=self.dev)  # the recipe's random background
        tgt = self.target[idx] + (1 - self.alpha[idx]) * (bg - self.bg_data)
        rgb, n_samples = self.render(self.rays_o[idx], self.rays_d[idx], bg, True)
        if n_samples == 0:
            return 0
        self.n_rays = max(256, min(num, int(self.n_rays * (1 << 18) / n_samples)))
        loss = torch.nn.functional.smooth_l1_loss(rgb, tgt)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return len(idx)

    @torch.no_grad()
    def heldout_psnr(self, held) -> float:
        """Mean over the held-out views of per-view PSNR (as `pnr.fit.evaluate`), white background, no jitter."""
        self.field.eval()
        self.est.eval()
        vals = []
        for i in range(len(held)):
            ho, hd = generate_rays(held.cams[i].to(self.dev))
            ho, hd = ho.reshape(-1, 3), hd.reshape(-1, 3)
            rgb = torch.cat([self.render(ho[j:j + 8192], hd[j:j + 8192], self.bg_data, False)[0]
                             for j in range(0, ho.shape[0], 8192)])
            vals.append(psnr(rgb.clamp(0, 1).cpu(), held.images[i].reshape(-1, 3)))
        self.field.train()
        self.est.train()
        return sum(vals) / len(vals)


def run_peer(ds, fcfg, device: str, budgets: list[float], seed: int) -> dict:
    import nerfacc

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    warm = PeerRun(ds, fcfg, dev, seed)  # nerfacc's JIT build and the Triton compiles, on a throw-away run
    for _ in range(3):
        warm.train_step()
    sync()
    del warm
    run, held = PeerRun(ds, fcfg, dev, seed), ds.subset("test")
    trace, t_train, rays_total = [], 0.0, 0
    for lim in budgets:
        while t_train < lim and run.step < PEER_MAX_STEPS:
            t0 = time.perf_counter()
            rays_total += run.train_step()
            sync()
            t_train += time.perf_counter() - t0
        trace.append((round(t_train, 2), round(run.heldout_psnr(held), 3)))
        print(json.dumps({"side": "peer", "train_s": trace[-1][0], "step": run.step, "psnr": trace[-1][1]}), flush=True)
    return {"trace": trace, "steps": run.step, "rays_per_s": rays_total / t_train if t_train else None,
            "nerfacc": nerfacc.__version__, "render_step_size": run.step_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--field", default="default", choices=["default", "small", "tiny"])
    ap.add_argument("--res", type=int, default=64, help="dataset resolution")
    ap.add_argument("--views", type=int, default=40)
    ap.add_argument("--rays", type=int, default=None, help="pnr's rays per batch (default 32768 GPU, 1024 CPU)")
    ap.add_argument("--budgets", default="0.25,0.5,1,1.5,2,3,4,6,8,15,30",
                    help="training seconds at which both are evaluated (both pass 30 dB within 2 s on the H200, so the grid is fine there)")
    ap.add_argument("--target", type=float, default=30.0, help="held-out PSNR whose time to reach is compared")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-peer", action="store_true", help="only the pnr side (no nerfacc)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    budgets = sorted(float(x) for x in a.budgets.split(","))
    root = Path(tempfile.mkdtemp(prefix="pnr-peer-"))
    ds = make_dataset(root / "data", a.res, a.views, a.seed)
    fcfg = field_preset(a.field)
    # 32768 on a GPU: pnr's fit step is launch-bound at 8192 rays (H200, 2026-12-04, pnr alone: 30 dB after 0.8 s
    # at 32768 vs 1.2 s at 8192; bench/results/speed_h200_2026-12-04/peer_pnr_rays32768.txt); `pnr fit --rays N`
    rays = a.rays or (32768 if a.device.startswith("cuda") else 1024)
    device_name = torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu"
    from datetime import datetime, timezone

    out = {"device": device_name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "load": list(os.getloadavg()), "torch": torch.__version__, "res": a.res, "views": a.views, "field": a.field,
           "budgets_s": budgets, "target_db": a.target, "command": " ".join(["python", "bench/peer_fit.py", *(argv or sys.argv[1:])])}
    sides = {"pnr": run_pnr(ds, fcfg, a.device, budgets, rays, a.seed, root)}
    if not a.skip_peer:
        try:
            sides["peer"] = run_peer(ds, fcfg, a.device, budgets, a.seed)
        except Exception as e:  # an import or JIT-build failure is a result to report, not a crash of the pnr side
            sides["peer"] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    for name, s in sides.items():
        if "trace" in s:
            s["time_to_target_s"] = time_to(s["trace"], a.target)
            s["psnr_at_30s"] = psnr_at(s["trace"], 30.0)
    out.update(sides)
    tp, tq = sides["pnr"].get("time_to_target_s"), sides.get("peer", {}).get("time_to_target_s")
    out["speedup_to_target"] = round(tq / tp, 3) if tp and tq else None  # > 1: pnr is faster (goal >= 1.5)
    print(f"\n| side | {' | '.join(f'{b:g} s' for b in budgets)} | time to {a.target:g} dB | PSNR at 30 s |")
    print("|---|" + "---|" * (len(budgets) + 2))
    for name, s in sides.items():
        if "trace" not in s:
            print(f"| {name} | {s.get('error', 'not run')} |")
            continue
        cells = [f"{p:.2f} ({t:.1f} s)" for t, p in s["trace"]]
        tt = s["time_to_target_s"]
        print(f"| {name} | {' | '.join(cells)} | {'–' if tt is None else f'{tt:.1f} s'} | {s['psnr_at_30s']} |")
    print(f"speed-up to {a.target:g} dB (peer time / pnr time): {out['speedup_to_target']}; device {device_name}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
