"""Scene contraction (mip-NeRF 360): the map and its inverse, the contracted occupancy grid, the unbounded
sampler, checkpoints, and that contraction "none" leaves the bounded field exactly as it was."""

import torch

from pnr.field.checkpoint import load_checkpoint, save_checkpoint
from pnr.field.config import FieldConfig
from pnr.field.contraction import contract, uncontract, unit_coords
from pnr.field.field import Field
from pnr.render.occupancy import OccupancyGrid
from pnr.render.occupancy_contracted import ContractedOccupancyGrid, make_occupancy
from pnr.render.unbounded import bin_edges
from pnr.render.volume import render_rays


def test_contraction_keeps_the_ball_and_squeezes_the_rest_into_radius_two():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(2000, 3, generator=g), dim=-1) * torch.logspace(-2, 3, 2000)[:, None]
    c = contract(x, 1.0)
    inside = x.norm(dim=-1) <= 1
    assert torch.equal(c[inside], x[inside])
    n = c.norm(dim=-1)
    assert float(n.max()) < 2 and torch.allclose(n[~inside], 2 - 1 / x.norm(dim=-1)[~inside], atol=1e-5)
    assert torch.allclose(uncontract(c, 1.0), x, rtol=1e-3, atol=1e-5)  # round trip (up to the far clamp)
    # a bound of 2 scales everything
    assert torch.allclose(contract(x * 2, 2.0), c * 2, atol=1e-5)
    u = unit_coords(x, 1.0, "mipnerf360")
    assert float(u.min()) >= 0 and float(u.max()) <= 1


def test_contraction_none_is_the_old_field_exactly():
    x = torch.rand(500, 3) * 2.4 - 1.2
    d = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    f = Field(FieldConfig.tiny(), seed=3)
    assert "contraction" not in f.cfg.to_dict()  # bounded configs are written as before
    b = 1.0
    sigma, rgb = f.query(x, d)
    ref = f._density_head(x)[0] * (x.abs() <= b).all(-1)
    assert torch.equal(sigma, ref)  # 0 outside the box, as before
    u = Field(FieldConfig(**{**FieldConfig.tiny().to_dict(), "contraction": "mipnerf360"}), seed=3)
    su, _ = u.query(x * 50, d)
    assert bool((su > 0).all())  # the unbounded field is defined far outside the box
    assert FieldConfig.from_dict(u.cfg.to_dict()).contraction == "mipnerf360"


def test_contracted_grid_has_cells_for_the_far_background_and_survives_checkpoints(tmp_path):
    cfg = FieldConfig(**{**FieldConfig.tiny().to_dict(), "contraction": "mipnerf360"})
    f = Field(cfg)
    occ = make_occupancy(16, 1.0, "mipnerf360")
    assert isinstance(occ, ContractedOccupancyGrid) and isinstance(make_occupancy(16, 1.0), OccupancyGrid)
    occ.update(f, 0, generator=torch.Generator().manual_seed(0))
    far = torch.tensor([[30.0, 0.0, 0.0], [0.0, -200.0, 5.0]])
    assert bool(occ.query(far).all())  # fresh field: density everywhere, so far cells are occupied too
    occ.density.zero_()
    occ._refresh()
    occ.density[int(occ.density.numel() // 2 + 8 * 16 + 15)] = 100.0  # one cell on the +x edge of the contracted box
    occ._refresh()
    hit = occ.query(torch.tensor([[1000.0, 0.05, 0.05], [0.5, 0.05, 0.05]]))
    assert hit.tolist() == [True, False]
    save_checkpoint(tmp_path / "ck", f, occ, {})
    f2, occ2, _ = load_checkpoint(tmp_path / "ck")
    assert f2.cfg.contraction == "mipnerf360" and isinstance(occ2, ContractedOccupancyGrid)
    assert torch.equal(occ2.occupied, occ.occupied)


def test_unbounded_sampler_is_linear_in_the_ball_then_disparity_to_the_far_plane():
    o = torch.tensor([[0.0, 0.0, 0.0], [0.0, -3.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    e = bin_edges(o, d, 1.0, 8)
    assert torch.allclose(e[0, :5], torch.linspace(0, 1, 5)) and torch.allclose(e[1, :5], torch.linspace(0, 4, 5))
    assert torch.allclose(1 / e[0, 4:], torch.linspace(1, 1e-3, 5), atol=1e-6)
    assert bool((e[:, 1:] > e[:, :-1]).all()) and torch.allclose(e[:, -1], torch.full((2,), 1000.0), rtol=1e-4)
    cfg = FieldConfig(**{**FieldConfig.tiny().to_dict(), "contraction": "mipnerf360"})
    out = render_rays(Field(cfg), o, d, None, num_samples=16)
    assert out["rgb"].shape == (2, 3) and float(out["opacity"].min()) > 0.99  # a fresh field is foggy everywhere
    assert bool(torch.isfinite(out["depth"]).all()) and float(out["depth"].min()) > 0
