import math

import torch

from pnr.metrics.image_metrics import a_lpips, foreground_fraction, lpips_mean, psnr, render_sanity


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


def test_render_sanity_faint_background_tint_is_not_exploded():
    """Regression (issue 7): a regen (η = 1) field keeps a thin haze in empty space, ~6-14% off the source's
    white; v1 measured coverage against the source's background, read every pixel as object (coverage 1.0)
    and flagged the edit as exploded although the object had the source's size."""
    ref = _frames(res=64)  # object: 16x16 of 64x64 pixels
    g = torch.Generator().manual_seed(1)
    tinted = ref.clone()
    bgmask = (ref == 1.0).all(1, keepdim=True).expand_as(ref)
    haze = 0.9 + 0.01 * torch.rand(ref.shape, generator=g)  # faint, slightly mottled bluish-gray haze
    haze[:, 2] += 0.05
    tinted[bgmask] = haze[bgmask]
    r = render_sanity(tinted, ref)
    assert r["success"] and not r["exploded"] and not r["empty"], r
    assert abs(r["coverage"] - r["reference_coverage"]) < 0.02 and 0.05 < r["haze"] < 0.15
    assert foreground_fraction(tinted).mean() == 1.0  # what v1 read as coverage -> "exploded"
    # the same haze around an object 5x the source's area is still exploded
    big = tinted.clone()
    big[:, :, 4:40, 4:40] = ref[:, :, 16:17, 16:17]
    r = render_sanity(big, ref)
    assert r["exploded"] and r["coverage"] > 3 * r["reference_coverage"] and r["haze"] < 0.25
    # opaque fog over the whole frame (the border itself covered) is exploded even with a visible object
    fog = ref.clone()
    fog[bgmask] = 0.55
    r = render_sanity(fog, ref)
    assert r["exploded"] and r["haze"] > 0.25 and not r["success"]
