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


def train_classifier(seconds: float, device, pool_groups: int = 4096, batch: int = 512, seed: int = 0) -> AttrClassifier:
    """Trains on single views drawn from a pool of 4-view renders of training objects (x in [-1, 1]).
    The pool is rendered once (the renderer, not the CNN, is the slow part)."""
    rng, gen = random.Random(seed + 777), torch.Generator().manual_seed(seed + 777)
    t0 = time.time()
    specs = [sample_train_spec(rng) for _ in range(pool_groups)]
    xs = [render_groups(specs[i:i + 256], 4, 64, gen, device, supersample=2)[0].to(torch.bfloat16)
          for i in range(0, pool_groups, 256)]  # noqa: E501
    x_pool = torch.cat(xs).reshape(-1, 3, 64, 64)
    y_pool = attr_labels(specs).to(device).repeat_interleave(4, 0)
    t_render = time.time() - t0
    clf = AttrClassifier().to(device)
    opt = torch.optim.AdamW(clf.parameters(), lr=2e-3, weight_decay=0.01)
    step, t1 = 0, time.time()
    dt = torch.device(device).type
    while step == 0 or time.time() - t0 < seconds:
        idx = torch.randint(0, x_pool.shape[0], (batch,), generator=gen).to(device)
        x = x_pool[idx].float()
        x = x + 0.03 * torch.randn_like(x)  # samples are not pixel-exact renders
        with torch.autocast(dt, dtype=torch.bfloat16, enabled=dt == "cuda"):
            loss = _loss(clf(x), y_pool[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    print(f"classifier: pool of {pool_groups} objects rendered in {t_render:.0f}s, {step} steps in "
          f"{time.time() - t1:.0f}s, last loss {loss.item():.3f}", flush=True)
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


@torch.no_grad()
def read_with_encoder(encoder, rgb: Tensor, specs: list[grammar.ObjectSpec]) -> dict:
    """Zero-shot reading by the domain encoder (pnr.metrics.attributes): rgb [B, 4, 3, S, S] in [0, 1] ->
    {attr: {n, view_acc, object_acc, views_agree}} against the specs' true values."""
    from pnr.metrics.attributes import read_attributes

    hits: dict[str, list] = {}
    for i, spec in enumerate(specs):
        views = read_attributes(encoder, rgb[i].float().clamp(0, 1).cpu(), spec, per_view=True)
        pooled = read_attributes(encoder, rgb[i].float().clamp(0, 1).cpu(), spec)
        for a, vs in views.items():
            truth = getattr(spec, a)
            hits.setdefault(a, []).append((sum(v == truth for v in vs) / len(vs), pooled[a] == truth,
                                           all(v == vs[0] for v in vs)))
    return {a: {"n": len(h), "view_acc": sum(x[0] for x in h) / len(h), "object_acc": sum(x[1] for x in h) / len(h),
                "views_agree": sum(x[2] for x in h) / len(h)} for a, h in hits.items()}


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


def evaluate(prior_path, out: Path, n: int = 60, clf_seconds: float = 60.0, steps: int = 50,
             guidances: tuple[float, ...] = (3.0, 5.0),
             device=None, seed: int = 0, measure_speed: bool = True, reader: str = "classifier") -> dict:
    """reader: "classifier" (trained here on exact renders for clf_seconds), "encoder" (the shipped domain
    encoder, zero-shot; no training) or "both"."""
    from pnr.io import atomic_write_text, save_png

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    prior = load_builtin_prior(prior_path, device=device)
    report: dict = {"prior": str(prior_path), "n_captions": n, "steps": steps, "guidances": list(guidances)}
    if measure_speed:
        report["speed"] = speed(prior, device)
        print(json.dumps(report["speed"]), flush=True)
    use_clf, use_enc = reader in ("classifier", "both"), reader in ("encoder", "both")
    if use_clf:
        clf = train_classifier(clf_seconds, device, pool_groups=4096 if torch.device(device).type == "cuda" else 16,
                               seed=seed)
    if use_enc:
        from pnr.metrics.encoder import load_encoder

        enc = load_encoder(None, "cpu")
    specs = sample_held_out_specs(n, seed=seed + 12345)
    y = attr_labels(specs).to(device)
    gen = torch.Generator().manual_seed(seed)
    x_real, c2w = render_groups(specs, 4, 64, gen, device, supersample=2)
    if use_clf:
        report["classifier_on_renders"] = read_attrs(clf, x_real, y)
    if use_enc:
        report["encoder_on_renders"] = read_with_encoder(enc, (x_real + 1) / 2, specs)
    report["captions"] = [grammar.caption(s) for s in specs]
    samples = {}
    for gs in guidances:
        t = time.time()
        g2 = torch.Generator().manual_seed(seed + 1)
        rgb = torch.cat([ddim_sample(prior, report["captions"][i:i + 32], c2w[i:i + 32], steps=steps,
                                     guidance_scale=gs, generator=g2) for i in range(0, n, 32)])
        report[f"guidance_{gs:g}"] = {"sample_time_s": time.time() - t}
        if use_clf:
            report[f"guidance_{gs:g}"]["classifier_on_samples"] = read_attrs(clf, rgb * 2 - 1, y)
        if use_enc:
            report[f"guidance_{gs:g}"]["encoder_on_samples"] = read_with_encoder(enc, rgb, specs)
        atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
        samples[gs] = rgb
    # grids: rows of [4 real views | 4 sampled views] for the first 16 captions
    k = min(16, n)
    for gs, rgb in samples.items():
        rows = torch.cat([(x_real[:k] + 1) / 2, rgb[:k].float()], dim=1)  # [k, 8, 3, 64, 64]
        save_png(out / f"samples_vs_renders_g{gs:g}.png", rows.permute(0, 3, 1, 4, 2).reshape(k * 64, 8 * 64, 3).cpu())
    atomic_write_text(out / "eval.json", json.dumps(report, indent=1))
    for who in ("classifier", "encoder"):
        if f"{who}_on_renders" not in report:
            continue
        print(f"{who}_on_renders", {a: round(v["object_acc"], 3) for a, v in report[f"{who}_on_renders"].items()})
        for gs in guidances:
            r = report[f"guidance_{gs:g}"][f"{who}_on_samples"]
            print(f"{who}: samples g={gs:g} object_acc", {a: round(v["object_acc"], 3) for a, v in r.items()})
            print(f"{who}: samples g={gs:g} view_acc", {a: round(v["view_acc"], 3) for a, v in r.items()}, flush=True)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prior", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--clf-seconds", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, nargs="+", default=[3.0, 5.0])
    p.add_argument("--no-speed", action="store_true")
    p.add_argument("--reader", choices=("classifier", "encoder", "both"), default="both")
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    evaluate(a.prior, Path(a.out), a.n, a.clf_seconds, a.steps, tuple(a.guidance), device=a.device,
             measure_speed=not a.no_speed, reader=a.reader)


if __name__ == "__main__":
    main()
