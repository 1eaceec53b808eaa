"""Hash encoding matches a naive per-corner reference of the documented semantics."""

import torch

from pnr.field.config import FieldConfig
from pnr.field.encoding import PRIMES, hash_encode, level_resolutions


def naive(x01, tables, resolutions):
    x01 = x01.clamp(0, 1)
    L, T, F = tables.shape
    out = torch.zeros(x01.shape[0], L * F, dtype=tables.dtype)
    for n in range(x01.shape[0]):
        for l, res in enumerate(resolutions):
            p = x01[n] * res
            c0 = torch.floor(p)
            w = p - c0
            for corner in range(8):
                o = [(corner >> a) & 1 for a in range(3)]
                g = [min(int(c0[a]) + o[a], res) for a in range(3)]
                if (res + 1) ** 3 <= T:
                    idx = g[0] + g[1] * (res + 1) + g[2] * (res + 1) ** 2
                else:
                    idx = (g[0] * PRIMES[0] ^ g[1] * PRIMES[1] ^ g[2] * PRIMES[2]) & (T - 1)
                wt = 1.0
                for a in range(3):
                    wt *= float(w[a]) if o[a] else 1 - float(w[a])
                out[n, l * F:(l + 1) * F] += wt * tables[l, idx]
    return out


def test_level_resolutions_follow_the_geometric_progression():
    r = level_resolutions(FieldConfig())
    assert r[0] == 16 and r[-1] == 2048 and len(r) == 16 and all(a < b for a, b in zip(r, r[1:]))


def test_matches_naive_reference_dense_and_hashed_levels():
    cfg = FieldConfig(levels=4, log2_table_size=10, base_resolution=4, max_resolution=64)
    res = level_resolutions(cfg)
    assert (res[0] + 1) ** 3 <= cfg.table_size < (res[-1] + 1) ** 3  # both index kinds exercised
    g = torch.Generator().manual_seed(0)
    tables = torch.randn(cfg.levels, cfg.table_size, 2, generator=g, dtype=torch.float64)
    x = torch.rand(40, 3, generator=g, dtype=torch.float64)
    x[0], x[1], x[2] = 0.0, 1.0, torch.tensor([1.2, -0.1, 0.5])  # boundaries and clamping
    assert torch.allclose(hash_encode(x, tables, res), naive(x, tables, res), atol=1e-12)


def test_gradients_reach_the_tables_at_touched_rows_only():
    cfg = FieldConfig.tiny()
    res = level_resolutions(cfg)
    tables = torch.zeros(cfg.levels, cfg.table_size, 2, requires_grad=True)
    hash_encode(torch.rand(5, 3), tables, res).sum().backward()
    touched = (tables.grad.abs().sum(-1) > 0).sum(-1)
    assert (touched > 0).all() and (touched <= 5 * 8).all()
