import sys
import types

import pytest
import torch

from pnr.errors import PnrError
from pnr.metrics.perceptual import perceptual_distance


def _pair(seed=0, n=2, res=48, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, res, res, generator=g)
    b = (a + noise * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


def test_identical_images_have_zero_distance():
    a, _ = _pair()
    d = perceptual_distance(a, a.clone())
    assert d.shape == (2,)
    assert torch.all(d.abs() < 1e-7)


def test_distance_grows_with_noise_and_is_symmetric():
    a, b1 = _pair(noise=0.03)
    _, b2 = _pair(noise=0.3)
    d1, d2 = perceptual_distance(a, b1), perceptual_distance(a, b2)
    assert torch.all(d1 > 0) and torch.all(d2 > 2 * d1)
    assert torch.allclose(perceptual_distance(b2, a), d2, rtol=1e-4, atol=1e-6)


def test_gradients_reach_both_inputs():
    a, b = _pair()
    a.requires_grad_(True)
    b.requires_grad_(True)
    perceptual_distance(a, b).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert b.grad is not None and b.grad.abs().sum() > 0
    # The network itself is frozen.
    from pnr.metrics.perceptual import get_perceptual_net

    assert not any(p.requires_grad for p in get_perceptual_net("alex", "cpu").parameters())


def test_bad_shapes_raise():
    a, b = _pair()
    with pytest.raises(PnrError):
        perceptual_distance(a, b[:1])
    with pytest.raises(PnrError):
        perceptual_distance(a[:, :, :16, :16], b[:, :, :16, :16])


def _import_reference():
    """Import stlpips' own implementation with its undeclared imports stubbed, then restore sys.modules."""
    names = ["IPython", "torchsummary", "torchvision", "torchvision.models"]
    saved = {n: sys.modules.get(n) for n in names}
    pkg_saved = {k: v for k, v in sys.modules.items() if k.startswith("stlpips_pytorch")}
    try:
        for n in names[:3]:
            if n in sys.modules:
                continue
            m = types.ModuleType(n)
            m.embed = m.summary = lambda *a, **k: None
            sys.modules[n] = m
        if not hasattr(sys.modules["torchvision"], "models"):
            tvm = types.ModuleType("torchvision.models")
            sys.modules["torchvision"].models = tvm
            sys.modules["torchvision.models"] = tvm
        from stlpips_pytorch import stlpips

        return stlpips
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
        for k in [k for k in sys.modules if k.startswith("stlpips_pytorch") and k not in pkg_saved]:
            if k != "stlpips_pytorch":
                sys.modules.pop(k, None)


def test_matches_stlpips_reference_implementation():
    try:
        stlpips = _import_reference()
    except Exception as e:  # pragma: no cover - only if the package layout changes
        pytest.skip(f"reference implementation not importable: {e}")
    ref = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False)
    a, b = _pair(seed=3, res=40, noise=0.2)
    with torch.no_grad():
        r = ref(a, b, normalize=True).flatten()
    d = perceptual_distance(a, b)
    assert torch.allclose(d, r, rtol=1e-4, atol=1e-6)
