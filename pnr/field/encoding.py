"""Multiresolution hash encoding (instant-ngp, Müller et al. 2022, Sec. 3), torch reference.

Semantics (a Triton kernel must match them exactly):
- level l has resolution R_l = floor(base * b**l), b = exp((ln max_res - ln base) / (L - 1));
- p = x01 * R_l, c0 = floor(p), w = p - c0; the 8 corners c0 + {0,1}^3 have coords in [0, R_l];
- a corner's row: dense idx = gx + gy*(R_l+1) + gz*(R_l+1)^2 if (R_l+1)^3 <= T, else
  (gx*1 XOR gy*2654435761 XOR gz*805459861) & (T-1) in int64;
- trilinear interpolation of tables[l, idx]; output level-major [N, L*F]; inputs clamped to [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pnr.field.config import FieldConfig

PRIMES = (1, 2654435761, 805459861)  # instant-ngp's spatial hash primes


def level_resolutions(cfg: FieldConfig) -> list[int]:
    """R_l for every level: a geometric progression from base to max resolution."""
    L = cfg.levels
    if L == 1:
        return [int(cfg.base_resolution)]
    b = math.exp((math.log(cfg.max_resolution) - math.log(cfg.base_resolution)) / (L - 1))
    return [int(math.floor(cfg.base_resolution * b**l)) for l in range(L)]


def corner_index(g: Tensor, res: int, table_size: int) -> Tensor:
    """Row of the table for integer grid corners g: [..., 3] int64 (dense when the grid fits, else hashed)."""
    if (res + 1) ** 3 <= table_size:
        return g[..., 0] + g[..., 1] * (res + 1) + g[..., 2] * (res + 1) ** 2
    h = (g[..., 0] * PRIMES[0]) ^ (g[..., 1] * PRIMES[1]) ^ (g[..., 2] * PRIMES[2])
    return h & (table_size - 1)


_OFFSETS = torch.tensor([[(k >> 0) & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], dtype=torch.int64)


def hash_encode_torch(x01: Tensor, tables: Tensor, resolutions: list[int] | tuple[int, ...]) -> Tensor:
    """x01: [N, 3] in [0, 1]; tables: [L, T, F] -> features [N, L*F] (differentiable w.r.t. tables)."""
    x01 = x01.clamp(0.0, 1.0).to(tables.dtype)
    L, T, F = tables.shape
    offs = _OFFSETS.to(x01.device)  # [8, 3]
    outs = []
    for l, res in enumerate(resolutions):
        p = x01 * res
        c0 = torch.floor(p)
        w = p - c0  # [N, 3]
        c0 = c0.to(torch.int64).clamp_(0, res)  # x01 == 1 gives c0 = res; its +1 corner has weight 0
        g = c0[:, None, :] + offs[None]  # [N, 8, 3]
        g = g.clamp_(max=res)  # corners beyond the grid only ever get weight 0 (w == 0)
        idx = corner_index(g, res, T)  # [N, 8]
        wc = torch.where(offs[None].bool(), w[:, None, :], 1.0 - w[:, None, :]).prod(-1)  # [N, 8]
        feats = tables[l][idx]  # [N, 8, F]
        outs.append((wc[..., None] * feats).sum(1))
    return torch.cat(outs, dim=-1)


def hash_encode(x01: Tensor, tables: Tensor, resolutions: list[int] | tuple[int, ...]) -> Tensor:
    """Hash-grid features [N, L*F] for points x01: [N, 3] in [0, 1] (see module docstring)."""
    # --- fused-kernel dispatch (helper S, issue 9; pnr/field/encoding_triton.py) ---
    # CUDA fp32 + importable Triton -> fused forward/backward kernels; PNR_NO_TRITON=1 forces this file's path.
    if x01.is_cuda and tables.is_cuda:
        from pnr.field import encoding_triton

        if encoding_triton.available(x01, tables):
            return encoding_triton.hash_encode_fused(x01, tables, resolutions)
    # --- end fused-kernel dispatch ---
    return hash_encode_torch(x01, tables, resolutions)
