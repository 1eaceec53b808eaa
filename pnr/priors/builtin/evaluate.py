"""Quality and speed check of a built-in prior checkpoint (run on the GPU after training).

Quality: a small attribute classifier (one head per domain attribute) is trained on fresh exact
renders, its accuracy on renders of held-out objects is the ceiling, then it reads back DDIM samples
for held-out captions (captions never seen in training). Reported per attribute, per view and per
object (logits summed over the 4 views). Speed: predict_eps latency at the edit loop's batch
(CFG: 2 x 1 object x 4 views) and the DDIM sampler's time.

    python -m pnr.priors.builtin.evaluate --prior runs/prior/prior.safetensors --out runs/prior/eval
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnr.data.domain import grammar
from pnr.priors.builtin.data import render_groups, sample_held_out_specs, sample_train_spec
from pnr.priors.builtin.prior import load_builtin_prior
from pnr.priors.builtin.sample import ddim_sample, default_views

ATTRS = ["category", "color", "pattern", "height", "width", "profile", "pose", "accessory"]


def attr_labels(specs: list[grammar.ObjectSpec]) -> Tensor:
    """[B, A] class index per attribute, -1 where the category lacks it."""
    rows = []
    for s in specs:
        row = []
        for a in ATTRS:
            v = getattr(s, a)
            row.append(grammar.ATTRIBUTES[a].index(v) if v in grammar.ATTRIBUTES[a] else -1)
        rows.append(row)
    return torch.tensor(rows)


class AttrClassifier(nn.Module):
    def __init__(self, width: int = 48):
        super().__init__()
        chans, layers, c = [width, 2 * width, 4 * width, 8 * width], [], 3
        for co in chans:
            layers += [nn.Conv2d(c, co, 3, padding=1), nn.GroupNorm(8, co), nn.SiLU(),
                       nn.Conv2d(co, co, 3, stride=2, padding=1), nn.SiLU()]
            c = co
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(c, len(grammar.ATTRIBUTES[a])) for a in ATTRS])

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.body(x)
        return [hd(h) for hd in self.heads]


def _loss(logits: list[Tensor], y: Tensor) -> Tensor:
    return sum(F.cross_entropy(lg, y[:, i], ignore_index=-1) for i, lg in enumerate(logits) if (y[:, i] >= 0).any())


def train_classifier(seconds: float, device, batch: int = 128, seed: int = 0) -> AttrClassifier:
    """Trains on 4-view renders of training objects (x in [-1, 1]), views as independent images."""
    rng, gen = random.Random(seed + 777), torch.Generator().manual_seed(seed + 777)
    clf = AttrClassifier().to(device)
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3, weight_decay=0.01)
    t0, step = time.time(), 0
    while time.time() - t0 < seconds:
        specs = [sample_train_spec(rng) for _ in range(batch)]
        x0, _ = render_groups(specs, 4, 64, gen, device, supersample=2)
        y = attr_labels(specs).to(device).repeat_interleave(4, 0)
        x = x0.reshape(-1, 3, 64, 64)
        x = x + 0.03 * torch.randn_like(x)  # samples are not pixel-exact renders
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=torch.device(device).type == "cuda"):
            loss = _loss(clf(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    print(f"classifier: {step} steps in {time.time() - t0:.0f}s, last loss {loss.item():.3f}", flush=True)
    return clf.eval()


@torch.no_grad()
def read_attrs(clf: AttrClassifier, x: Tensor, y: Tensor) -> dict:
    """x [B, 4, 3, 64, 64] in [-1, 1], y [B, A] -> per-attribute accuracy per view and per object."""
    b = x.shape[0]
    logits = clf(x.reshape(-1, 3, 64, 64).float())
    res = {}
    for i, a in enumerate(ATTRS):
        m = y[:, i] >= 0
        if not m.any():
            continue
        per_view = logits[i].argmax(-1).view(b, 4)
        per_obj = logits[i].log_softmax(-1).view(b, 4, -1).sum(1).argmax(-1)
        res[a] = {"n": int(m.sum()), "view_acc": float((per_view == y[:, i:i + 1])[m].float().mean()),
                  "object_acc": float((per_obj == y[:, i])[m].float().mean()),
                  "views_agree": float((per_view == per_view[:, :1]).all(1)[m].float().mean())}
    return res


def time_it(fn, reps: int, device) -> float:
    """Median seconds of fn() over reps (after 3 warm-ups)."""
    sync = (lambda: torch.cuda.synchronize()) if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(3):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def speed(prior, device, reps: int = 30) -> dict:
    from pnr.priors.base import predict_eps_cfg

    s = prior.image_size
    x = torch.randn(1, 4, 3, s, s, device=device)
    c2w = default_views(1, 4, device=device)
    cond, unc = prior.encode_text(["a red striped vase"]), prior.null_text(1)
    t = torch.tensor([0.5], device=device)
    with torch.no_grad():
        cfg_s = time_it(lambda: predict_eps_cfg(prior, x, t, cond, unc, c2w, 5.0), reps, device)
        x1 = torch.randn(1, 1, 3, s, s, device=device)
        single_s = time_it(lambda: predict_eps_cfg(prior, x1, t, cond, unc, c2w[:, :1], 5.0), reps, device)
    samp_s = time_it(lambda: ddim_sample(prior, ["a red striped vase"], c2w, steps=50), max(1, reps // 10), device)
    return {"predict_eps_cfg_2x1x4_ms": cfg_s * 1e3, "predict_eps_cfg_2x1x1_ms": single_s * 1e3,
            "ddim50_one_object_4views_s": samp_s, "dtype": str(next(prior.parameters()).dtype), "device": str(device)}


def evaluate(prior_path, out: Path, n: int = 60, clf_seconds: float = 60.0, steps: int = 50, guidance: float = 5.0,
             device=None, seed: int = 0, measure_speed: bool = True) -> dict:
    from pnr.io import atomic_write_text, save_png

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    prior = load_builtin_prior(prior_path, device=device)
    report: dict = {"prior": str(prior_path), "n_captions": n, "steps": steps, "guidance": guidance}
    if measure_speed:
        report["speed"] = speed(prior, device)
        print(json.dumps(report["speed"]), flush=True)
    clf = train_classifier(clf_seconds, device, seed=seed)
    specs = sample_held_out_specs(n, seed=seed + 12345)
    y = attr_labels(specs).to(device)
    gen = torch.Generator().manual_seed(seed)
    x_real, c2w = render_groups(specs, 4, 64, gen, device, supersample=2)
    report["classifier_on_renders"] = read_attrs(clf, x_real, y)
    t = time.time()
    rgb = torch.cat([ddim_sample(prior, [grammar.caption(s) for s in specs[i:i + 32]], c2w[i:i + 32], steps=steps,
                                 guidance_scale=guidance, generator=gen) for i in range(0, n, 32)])
    report["sample_time_s"] = time.time() - t
    report["classifier_on_samples"] = read_attrs(clf, rgb * 2 - 1, y)
    report["captions"] = [grammar.caption(s) for s in specs]
    # grids: rows of [4 real views | 4 sampled views] for the first 16 captions
    k = min(16, n)
    rows = torch.cat([(x_real[:k] + 1) / 2, rgb[:k].float()], dim=1)  # [k, 8, 3, 64, 64]
    save_png(out / "samples_vs_renders.png", rows.permute(0, 3, 1, 4, 2).reshape(k * 64, 8 * 64, 3).cpu())
    atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    for key in ("classifier_on_renders", "classifier_on_samples"):
        print(key, {a: round(v["object_acc"], 3) for a, v in report[key].items()}, flush=True)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prior", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--clf-seconds", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--no-speed", action="store_true")
    a = p.parse_args(argv)
    evaluate(a.prior, Path(a.out), a.n, a.clf_seconds, a.steps, a.guidance, measure_speed=not a.no_speed)


if __name__ == "__main__":
    main()
