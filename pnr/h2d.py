"""Host-to-device copies that do not stall the host.

Why: CUDA makes a copy from pageable host memory wait until every kernel queued before it has run (the copy goes
through a staging buffer), so a small CPU tensor moved with `.to("cuda")` inside a step — the step's cameras, its
timesteps — lets the host queue nothing more until the GPU has caught up: host and GPU stop overlapping. A copy from
pinned memory with `non_blocking=True` is queued on the stream like a kernel instead. The values are the same; torch
keeps the pinned buffer alive until the copy has run.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_device(x: Tensor, device) -> Tensor:
    """`x.to(device)` with the same values; CPU -> CUDA through pinned memory, queued, without a host sync."""
    device = torch.device(device)
    if device.type != "cuda" or x.device.type != "cpu" or x.requires_grad:  # (a tensor with grad: the plain path)
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)
