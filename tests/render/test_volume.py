"""Volume rendering: box clipping, compositing, batching over cameras, occupancy skipping."""

import dataclasses

import torch

from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.render.cameras import orbit_cameras
from pnr.render.occupancy import OccupancyGrid
from pnr.render.volume import ray_box, render, render_rays
from tests.field.spheres import fitted_spheres


def test_ray_box():
    o = torch.tensor([[-3.0, 0.0, 0.0], [-3.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    near, far, hit = ray_box(o, d, 1.0)
    assert hit.tolist() == [True, False, True]
    assert torch.allclose(near[[0, 2]], torch.tensor([2.0, 0.0])) and torch.allclose(far[[0, 2]], torch.tensor([4.0, 1.0]))


def test_empty_field_shows_background_and_opaque_field_hides_it():
    cfg = dataclasses.replace(FieldConfig.tiny(), background="fixed", background_color=(0.2, 0.4, 0.6))
    f = Field(cfg)
    with torch.no_grad():
        f.density_b1[0] = -30.0  # sigma ~ 0 everywhere
    cams = orbit_cameras(2, res=6)
    out = render(f, cams, num_samples=16)
    assert out["opacity"].abs().max() < 1e-6
    assert torch.allclose(out["rgb"], torch.tensor([0.2, 0.4, 0.6]).expand(2, 6, 6, 3), atol=1e-5)
    with torch.no_grad():
        f.density_b1[0] = 8.0  # very dense box: every ray that enters it is opaque
    out = render(f, cams, num_samples=64)
    assert out["opacity"].min() > 0.999  # the box fills the 40-degree view at radius 3
    # early termination: opaque rays stop after their first segment
    assert out["samples_per_ray"] <= 32 + 1e-6
    assert (out["depth"] > 1.5).all() and (out["depth"] < 2.6).all()  # box surface ~2 units from the camera


def test_batched_cameras_equal_single_renders():
    f = Field(FieldConfig.tiny(), seed=1)
    cams = orbit_cameras(3, res=5)
    with torch.no_grad():
        both = render(f, cams, num_samples=24)["rgb"]
        one = torch.cat([render(f, cams[i], num_samples=24)["rgb"] for i in range(3)])
        chunked = render(f, cams, num_samples=24, chunk=7)["rgb"]
    assert torch.allclose(both, one, atol=1e-6) and torch.allclose(both, chunked, atol=1e-6)


def test_render_rays_bg_override():
    f = Field(FieldConfig.tiny())
    o = torch.tensor([[0.0, 5.0, 5.0]])
    d = torch.tensor([[0.0, 1.0, 0.0]])  # misses the box
    out = render_rays(f, o, d, bg_color=torch.tensor([0.3, 0.2, 0.1]))
    assert torch.allclose(out["rgb"], torch.tensor([[0.3, 0.2, 0.1]])) and out["opacity"].item() == 0


def test_occupancy_skipping_changes_renders_by_less_than_1e3():
    ds, field, occ, _, _ = fitted_spheres()
    assert occ.occupied_fraction() < 0.5  # the grid really skips space
    cams = ds.cams[:3]
    with torch.no_grad():
        full = render(field, cams, None, num_samples=64)
        skip = render(field, cams, occ, num_samples=64)
    assert (full["rgb"] - skip["rgb"]).abs().mean() < 1e-3
    assert skip["samples_per_ray"] < 0.5 * full["samples_per_ray"]


def test_occupancy_grid_update_mark_all_and_state():
    ds, field, occ, _, _ = fitted_spheres()
    g = OccupancyGrid(16, 1.0)
    assert g.occupied_fraction() == 1.0
    g.update(field, 0)
    frac = g.occupied_fraction()
    assert 0.0 < frac < 0.6
    # the sphere centres are occupied, the box corners are not
    assert g.query(torch.tensor([[0.35, 0.0, 0.0]])).all()
    assert not g.query(torch.tensor([[0.95, 0.95, 0.95], [-0.95, 0.95, -0.95]])).any()
    assert not g.query(torch.tensor([[1.5, 0.0, 0.0]])).any()  # outside the box
    assert not g.update(field, 5)  # only every `update_every` steps
    h = OccupancyGrid(16, 1.0)
    h.load_state_dict(g.state_dict())
    assert torch.equal(h.occupied, g.occupied)
    g.mark_all()
    assert g.occupied_fraction() == 1.0
