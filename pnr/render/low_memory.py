"""A differentiable render that keeps the activations of one chunk of rays at a time (issue 21, `--low-memory`).

Why: with the large priors the 256² render of 4 views and its backward set most of a step's memory (39.8 GiB peak
in bench/full_size_step.py's MVDream step): autograd keeps every sample's hash-grid and MLP activations until the
backward. Here each chunk of rays is rendered under activation checkpointing (torch.utils.checkpoint): its
activations are dropped after the forward and recomputed in the backward, so the render's memory is about one
chunk's (plus the [R, 3] outputs), for about one more render forward of time. The jitter is drawn once, outside the
checkpoint, and each chunk keeps exactly its occupied samples (`render_rays_static` with an exact budget), so the
recomputation sees the same samples: values and gradients equal the un-checkpointed static render (up to float
summation order; tests/render/test_low_memory.py), which equals `volume.render` without early ray termination.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from pnr import rng
from pnr.render.cameras import Cameras, generate_rays
from pnr.render.static import render_rays_static, sample_mask, sample_points

CHUNK = 1 << 14  # rays per checkpointed chunk: 16k rays x 64 samples ~ 1 M samples of activations at a time


def render_low_memory(field, cams: Cameras, occupancy, num_samples: int, generator: torch.Generator | None,
                      chunk: int = CHUNK) -> Tensor:
    """Jittered, differentiable render -> rgb [B, H, W, 3], one checkpointed chunk of rays at a time."""
    cams = cams.to(field.device)
    o, d = generate_rays(cams)
    B, H, W = o.shape[:3]
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    u = rng.rand((o.shape[0], num_samples), generator, o.device)  # [R, S], drawn once for forward and recompute
    outs = []
    for i in range(0, o.shape[0], chunk):
        oc, dc, uc = o[i:i + chunk], d[i:i + chunk], u[i:i + chunk]
        with torch.no_grad():
            _, pts, _, hit = sample_points(oc, dc, field.cfg.bound, uc)
            budget = max(1, int(sample_mask(pts, hit, occupancy, num_samples).sum()))  # exact: nothing dropped
        outs.append(checkpoint(_chunk_rgb, field, oc, dc, occupancy, uc, budget, use_reentrant=False))
    return torch.cat(outs).view(B, H, W, 3)


def _chunk_rgb(field, origins: Tensor, dirs: Tensor, occupancy, u: Tensor, budget: int) -> Tensor:
    return render_rays_static(field, origins, dirs, occupancy, u, budget)["rgb"]
