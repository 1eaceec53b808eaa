"""CUDA-graph replay of the render equals eager fixed-shape rendering, and follows in-place updates (GPU only)."""

import pytest
import torch

from pnr import rng
from pnr.render.cameras import generate_rays
from pnr.render.static import render_rays_static

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


def _grads(field):
    return {k: p.grad.clone() for k, p in field.named_parameters() if p.grad is not None}


def _eager(field, occ, cams, seed, budget, S):
    o, d = generate_rays(cams.to(field.device))
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    u = rng.rand((o.shape[0], S), torch.Generator().manual_seed(seed), o.device)
    return render_rays_static(field, o, d, occ, u, budget)["rgb"]


def test_graphed_render_matches_eager_and_tracks_parameter_updates():
    from pnr.render.graphed import GraphedRenderer
    from tests.field.spheres import fitted_spheres

    ds, field_cpu, occ_cpu, _, _ = fitted_spheres()
    import copy

    field = copy.deepcopy(field_cpu).cuda()
    occ = copy.deepcopy(occ_cpu).to("cuda")
    cams = ds.cams[:2]
    S = 32
    r = GraphedRenderer(field, occ, S)
    opt = torch.optim.Adam(field.parameters(), lr=1e-2)
    for it in range(3):  # the third call replays a captured graph after two in-place Adam steps
        field.zero_grad(set_to_none=True)
        rgb = r(cams, torch.Generator().manual_seed(it))
        rgb.square().mean().backward()
        g_graph = _grads(field)
        o, d = generate_rays(cams.to("cuda"))
        budget = r.budget(o.reshape(-1, 3), d.reshape(-1, 3))
        field.zero_grad(set_to_none=True)
        ref = _eager(field, occ, cams, it, budget, S)
        ref.square().mean().backward()
        g_ref = _grads(field)
        torch.testing.assert_close(rgb.reshape(-1, 3), ref, atol=1e-5, rtol=1e-5)
        assert set(g_graph) == set(g_ref)
        for k in g_ref:
            torch.testing.assert_close(g_graph[k], g_ref[k], atol=1e-5, rtol=1e-4)
        opt.step()
        occ.update(field, 0, force=True)  # in place: the captured graphs read the new occupancy
    assert len(r._graphs) >= 1


def test_graphed_fixed_render_matches_the_eager_centre_render():
    """θ_src's identity-term render (pnr.edit.guide.render_fixed on a GPU) replays the bin-centre static render, which
    equals volume.render(perturb=False) up to early ray termination; a second call at other cameras replays."""
    import copy

    from pnr.render.graphed import GraphedFixedRenderer, render_centres
    from pnr.render.volume import render
    from tests.field.spheres import fitted_spheres

    ds, field_cpu, occ_cpu, _, _ = fitted_spheres()
    field, occ = copy.deepcopy(field_cpu).cuda(), copy.deepcopy(occ_cpu).to("cuda")
    S = 32
    r = GraphedFixedRenderer(field, occ, S)
    for cams in (ds.cams[:2], ds.cams[2:4], ds.cams[:2]):
        rgb = r(cams)
        assert not rgb.requires_grad
        o, d = generate_rays(cams.to("cuda"))
        o, d = o.reshape(-1, 3), d.reshape(-1, 3)
        ref = render_centres(field, occ, S, r.budget(o, d), o, d)
        torch.testing.assert_close(rgb.reshape(-1, 3), ref, atol=1e-6, rtol=1e-6)
        with torch.no_grad():
            eager = render(field, cams, occ, num_samples=S)["rgb"]
        torch.testing.assert_close(rgb, eager, atol=2e-4, rtol=0)


def test_lazy_budget_render_equals_the_per_step_budget_render():
    """EditConfig.lazy_budget: the budget comes from earlier steps' counts; with no overflow the values and field
    gradients equal the per-step budget's (both keep every occupied sample)."""
    import copy

    from pnr.render.graphed import GraphedRenderer
    from tests.field.spheres import fitted_spheres

    ds, field_cpu, occ_cpu, _, _ = fitted_spheres()
    field, occ = copy.deepcopy(field_cpu).cuda(), copy.deepcopy(occ_cpu).to("cuda")
    S = 32
    step, lazy = GraphedRenderer(field, occ, S), GraphedRenderer(field, occ, S, lazy=True, refresh_every=2)
    for it, cams in enumerate((ds.cams[:2], ds.cams[2:4], ds.cams[4:6], ds.cams[:2], ds.cams[2:4])):
        out = []
        for r in (step, lazy):
            field.zero_grad(set_to_none=True)
            rgb = r(cams, torch.Generator().manual_seed(it))
            rgb.square().mean().backward()
            out.append((rgb.detach().clone(), _grads(field)))
        torch.testing.assert_close(out[1][0], out[0][0], atol=1e-5, rtol=1e-5)
        for k in out[0][1]:
            torch.testing.assert_close(out[1][1][k], out[0][1][k], atol=1e-5, rtol=1e-4)
    lazy.budgets.refresh()
    assert lazy.budgets.dropped == 0
