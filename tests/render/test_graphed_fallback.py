"""A failed CUDA-graph capture falls back to the same static render run eagerly (runs on the CPU: the capture is
replaced by a stand-in that fails as the driver did on the H200)."""

import copy
import warnings

import pytest
import torch

from pnr import rng
from pnr.render.cameras import generate_rays
from pnr.render.graphed import GraphedRenderer
from pnr.render.static import render_rays_static

CAPTURE_ERROR = "CUDA error: operation failed due to a previous error during capture"


def _setup():
    from tests.field.spheres import fitted_spheres

    ds, field, occ, _, _ = fitted_spheres()
    return ds.cams[:1], copy.deepcopy(field), occ


def test_capture_failing_twice_renders_eagerly_with_the_same_result(monkeypatch):
    cams, field, occ = _setup()
    calls = []

    def failing_capture(module, args, **kw):
        calls.append(1)
        raise RuntimeError(CAPTURE_ERROR)

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", failing_capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    r = GraphedRenderer(field, occ, num_samples=16)
    with pytest.warns(RuntimeWarning, match="capture of the render failed twice"):
        rgb = r(cams, torch.Generator().manual_seed(3))
    assert len(calls) == 2 and r.eager_fallbacks == 1
    o, d = generate_rays(cams)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    u = rng.rand((o.shape[0], 16), torch.Generator().manual_seed(3), o.device)
    ref = render_rays_static(field, o, d, occ, u, r.budget(o, d))["rgb"]
    torch.testing.assert_close(rgb.reshape(-1, 3), ref)
    rgb.sum().backward()  # the fallback is differentiable w.r.t. the field
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in field.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same shape again: the fallback is kept, no second capture or warning
        r(cams, torch.Generator().manual_seed(3))
    assert len(calls) == 2


def test_capture_failing_once_is_retried(monkeypatch):
    cams, field, occ = _setup()
    calls = []

    def flaky_capture(module, args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(CAPTURE_ERROR)
        return module  # stands in for the graphed callable

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", flaky_capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    r = GraphedRenderer(field, occ, num_samples=16)
    r(cams, torch.Generator().manual_seed(0))
    assert len(calls) == 2 and r.eager_fallbacks == 0


def test_other_errors_are_not_swallowed(monkeypatch):
    cams, field, occ = _setup()

    def broken(module, args, **kw):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        GraphedRenderer(field, occ, num_samples=16)(cams, None)
