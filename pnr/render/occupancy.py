"""Occupancy grid for empty-space skipping (instant-ngp Sec. 5.1 / nerfacc OccGridEstimator).

A cubic grid over [-bound, bound]^3 keeps an EMA of the field's density at a jittered point per cell;
cells whose opacity proxy sigma * step_size stays below a threshold are skipped when rendering.
Cells never evaluated since `mark_all()` (density < 0) count as occupied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pnr import rng


@dataclass
class OccupancyConfig:
    resolution: int = 64  # 128 in instant-ngp; 64 keeps CPU updates cheap for 64-256 px objects
    update_every: int = 16  # nerfacc default
    warmup_steps: int = 256  # nerfacc: evaluate every cell for the first 256 steps
    ema_decay: float = 0.95  # instant-ngp / nerfacc
    threshold: float = 0.01  # opacity threshold, nerfacc `occ_thre`
    step_size: float = 2 * 3**0.5 / 128  # opacity proxy = sigma * step_size (box diagonal / 128 samples)


class OccupancyGrid:
    def __init__(self, resolution: int = 64, bound: float = 1.0, cfg: OccupancyConfig | None = None, device="cpu"):
        self.cfg = cfg or OccupancyConfig(resolution=resolution)
        self.cfg.resolution = resolution
        self.bound = float(bound)
        self.density = torch.full((resolution**3,), -1.0, device=device)  # -1: not evaluated yet
        self.occupied = torch.ones(resolution**3, dtype=torch.bool, device=device)
        self.version = 0  # counts changes of `occupied` (a render that sizes itself on it knows when to look again)

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    @property
    def device(self) -> torch.device:
        return self.density.device

    def to(self, device) -> "OccupancyGrid":
        self.density, self.occupied = self.density.to(device), self.occupied.to(device)
        return self

    def mark_all(self) -> None:
        """Forget what is known: every cell occupied until re-evaluated (e.g. after a perturbation)."""
        self.density.fill_(-1.0)
        self.occupied.fill_(True)
        self.version += 1

    def _cell_points(self, cells: Tensor, generator: torch.Generator | None) -> Tensor:
        r = self.resolution
        ijk = torch.stack([cells % r, (cells // r) % r, cells // (r * r)], dim=-1).float()
        jitter = rng.rand((cells.shape[0], 3), generator, cells.device)
        return ((ijk + jitter) / r * 2 - 1) * self.bound

    @torch.no_grad()
    def update(self, field, step: int, generator: torch.Generator | None = None, chunk: int = 1 << 18,
               force: bool = False) -> bool:
        """EMA update every `update_every` steps (or when `force`); returns whether it ran.
        Warm-up evaluates every cell; later, a random quarter of all cells plus a quarter of the
        occupied ones, as nerfacc does."""
        c = self.cfg
        if not force and step % c.update_every != 0:
            return False
        n = self.resolution**3
        dev = self.device
        if step < c.warmup_steps or force:
            cells = torch.arange(n, device=dev)
        else:
            k = n // 4
            rnd = rng.randint(n, (k,), generator, dev)
            occ = self.occupied.nonzero()[:, 0]
            if occ.numel() > k:
                occ = occ[rng.randint(occ.numel(), (k,), generator, dev)]
            cells = torch.cat([rnd, occ])
        x = self._cell_points(cells, generator)
        new = torch.cat([field.density(x[i:i + chunk]).float() for i in range(0, x.shape[0], chunk)])
        old = self.density[cells]
        # duplicates in `cells` just write the same kind of value twice; fine for an EMA
        self.density[cells] = torch.where(old < 0, new, torch.maximum(old * c.ema_decay, new))
        self._refresh()
        return True

    def _refresh(self) -> None:
        """Binary occupancy from the EMA: threshold = min(threshold, mean opacity proxy), as nerfacc."""
        c = self.cfg
        known = self.density >= 0
        mean = self.density[known].mean() if known.any() else torch.tensor(0.0, device=self.device)
        thre = torch.clamp(mean * c.step_size, max=c.threshold)
        occupied = (~known) | (self.density * c.step_size > thre)
        if self.occupied.shape == occupied.shape and self.occupied.device == occupied.device:
            self.occupied.copy_(occupied)  # in place: captured CUDA graphs (pnr/render/graphed.py) read this buffer
        else:
            self.occupied = occupied
        self.version += 1

    def query(self, x: Tensor) -> Tensor:
        """Occupied? bool [N] for world points x: [N, 3] (False outside the box)."""
        r = self.resolution
        u = (x / self.bound + 1) * 0.5 * r
        inside = ((u >= 0) & (u < r)).all(-1)
        ijk = u.long().clamp_(0, r - 1)
        idx = ijk[:, 0] + ijk[:, 1] * r + ijk[:, 2] * r * r
        return self.occupied[idx] & inside

    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())

    def state_dict(self) -> dict:
        return {"density": self.density.clone(), "resolution": self.resolution, "bound": self.bound}

    def load_state_dict(self, sd: dict) -> None:
        r = int(sd["resolution"])
        self.cfg.resolution, self.bound = r, float(sd["bound"])
        self.density = sd["density"].to(self.device).float().clone()
        if self.density.numel() != r**3:
            raise ValueError(f"occupancy density has {self.density.numel()} cells, expected {r}^3")
        self._refresh()
