"""Random numbers on the compute device, reproducible from one CPU `torch.Generator`.

Why: the edit loop keeps a CPU generator so that a resumed run is bit-identical (its state goes into
state.pt). Drawing large tensors from it and copying them over costs milliseconds per step on a GPU
(e.g. 0.5 M jitter values per render). For a CUDA device we draw one 62-bit seed from the CPU generator
and sample on the device from a generator seeded with it: still a function of the CPU generator's
state, so runs stay reproducible and resumable. On the CPU nothing changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

_DEVICE_GENERATORS: dict[torch.device, torch.Generator] = {}


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    gd = _DEVICE_GENERATORS.get(device)
    if gd is None:
        gd = _DEVICE_GENERATORS[device] = torch.Generator(device=device)
    gd.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return gd


def rand(shape, generator: torch.Generator | None, device) -> Tensor:
    """U[0, 1) of `shape` on `device` (float32)."""
    device = torch.device(device)
    if device.type == "cpu" or generator is None:
        return torch.rand(shape, generator=generator).to(device)
    return torch.rand(shape, generator=_device_generator(generator, device), device=device)


def randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """N(0, 1) of `shape` on `device` (float32)."""
    device = torch.device(device)
    if device.type == "cpu" or generator is None:
        return torch.randn(shape, generator=generator).to(device)
    return torch.randn(shape, generator=_device_generator(generator, device), device=device)


def randint(high: int, shape, generator: torch.Generator | None, device) -> Tensor:
    """Integers in [0, high) of `shape` on `device` (int64)."""
    device = torch.device(device)
    if device.type == "cpu" or generator is None:
        return torch.randint(0, high, shape, generator=generator).to(device)
    return torch.randint(0, high, shape, generator=_device_generator(generator, device), device=device)
