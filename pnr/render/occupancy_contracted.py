"""Occupancy grid over the contracted space of an unbounded field (pnr/field/contraction.py): the same cells,
EMA and thresholds as `OccupancyGrid`, laid over the contracted box [-2b, 2b]^3 instead of the world box, so
the far background gets cells too (as nerfacc's OccGridEstimator with a contraction). Points are contracted
before the cell lookup; cell centres are uncontracted before the field is evaluated there."""

from __future__ import annotations

import torch
from torch import Tensor

from pnr.field.contraction import contract, uncontract
from pnr.render.occupancy import OccupancyGrid


class ContractedOccupancyGrid(OccupancyGrid):
    contraction = "mipnerf360"

    def _cell_points(self, cells: Tensor, generator: torch.Generator | None) -> Tensor:
        c = super()._cell_points(cells, generator) * 2  # contracted coordinates in [-2b, 2b]^3
        return uncontract(c, self.bound)

    def query(self, x: Tensor) -> Tensor:
        return super().query(contract(x, self.bound) * 0.5)


def make_occupancy(resolution: int, bound: float, contraction: str = "none", device="cpu") -> OccupancyGrid:
    """The occupancy grid that fits a field with this contraction."""
    if contraction == "none":
        return OccupancyGrid(resolution, bound, device=device)
    return ContractedOccupancyGrid(resolution, bound, device=device)
