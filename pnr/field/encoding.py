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


def hash_encode_torch(x01: Tensor, tables: Tensor, resolutions: list[int] | tuple[int, ...]) -> Tensor:
    """x01: [N, 3] in [0, 1]; tables: [L, T, F] -> features [N, L*F] (differentiable w.r.t. tables).
    Corners are formed per axis ([N, 2] each) and broadcast to [N, 2, 2, 2] to keep memory small."""
    x01 = x01.clamp(0.0, 1.0).to(tables.dtype)
    N = x01.shape[0]
    L, T, F = tables.shape
    one = torch.tensor([0, 1], device=x01.device)
    outs = []
    for l, res in enumerate(resolutions):
        p = x01 * res
        c0f = torch.floor(p)
        w = p - c0f  # [N, 3]
        # x01 == 1 gives c0 = res; its "+1" corner has weight 0, clamp keeps the index in range
        g = (c0f.to(torch.int64)[:, :, None] + one).clamp_(max=res)  # [N, 3, 2]
        wa = torch.stack([1 - w, w], dim=-1)  # [N, 3, 2]
        wc = wa[:, 0, None, None, :] * wa[:, 1, None, :, None] * wa[:, 2, :, None, None]  # [N, 2(z), 2(y), 2(x)]
        if (res + 1) ** 3 <= T:
            ax = (g[:, 0], g[:, 1] * (res + 1), g[:, 2] * (res + 1) ** 2)
            idx = ax[0][:, None, None, :] + ax[1][:, None, :, None] + ax[2][:, :, None, None]
        else:
            ax = (g[:, 0] * PRIMES[0], g[:, 1] * PRIMES[1], g[:, 2] * PRIMES[2])
            idx = (ax[0][:, None, None, :] ^ ax[1][:, None, :, None] ^ ax[2][:, :, None, None]) & (T - 1)
        feats = tables[l].index_select(0, idx.reshape(-1)).view(N, 8, F)
        outs.append(torch.bmm(wc.reshape(N, 1, 8), feats)[:, 0])
    return torch.cat(outs, dim=-1)


def hash_encode(x01: Tensor, tables: Tensor, resolutions: list[int] | tuple[int, ...]) -> Tensor:
    """Hash-grid features [N, L*F] for points x01: [N, 3] in [0, 1] (see module docstring)."""
    # --- fused-kernel dispatch (pnr/field/encoding_triton.py) ---
    # CUDA fp32 + importable Triton -> fused forward/backward kernels; PNR_NO_TRITON=1 forces this file's path.
    if x01.is_cuda and tables.is_cuda:
        from pnr.field import encoding_triton

        if encoding_triton.available(x01, tables):
            return encoding_triton.hash_encode_fused(x01, tables, resolutions)
    # --- end fused-kernel dispatch ---
    return hash_encode_torch(x01, tables, resolutions)
