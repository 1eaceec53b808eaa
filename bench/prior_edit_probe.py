"""Can the built-in prior itself make an edit from the source's renders? (issue 19: PnR raises no arm on dev2)

For each benchmark edit of a tuning split, exact 4-view renders of the SOURCE object (the prior's own views) are
noised to t and denoised to t = 0 by DDIM with the TARGET caption and the edit loop's CFG (SDEdit, Meng et al.
2022). The domain encoder then reads the changed attributes from the result, as the benchmark's edit accuracy does.
t = 1 (pure noise) is the prior's text-following ceiling; t = 0.75 is where the edit phase starts (paper App. E);
if accuracy at 0.75 is far below that at 1, the source's layout survives the noise level the edit starts from
and score distillation from there cannot leave it either. The same with the SOURCE caption is the control (the
changed attributes should then read as the source's: edit accuracy near 0).

    python bench/prior_edit_probe.py --split dev2 --types pose,object --t 0.5,0.75,0.85,1.0 --json out.json

This is a probe of the 2D prior, not of any 3D method: no field is optimised here.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pnr.data.domain import grammar as G
from pnr.data.domain.render import render_specs
from pnr.metrics.attributes import read_attributes
from pnr.metrics.encoder_data import composite
from pnr.metrics.eval import load_backbone
from pnr.priors.builtin.prior import load_builtin_prior
from pnr.priors.builtin.sample import ddim_sample, default_views
from pnr.render.cameras import Cameras, orbit_cameras


@torch.no_grad()
def sdedit(den, x0: torch.Tensor, prompts: list[str], c2w: torch.Tensor, t: float, steps: int, cfg: float,
           gen: torch.Generator) -> torch.Tensor:
    """x0 [B, V, 3, s, s] in [-1, 1] noised to t, then DDIM (eta 0) with CFG down to 0 -> rgb [B, V, 3, s, s]."""
    n = den.schedule.num_steps
    start = min(n - 1, round(t * (n - 1)))
    a = den.schedule.alphas_cumprod.to(x0.device)[start]
    noise = torch.randn(x0.shape, generator=gen).to(x0)
    x = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return ddim_sample(den, prompts, c2w, steps, cfg, x_T=x, start=start)


def edit_accuracy(encoder, rgb: torch.Tensor, edits, caption_of: str) -> list[float]:
    """Per edit: the fraction of changed attributes read as the target's from the 4 views (rgb [B, V, 3, s, s])."""
    out = []
    for e, views in zip(edits, rgb):
        changed = G.differing_attrs(e.source, e.target)
        read = read_attributes(encoder, views.float(), e.target, changed)
        ok = [read.get(a) == getattr(e.target, a) for a in changed if a in read]
        out.append(sum(ok) / len(ok) if ok else float("nan"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="dev2", choices=("dev", "dev2"), help="a tuning split (never test)")
    ap.add_argument("--types", default="pose,object")
    ap.add_argument("--t", default="0.5,0.75,0.85,1.0", help="comma list of noise levels (fractions of the schedule)")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps over the whole schedule")
    ap.add_argument("--cfg", type=float, default=20.0, help="CFG scale (EditConfig.guidance_scale, built-in prior)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=30, help="edits per type")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from pnr.bench.quality.jobs import select_edits

    dev = torch.device(a.device)
    types = a.types.split(",")
    den = load_builtin_prior(None, device=dev)
    encoder = load_backbone("domain", str(dev))
    ts = [float(x) for x in a.t.split(",")]
    s = den.image_size
    c2w_one = default_views(1, device=dev)[0]
    cams = orbit_cameras(4, elevation_deg=15.0, radius=3.0, azimuth0_deg=-90.0, res=s, device=dev)
    rows, t0 = [], time.time()
    for et in types:
        edits = [e for e in select_edits(a.split, [et], None)][: a.limit]
        rgba, _ = render_specs([e.source for e in edits], Cameras.cat([cams] * len(edits)), 4, supersample=2)
        src = composite(rgba.reshape(-1, s, s, 4), 1.0).reshape(len(edits), 4, 3, s, s).to(dev)
        x0 = den.encode_images(src)
        c2w = c2w_one[None].expand(len(edits), -1, -1, -1).contiguous()
        for t in ts:
            for which in ("target", "source"):
                prompts = [e.target_caption if which == "target" else e.source_caption for e in edits]
                accs = []
                for seed in range(a.seeds):
                    out = sdedit(den, x0, prompts, c2w, t, a.steps, a.cfg, torch.Generator().manual_seed(seed))
                    accs.append(edit_accuracy(encoder, out, edits, which))
                per_edit = [sum(v) / len(v) for v in zip(*accs)]
                row = {"type": et, "t": t, "caption": which, "edits": len(edits),
                       "edit_acc": sum(per_edit) / len(per_edit), "per_edit": dict(zip([e.id for e in edits], per_edit))}
                rows.append(row)
                print(f"{et:7s} t={t:.2f} {which:6s} caption: edit acc {row['edit_acc']:.2f} over {len(edits)} edits x "
                      f"{a.seeds} seeds ({time.time() - t0:.0f} s)", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
