"""Fused Triton hash-grid encoding: forward and backward in one kernel each.

Computes exactly `pnr.field.encoding.hash_encode` (the torch reference): for every point and level,
the 8 trilinear corners are indexed (dense when the level's grid fits the table, spatial hash
otherwise), gathered and blended in registers, so no [N, L, 8, F] intermediate touches memory.
The backward scatters w * grad_out into the table gradient with atomic adds; x gets no gradient.

Layout choice (see docs/speed.md): one program = BLOCK points x LPP levels, grid = (point blocks,
level groups) with the point axis fastest, so the blocks running at one moment touch one level's
table (4 MiB at 2^19 x 2 fp32) and its gathers/atomics stay in L2.

Use `available()` to ask whether the fused path can run; `hash_encode_fused` is the autograd op.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch
from torch import Tensor

from pnr.env import env_flag

try:  # Triton is optional: CPU installs and old GPUs use the torch reference.
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

    HAS_TRITON = True
except Exception:  # pragma: no cover - depends on the install
    triton = None
    tl = None
    HAS_TRITON = False

PRIME_Y = 2654435761
PRIME_Z = 805459861

# Launch configuration measured best on the H100 (bench/hashgrid_speed.py, docs/speed.md).
FWD_CONFIG = dict(BLOCK=256, LPP=1, num_warps=4)
BWD_CONFIG = dict(BLOCK=256, LPP=4, num_warps=4)  # 4 levels per program: 1.858 vs 1.949 ms (H100, docs/speed.md)


def disabled_by_env() -> bool:
    return env_flag("PNR_NO_TRITON", yes=None)


def available(*tensors: Tensor) -> bool:
    """True when the fused op can run on these tensors (CUDA fp32, Triton importable, not disabled)."""
    if not HAS_TRITON or disabled_by_env():
        return False
    return all(t.is_cuda and t.dtype == torch.float32 for t in tensors)


def level_params(resolutions, table_size: int) -> Tensor:
    """[L, 4] int32 rows (R, R+1, (R+1)^2, dense): what the kernels need per level, on the CPU."""
    rows = []
    for r in [int(v) for v in resolutions]:
        s = r + 1
        rows.append((r, s, s * s, int(s**3 <= table_size)))
    return torch.tensor(rows, dtype=torch.int32)


@lru_cache(maxsize=64)
def _level_params_on(res_key: tuple, table_size: int, device: str) -> Tensor:
    return level_params(res_key, table_size).to(device)


def _res_key(resolutions) -> tuple:
    if isinstance(resolutions, Tensor):
        return tuple(int(v) for v in resolutions.tolist())
    return tuple(int(v) for v in resolutions)


if HAS_TRITON:
    _PRIME_Y = tl.constexpr(PRIME_Y)
    _PRIME_Z = tl.constexpr(PRIME_Z)

    if os.environ.get("TRITON_INTERPRET", "0") == "1":  # CPU interpreter (tests): numpy never contracts

        @triton.jit
        def _mul_rn(a, b):
            return a * b

    else:

        @triton.jit
        def _mul_rn(a, b):
            return libdevice.mul_rn(a, b)

    @triton.jit
    def _level_setup(x, y, z, PARAMS, l, TMASK):
        """Corner base indices (uint32 per-axis terms) and weights for one level; mirrors the reference."""
        r = tl.load(PARAMS + l * 4 + 0)
        s1 = tl.load(PARAMS + l * 4 + 1)
        s2 = tl.load(PARAMS + l * 4 + 2)
        dense = tl.load(PARAMS + l * 4 + 3) != 0
        rf = r.to(tl.float32)
        # p = x*R rounded to fp32 as in torch: an explicit round-to-nearest multiply stops the compiler
        # from contracting p - floor(p) into an fma on the unrounded product (w off by ~R*6e-8)
        px = _mul_rn(x, rf)
        py = _mul_rn(y, rf)
        pz = _mul_rn(z, rf)
        fx = tl.floor(px)
        fy = tl.floor(py)
        fz = tl.floor(pz)
        wx = px - fx
        wy = py - fy
        wz = pz - fz
        gx = fx.to(tl.int32).to(tl.uint32)
        gy = fy.to(tl.int32).to(tl.uint32)
        gz = fz.to(tl.int32).to(tl.uint32)
        # per-axis index terms; dense combines them with +, hashed with xor then mask
        my = tl.where(dense, s1.to(tl.uint32), tl.full([], _PRIME_Y, tl.uint32))
        mz = tl.where(dense, s2.to(tl.uint32), tl.full([], _PRIME_Z, tl.uint32))
        ru = r.to(tl.uint32)  # the +1 corner is clamped to R (x01 == 1: it has weight 0), as in the reference
        ax0 = gx
        ax1 = tl.minimum(gx + 1, ru)
        ay0 = gy * my
        ay1 = tl.minimum(gy + 1, ru) * my
        az0 = gz * mz
        az1 = tl.minimum(gz + 1, ru) * mz
        return dense, ax0, ax1, ay0, ay1, az0, az1, wx, wy, wz

    @triton.jit
    def _corner(dense, a, b, c, TMASK):
        h = (a ^ b ^ c) & TMASK
        d = a + b + c
        return tl.where(dense, d, h).to(tl.int32)

    @triton.jit
    def _fwd_kernel(X, TAB, PARAMS, OUT, N, T, TMASK, stride_on, stride_oc,
                    F: tl.constexpr, LPP: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        lg = tl.program_id(1)
        n = pid * BLOCK + tl.arange(0, BLOCK)
        m = n < N
        x = tl.minimum(tl.maximum(tl.load(X + n * 3 + 0, mask=m, other=0.0), 0.0), 1.0)
        y = tl.minimum(tl.maximum(tl.load(X + n * 3 + 1, mask=m, other=0.0), 0.0), 1.0)
        z = tl.minimum(tl.maximum(tl.load(X + n * 3 + 2, mask=m, other=0.0), 0.0), 1.0)
        f = tl.arange(0, F)
        m2 = m[:, None]
        for i in tl.static_range(LPP):
            l = lg * LPP + i
            dense, ax0, ax1, ay0, ay1, az0, az1, wx, wy, wz = _level_setup(x, y, z, PARAMS, l, TMASK)
            base = TAB + l * T * F + f[None, :]
            acc = tl.zeros([BLOCK, F], dtype=tl.float32)
            for c in tl.static_range(8):
                a = ax1 if (c & 1) else ax0
                b = ay1 if (c & 2) else ay0
                cz = az1 if (c & 4) else az0
                w = (wx if (c & 1) else 1.0 - wx) * (wy if (c & 2) else 1.0 - wy)
                w = w * (wz if (c & 4) else 1.0 - wz)
                idx = _corner(dense, a, b, cz, TMASK)
                v = tl.load(base + idx[:, None] * F, mask=m2, other=0.0)
                acc += w[:, None] * v
            tl.store(OUT + n[:, None] * stride_on + (l * F + f[None, :]) * stride_oc, acc, mask=m2)

    @triton.jit
    def _bwd_kernel(X, GTAB, PARAMS, GOUT, N, T, TMASK, stride_gn, stride_gc,
                    F: tl.constexpr, LPP: tl.constexpr, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        lg = tl.program_id(1)
        n = pid * BLOCK + tl.arange(0, BLOCK)
        m = n < N
        x = tl.minimum(tl.maximum(tl.load(X + n * 3 + 0, mask=m, other=0.0), 0.0), 1.0)
        y = tl.minimum(tl.maximum(tl.load(X + n * 3 + 1, mask=m, other=0.0), 0.0), 1.0)
        z = tl.minimum(tl.maximum(tl.load(X + n * 3 + 2, mask=m, other=0.0), 0.0), 1.0)
        f = tl.arange(0, F)
        m2 = m[:, None]
        for i in tl.static_range(LPP):
            l = lg * LPP + i
            dense, ax0, ax1, ay0, ay1, az0, az1, wx, wy, wz = _level_setup(x, y, z, PARAMS, l, TMASK)
            g = tl.load(GOUT + n[:, None] * stride_gn + (l * F + f[None, :]) * stride_gc, mask=m2, other=0.0)
            base = GTAB + l * T * F + f[None, :]
            for c in tl.static_range(8):
                a = ax1 if (c & 1) else ax0
                b = ay1 if (c & 2) else ay0
                cz = az1 if (c & 4) else az0
                w = (wx if (c & 1) else 1.0 - wx) * (wy if (c & 2) else 1.0 - wy)
                w = w * (wz if (c & 4) else 1.0 - wz)
                idx = _corner(dense, a, b, cz, TMASK)
                tl.atomic_add(base + idx[:, None] * F, w[:, None] * g, mask=m2, sem="relaxed")


def _check(x01: Tensor, tables: Tensor) -> tuple[int, int, int]:
    L, T, F = tables.shape
    if x01.ndim != 2 or x01.shape[1] != 3:
        raise ValueError(f"x01 must be [N, 3], got {tuple(x01.shape)}")
    if T & (T - 1):
        raise ValueError(f"table size must be a power of two, got {T}")
    if F & (F - 1):
        raise ValueError(f"features per level must be a power of two for the fused op, got {F}")
    if L * T * F >= 2**31:
        raise ValueError("tables too large for int32 offsets")
    return L, T, F


def encode_forward(x01: Tensor, tables: Tensor, params: Tensor, out: Tensor | None = None,
                   column_major: bool = False, BLOCK: int | None = None, LPP: int | None = None,
                   num_warps: int | None = None) -> Tensor:
    """Launch the forward kernel. out: [N, L*F] (row-major, or a transposed view when column_major)."""
    L, T, F = _check(x01, tables)
    N = x01.shape[0]
    BLOCK = BLOCK or FWD_CONFIG["BLOCK"]
    LPP = LPP or FWD_CONFIG["LPP"]
    num_warps = num_warps or FWD_CONFIG["num_warps"]
    if L % LPP:
        LPP = 1
    if out is None:
        if column_major:
            out = torch.empty(L * F, N, device=x01.device, dtype=torch.float32).t()
        else:
            out = torch.empty(N, L * F, device=x01.device, dtype=torch.float32)
    if N == 0:
        return out
    grid = (triton.cdiv(N, BLOCK), L // LPP)
    _fwd_kernel[grid](x01, tables, params, out, N, T, T - 1, out.stride(0), out.stride(1),
                      F=F, LPP=LPP, BLOCK=BLOCK, num_warps=num_warps)
    return out


def encode_backward(x01: Tensor, grad_out: Tensor, params: Tensor, shape: tuple[int, int, int],
                    grad_tables: Tensor | None = None, BLOCK: int | None = None, LPP: int | None = None,
                    num_warps: int | None = None) -> Tensor:
    """Launch the backward kernel: grad_tables[l, idx] += w * grad_out (fp32 atomics)."""
    L, T, F = shape
    N = x01.shape[0]
    BLOCK = BLOCK or BWD_CONFIG["BLOCK"]
    LPP = LPP or BWD_CONFIG["LPP"]
    num_warps = num_warps or BWD_CONFIG["num_warps"]
    if L % LPP:
        LPP = 1
    if grad_tables is None:
        grad_tables = torch.zeros(L, T, F, device=x01.device, dtype=torch.float32)
    if N == 0:
        return grad_tables
    grid = (triton.cdiv(N, BLOCK), L // LPP)
    _bwd_kernel[grid](x01, grad_tables, params, grad_out, N, T, T - 1, grad_out.stride(0), grad_out.stride(1),
                      F=F, LPP=LPP, BLOCK=BLOCK, num_warps=num_warps)
    return grad_tables


class _HashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x01: Tensor, tables: Tensor, params: Tensor, column_major: bool):
        x01 = x01.contiguous()
        tables = tables.contiguous()
        out = encode_forward(x01, tables, params, column_major=column_major)
        ctx.save_for_backward(x01, params)
        ctx.shape = tuple(tables.shape)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x01, params = ctx.saved_tensors
        if not ctx.needs_input_grad[1]:
            return None, None, None, None
        grad = encode_backward(x01, grad_out, params, ctx.shape)
        return None, grad, None, None


def hash_encode_fused(x01: Tensor, tables: Tensor, resolutions, column_major: bool = True) -> Tensor:
    """Fused equivalent of the reference `hash_encode` -> [N, L*F] fp32 (CUDA only).

    column_major=True (default) returns a transposed view of an [L*F, N] buffer: same values and
    shape, strides (1, N). Its stores are coalesced (forward 1.6x faster on the H100, docs/speed.md)
    and a following matmul / nn.Linear consumes it without a copy; callers needing `.view` must
    call `.contiguous()` first.
    """
    L, T, F = _check(x01, tables)
    params = _level_params_on(_res_key(resolutions), T, str(x01.device))
    if params.shape[0] != L:
        raise ValueError(f"{params.shape[0]} resolutions for {L} levels")
    return _HashEncode.apply(x01.float(), tables, params, column_major)
