import math

import torch

from pnr.metrics.image_metrics import a_lpips, lpips_mean, psnr, render_sanity


def _frames(n=3, res=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.ones(n, 3, res, res)
    f[:, :, 8:24, 8:24] = torch.rand(n, 3, 1, 1, generator=g)
    return f


def test_identical_renders_give_zero_distance_and_infinite_psnr():
    f = _frames()
    assert lpips_mean(f, f.clone()) < 1e-7
    assert psnr(f, f.clone()) == math.inf
    static = f[:1].expand(4, -1, -1, -1).contiguous()
    assert a_lpips(static) < 1e-7
    assert a_lpips(f) > 1e-3  # frames that change are not consistent


def test_psnr_known_value_and_uint8_input():
    a = torch.full((2, 3, 32, 32), 0.5)
    assert abs(psnr(a, a + 0.1) - 20.0) < 1e-4  # mse 0.01 -> 20 dB
    u8 = (a.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    assert abs(psnr(u8, a) - psnr(a, a)) < 1e-9 or psnr(u8, a) > 40


def test_render_sanity_flags_empty_exploded_and_nan():
    ref = _frames()
    assert render_sanity(ref, ref)["success"]
    empty = torch.ones_like(ref)
    r = render_sanity(empty, ref)
    assert r["empty"] and not r["success"]
    exploded = torch.zeros_like(ref)
    r = render_sanity(exploded, ref)
    assert r["exploded"] and not r["success"]
    bad = ref.clone()
    bad[0, 0, 10, 10] = float("nan")
    r = render_sanity(bad, ref)
    assert not r["finite"] and not r["success"]
