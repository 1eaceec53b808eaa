"""Fused hash-grid encoding: CPU dispatch, level parameters, and (when Triton is installed) the kernels
themselves run through Triton's CPU interpreter against the torch reference."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pnr.field import encoding_triton as et
from pnr.field.encoding import corner_index, hash_encode, hash_encode_torch

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_dispatch_uses_reference_and_matches():
    torch.manual_seed(0)
    x = torch.rand(257, 3)
    tables = torch.randn(4, 2**10, 2, requires_grad=True)
    res = [4, 8, 16, 32]
    assert not et.available(x, tables)
    out = hash_encode(x, tables, res)
    ref = hash_encode_torch(x, tables, res)
    assert out.shape == (257, 8)
    assert torch.equal(out, ref)
    out.sum().backward()
    assert tables.grad is not None and tables.grad.abs().sum() > 0


def test_env_var_disables(monkeypatch):
    monkeypatch.setenv("PNR_NO_TRITON", "1")
    assert et.disabled_by_env()
    assert not et.available(torch.zeros(1, 3))
    monkeypatch.setenv("PNR_NO_TRITON", "0")
    assert not et.disabled_by_env()


def test_level_params_match_reference_dense_rule():
    T = 2**12
    res = [3, 7, 15, 16, 40]
    p = et.level_params(res, T)
    assert p.dtype == torch.int32 and p.shape == (5, 4)
    g = torch.tensor([[1, 2, 3]])
    for row, r in zip(p.tolist(), res):
        R, s1, s2, dense = row
        assert (R, s1, s2) == (r, r + 1, (r + 1) ** 2)
        assert dense == int((r + 1) ** 3 <= T)
        dense_idx = 1 + 2 * s1 + 3 * s2
        hashed = (1 ^ (2 * 2654435761) ^ (3 * 805459861)) & (T - 1)
        assert corner_index(g, r, T).item() == (dense_idx if dense else hashed)


def test_bad_shapes_rejected():
    with pytest.raises(ValueError):
        et._check(torch.zeros(4, 2), torch.zeros(2, 16, 2))
    with pytest.raises(ValueError):
        et._check(torch.zeros(4, 3), torch.zeros(2, 12, 2))  # table size not a power of two


_INTERP = textwrap.dedent(
    """
    import math, os, sys, torch
    from pnr.field import encoding_triton as et
    from pnr.field.encoding import hash_encode_torch
    torch.manual_seed(int(sys.argv[1]))
    L, T, F = 5, 2**10, int(sys.argv[2])
    res = [int(math.floor(3 * 1.9**l)) for l in range(L)]  # dense and hashed levels
    x = torch.rand(300, 3) * 1.2 - 0.1                        # some outside [0,1]: clamped
    x[:4] = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.5], [0.5, 1.0, 1.0]])
    tab = torch.randn(L, T, F, requires_grad=True)
    p = et.level_params(res, T)
    ref = hash_encode_torch(x, tab, res)
    out = torch.full_like(ref, float("nan"))                   # poisoned: every element must be written
    et.encode_forward(x, tab.detach(), p, out=out)
    col = et.encode_forward(x, tab.detach(), p, column_major=True)
    g = torch.randn_like(ref)
    ref.backward(g)
    gt = et.encode_backward(x, g, p, (L, T, F))
    gt_col = et.encode_backward(x, g.t().contiguous().t(), p, (L, T, F))
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    print(rel(out, ref), rel(col, ref), rel(gt, tab.grad), rel(gt_col, tab.grad))
    """
)


@pytest.mark.skipif(not et.HAS_TRITON, reason="triton not installed")
@pytest.mark.parametrize("seed,F", [(0, 2), (1, 4)])
def test_kernels_match_reference_in_triton_interpreter(seed, F):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", _INTERP, str(seed), str(F)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    errs = [float(v) for v in r.stdout.split()]
    assert len(errs) == 4
    for e in errs:
        assert e < 1e-5, errs
