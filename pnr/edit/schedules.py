"""Step-dependent schedules of the edit loop: noise-level range Σ(τ), IPG weight, render resolution.

All are pure functions of (step, total steps) so a resumed run sees exactly the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TimestepSchedule:
    """Σ(τ) = U(t_min(τ), t_max(τ)), t in [0, 1] of the prior's diffusion schedule.

    Linear from `start` at τ = 0 to `end` at τ = anneal_frac * total, constant after (App. E:
    U(0.75, 0.75) -> U(0.02, 0.40) at 80% of the editing steps)."""

    start: tuple[float, float] = (0.75, 0.75)  # App. E
    end: tuple[float, float] = (0.02, 0.40)  # App. E
    anneal_frac: float = 0.8  # App. E

    def range(self, step: int, total: int) -> tuple[float, float]:
        span = max(self.anneal_frac * total, 1e-9)
        f = min(max(step / span, 0.0), 1.0)
        lo = self.start[0] + f * (self.end[0] - self.start[0])
        hi = self.start[1] + f * (self.end[1] - self.start[1])
        return lo, hi

    def sample(self, step: int, total: int, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """t: [batch] drawn from Σ(step)."""
        lo, hi = self.range(step, total)
        return lo + (hi - lo) * torch.rand(batch, generator=generator)


def fixed_schedule(lo: float = 0.02, hi: float = 0.98) -> TimestepSchedule:
    """The SDS / Instruct-NeRF2NeRF / PDS schedule U(0.02, 0.98) (App. E), constant over steps."""
    return TimestepSchedule(start=(lo, hi), end=(lo, hi), anneal_frac=1.0)


def ipg_weight(step: int, total: int, anneal_frac: float = 0.5) -> float:
    """Multiplier of (λ_L1, λ_p) in the revise phase: 1 at step 0, linearly 0 at anneal_frac * total and
    after (App. E: "we linearly decrease them to 0 until the halfway point of the steps")."""
    span = anneal_frac * total
    if span <= 0:
        return 0.0
    return max(0.0, 1.0 - step / span)


def render_resolution(step: int, total: int, low: int, high: int, milestone_frac: float = 0.5) -> int:
    """Rendering resolution: `low` before the milestone at milestone_frac * total edit steps, `high` from
    it on (App. E: "a resolution milestone ... to half the number of editing steps")."""
    return low if step < milestone_frac * total else high
