"""Adaptive perturbation strength η from the local loss landscape (paper Sec. 4.2, Alg. 2).

A few SDS steps with the edit prompt are simulated from θ_src on a throw-away copy; the loss trace L
tells how deep the source sits in a basin: if the loss falls easily (ΔL ≪ 0) the edit needs little
perturbation, if it stalls or rises the parameters must be pushed out (η up to η_max). The search loop itself is
`pnr.edit.loop.search_eta` (it reads its losses from the device in batches); these are its two formulas.
"""

from __future__ import annotations

import math
from typing import Sequence


def loss_decrease(losses: Sequence[float], k: int = 10) -> float:
    """ΔL = mean(L[-k:]) - mean(L[:k]) (Alg. 2, LossDecrease; negative when the loss falls)."""
    if len(losses) < 1:
        raise ValueError("loss_decrease needs at least one loss")
    k = max(1, min(k, len(losses)))
    return sum(losses[-k:]) / k - sum(losses[:k]) / k


def eta_from_decrease(delta_loss: float, delta_min: float, eta_max: float = 0.6) -> float:
    """η = max(0, η_max (1 - 2^(-(ΔL + Δ_min) / Δ_min))) (Alg. 2, DetermineEta).
    ΔL = -Δ_min gives 0, ΔL = 0 gives η_max / 2, ΔL -> +inf gives η_max."""
    if delta_min <= 0:
        raise ValueError(f"delta_min must be > 0, got {delta_min}")
    # a decrease far beyond Δ_min gives η = 0; cap the exponent so 2^x cannot overflow a float
    return max(0.0, eta_max * (1.0 - math.pow(2.0, min(-(delta_loss + delta_min) / delta_min, 64.0))))
