"""How large must `lambda_sparsity` be to matter? Parameter-gradient norms of one SDS step and of the opacity
penalty (pnr/edit/sparsity.py) on a real source, the way identity_scale was set (issue 19: ≈ parity at step 0).

For each seed: the source perturbed by η (what the edit phase starts from), 4 views at `--res` px, SDS at t
(x0 weighting, CFG 20, the built-in prior), and ‖∇θ‖ of both losses over the geometry parameters (hash tables +
density MLP, what perturbation touches). λ_parity = ‖∇ SDS‖ / ‖∇ penalty‖: the weight at which the penalty pulls
as hard as the prior at the first step.

    python bench/sparsity_scale.py --source pnr/assets/sample/red_mug --prompt "with a straw" --seeds 4
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pnr.edit.config import EditConfig, with_prior_defaults
from pnr.edit.guide import group_c2w, render_for_prior, repeat_cond
from pnr.edit.perturb import perturb
from pnr.edit.prompts import resolve_prompts
from pnr.edit.run import make_guide
from pnr.edit.sparsity import opacity_penalty
from pnr.field.checkpoint import load_checkpoint
from pnr.field.field import Field
from pnr.guidance.sds import sds
from pnr.priors.builtin.prior import load_builtin_prior
from pnr.render.cameras import random_orbit_views


def grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    gs = torch.autograd.grad(loss, params, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in gs if g is not None)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="pnr/assets/sample/red_mug")
    ap.add_argument("--prompt", default="with a straw")
    ap.add_argument("--eta", type=float, default=0.3)
    ap.add_argument("--t", type=float, default=0.75)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    src, occ, meta = load_checkpoint(a.source)
    prior = load_builtin_prior()
    edit_text, source_text = resolve_prompts(prior, a.prompt, meta.get("caption"), "pnr")
    guide = make_guide(prior, src, occ, edit_text, source_text)
    cfg = with_prior_defaults(EditConfig(), prior)
    rows = []
    for seed in range(a.seeds):
        f = Field(src.cfg)
        f.load_params_dict(perturb(src.params_dict(), src.cfg, a.eta, seed=seed + 1))
        geo = [p for n, p in f.named_parameters() if not n.startswith(("color", "background"))]
        g = torch.Generator().manual_seed(seed)
        v = guide.views(cfg)
        cams = random_orbit_views(1, v, generator=g, res=a.res)
        _, x = render_for_prior(f, None, cams, guide, cfg, g, v)
        t = torch.full((1,), a.t)
        loss = sds(prior, x, repeat_cond(guide.cond, 1), repeat_cond(guide.uncond, 1), group_c2w(cams, v), t,
                   cfg.guidance_scale, weighting="x0", x0_range=guide.x0_range, generator=g)["loss"]
        n_sds = grad_norm(loss, geo)
        pen = opacity_penalty(f, g, cfg.num_samples)  # [] (keeps its graph for the gradient below)
        n_pen = grad_norm(pen, geo)
        rows.append((seed, float(pen.detach()), n_sds, n_pen, n_sds / n_pen))
        print(f"seed {seed}: penalty {rows[-1][1]:.4f}  |grad SDS| {n_sds:.3g}  |grad penalty| {n_pen:.3g}  "
              f"lambda_parity {n_sds / n_pen:.3g}", flush=True)
    lam = statistics.median(r[4] for r in rows)
    print(f"\n{a.source}, '{a.prompt}', eta {a.eta}, t {a.t}, {a.res} px: median lambda_parity {lam:.3g} "
          f"over {len(rows)} seeds")


if __name__ == "__main__":
    main()
