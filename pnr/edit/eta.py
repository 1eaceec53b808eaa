"""Adaptive perturbation strength η from the local loss landscape (paper Sec. 4.2, Alg. 2).

A few SDS steps with the edit prompt are simulated from θ_src on a throw-away copy; the loss trace L
tells how deep the source sits in a basin: if the loss falls easily (ΔL ≪ 0) the edit needs little
perturbation, if it stalls or rises the parameters must be pushed out (η up to η_max).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence


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


def choose_eta(step_fn: Callable[[int], float], steps: int = 50, delta_min: float = 1000.0, eta_max: float = 0.6,
               k: int = 10, on_step: Callable[[int, float], None] | None = None) -> tuple[float, list[float]]:
    """Runs `step_fn(i)` (one SDS optimisation step on a throw-away copy of θ_src, returning its loss)
    `steps` times (Alg. 2: 50), then returns (η, loss trace)."""
    trace: list[float] = []
    for i in range(steps):
        loss = float(step_fn(i))
        trace.append(loss)
        if on_step is not None:
            on_step(i, loss)
    return eta_from_decrease(loss_decrease(trace, k), delta_min, eta_max), trace
