"""Scene contraction for unbounded scenes (mip-NeRF 360, Barron et al. 2022, Eq. 10; nerfacto's
SceneContraction with the L2 norm): points inside the ball of radius `bound` are kept as they are, points
outside are pulled into the shell out to radius 2 * bound:

    contract(x) = x                                   if |x| <= b
                  b * (2 - b / |x|) * x / |x|         otherwise

so the whole of space maps into the ball of radius 2b and the field's hash grid covers [-2b, 2b]^3 (the inner
ball gets half the cells per unit length of a bounded field with the same grid). `FieldConfig.contraction`
selects it ("mipnerf360"); "none" is the bounded box of every earlier checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor

CONTRACTIONS = ("none", "mipnerf360")


def contract(x: Tensor, bound: float = 1.0) -> Tensor:
    """World points [..., 3] -> contracted points, |result| < 2 * bound."""
    n = x.norm(dim=-1, keepdim=True)
    safe = n.clamp(min=bound)
    return torch.where(n <= bound, x, (2 - bound / safe) * x * (bound / safe))


def uncontract(c: Tensor, bound: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Inverse of `contract` for |c| < 2 * bound (clamped just inside; the far shell maps to ~bound/eps)."""
    n = c.norm(dim=-1, keepdim=True).clamp(max=(2 - eps) * bound)
    safe = n.clamp(min=bound)
    r = bound * bound / (2 * bound - safe)  # |x| for |c| = n > b
    unit = c / c.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return torch.where(n <= bound, c, unit * r)


def unit_coords(x: Tensor, bound: float, contraction: str) -> Tensor:
    """The hash grid's input in [0, 1]^3 for world points x: [N, 3]."""
    if contraction == "none":
        return (x + bound) / (2 * bound)
    return (contract(x, bound) + 2 * bound) / (4 * bound)


def inside(x: Tensor, bound: float, contraction: str) -> Tensor:
    """Where the field is defined: the box for bounded fields, everywhere for contracted ones."""
    if contraction == "none":
        return (x.abs() <= bound).all(-1)
    return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)


def random_points(n: int, bound: float, contraction: str, generator: torch.Generator | None, device) -> Tensor:
    """n points uniform in the box (bounded) or uniform in the contracted box [-2b, 2b]^3, mapped back."""
    u = (torch.rand(n, 3, generator=generator) * 2 - 1).to(device) * bound
    return u if contraction == "none" else uncontract(2 * u, bound)
