"""An opacity penalty against the over-growth of long edits (issue 19; on by default for the built-in prior, W 1e4).

Why: at the paper's step counts every failed PnR run (and SDS's) is "exploded": mass grown around the object,
covering 3-6x the target's pixels, in 4 of PnR's 6 around an edit that is otherwise right (docs/quality-issue19.md);
nothing in score distillation asks the field to keep empty space empty, and our small prior lets that halo stand. threestudio's `lambda_sparsity` penalises the rendered opacity (0 in the authors'
mvdream-pnr configs). Ours penalises the opacity of random points in the box instead, so that it needs nothing from
the render (the CUDA-graph render returns rgb only) and costs one density query of `POINTS` points per step: its
mean is the fraction of the box's volume that is occupied, which is what over-growth increases.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pnr import rng
from pnr.field.field import Field

POINTS = 4096  # density queries per step: ~1/50 of a 64-sample render of 4 views at 32 px


def opacity_penalty(field: Field, generator: torch.Generator | None, num_samples: int, points: int = POINTS) -> Tensor:
    """Mean opacity alpha = 1 - exp(-sigma * delta) of `points` uniform points in the field's box, with delta the
    render's step (2 bound / num_samples), so a cell the renders see as opaque counts ~1 and empty space 0."""
    b = float(field.cfg.bound)
    x = (rng.rand((points, 3), generator, field.device) * 2.0 - 1.0) * b  # [P, 3]
    sigma = field.density(x)  # [P]
    return (1.0 - torch.exp(-sigma * (2.0 * b / num_samples))).mean()
