"""Identity-preserving gradient (paper Sec. 4.3, Eq. 5, App. E).

d = λ_L1 * L1 + λ_p * perceptual between g(θ, ψ) and g(θ_src, ψ) at a random camera ψ, added to the
SDS update in the revise phase with (λ_L1, λ_p) annealed linearly to 0 at half the revise steps.
L1 is the mean absolute error over pixels and channels; the perceptual term is the mean ST-LPIPS
distance (pnr.metrics.perceptual), or 0 with a warning when that network cannot be loaded.
"""

from __future__ import annotations

import warnings
from typing import Callable

from torch import Tensor

from pnr.errors import PnrError

_WARNED = False


def default_perceptual() -> Callable[[Tensor, Tensor], Tensor] | None:
    """ST-LPIPS distance fn(a, b) on [B, 3, H, W] in [0, 1] -> [B], or None (L1 only) when unavailable."""
    global _WARNED
    try:
        from pnr.metrics.perceptual import get_perceptual_net, perceptual_distance

        get_perceptual_net("alex")  # load once now, so a missing weight file is reported here
        return lambda a, b: perceptual_distance(a, b, net="alex")
    except (PnrError, OSError) as e:
        if not _WARNED:
            warnings.warn(f"perceptual loss unavailable ({e}); the identity-preserving term uses L1 only")
            _WARNED = True
        return None


def identity_loss(rgb: Tensor, rgb_src: Tensor, lambda_l1: float, lambda_p: float,
                  perceptual: Callable[[Tensor, Tensor], Tensor] | None) -> tuple[Tensor, dict[str, Tensor]]:
    """rgb, rgb_src: [B, H, W, 3] in [0, 1] (rgb_src without grad) -> (λ_L1 L1 + λ_p P, parts)."""
    l1 = (rgb - rgb_src).abs().mean()
    loss = lambda_l1 * l1
    parts = {"l1": l1.detach()}  # tensors: reading them would make the host wait for the GPU every revise step
    if perceptual is not None and lambda_p > 0:
        p = perceptual(rgb.permute(0, 3, 1, 2), rgb_src.permute(0, 3, 1, 2)).mean()
        loss = loss + lambda_p * p
        parts["perceptual"] = p.detach()
    return loss, parts
