"""Fixed-shape rendering equals the dynamic renderer when its budget covers the occupied samples."""

import torch

from pnr.render.cameras import generate_rays
from pnr.render.static import occupied_samples, render_rays_static
from pnr.render.volume import render_rays
from tests.field.spheres import fitted_spheres


def _rays(ds, n_cams=2):
    o, d = generate_rays(ds.cams[:n_cams])
    return o.reshape(-1, 3), d.reshape(-1, 3)


def test_static_render_equals_dynamic_render_values_and_gradients():
    ds, field, occ, _, _ = fitted_spheres()
    o, d = _rays(ds)
    S = 32
    need = int(occupied_samples(o, d, field.cfg.bound, occ, S))
    assert 0 < need < 0.5 * o.shape[0] * S  # the grid really skips samples
    u = torch.full((o.shape[0], S), 0.5)

    def grads(out):
        field.zero_grad()
        (out["rgb"].sum() + out["depth"].sum()).backward()
        return {k: p.grad.clone() for k, p in field.named_parameters() if p.grad is not None}

    ref = render_rays(field, o, d, occ, num_samples=S, segment=S, t_eps=0.0)
    g_ref = grads(ref)
    out = render_rays_static(field, o, d, occ, u, budget=need + 100)
    g_out = grads(out)
    assert int(out["dropped"]) == 0
    for k in ("rgb", "opacity", "depth"):
        assert torch.allclose(out[k], ref[k], atol=1e-5), k
    assert set(g_out) == set(g_ref)
    for k in g_ref:
        assert torch.allclose(g_out[k], g_ref[k], atol=1e-4, rtol=1e-4), k


def test_a_short_budget_drops_samples_and_says_so():
    ds, field, occ, _, _ = fitted_spheres()
    o, d = _rays(ds, 1)
    S = 32
    need = int(occupied_samples(o, d, field.cfg.bound, occ, S))
    u = torch.full((o.shape[0], S), 0.5)
    with torch.no_grad():
        full = render_rays_static(field, o, d, occ, u, budget=need)
        short = render_rays_static(field, o, d, occ, u, budget=need // 2)
    assert int(full["dropped"]) == 0 and int(short["dropped"]) == need - need // 2
    assert (short["opacity"] < full["opacity"] - 1e-3).any()  # the dropped samples are missing


def test_centre_render_equals_the_eager_render_without_jitter():
    """render_centres (what GraphedFixedRenderer replays for θ_src's identity views) = volume.render(perturb=False)
    up to early ray termination, with the exact occupied-sample budget and with a larger one."""
    from pnr.render.cameras import generate_rays
    from pnr.render.graphed import render_centres
    from pnr.render.static import occupied_samples
    from pnr.render.volume import render
    from tests.field.spheres import fitted_spheres

    ds, field, occ, _, _ = fitted_spheres()
    cams, S = ds.cams[:2], 32
    o, d = generate_rays(cams)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    need = int(occupied_samples(o, d, field.cfg.bound, occ, S))
    assert 0 < need < o.shape[0] * S  # the grid skips samples, so the budget matters
    with torch.no_grad():
        eager = render(field, cams, occ, num_samples=S)["rgb"].reshape(-1, 3)
        for budget in (need, 2 * need):
            torch.testing.assert_close(render_centres(field, occ, S, budget, o, d), eager, atol=2e-4, rtol=0)
        short = render_centres(field, occ, S, need // 2, o, d)  # a budget too small drops samples: visibly different
    assert (short - eager).abs().max() > 1e-2
