import pytest
import torch

from pnr.errors import CheckpointError
from pnr.edit.perturb import perturb
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.field.init import init_params


def _src():
    cfg = FieldConfig.tiny()
    p = Field(cfg, seed=5).params_dict()
    return cfg, {k: v + 0.25 for k, v in p.items()}  # "trained": away from any init


def test_eta_zero_is_identity():
    cfg, src = _src()
    out = perturb(src, cfg, 0.0, seed=1)
    assert set(out) == set(src)
    for k in src:
        assert torch.equal(out[k], src[k])
        assert out[k].data_ptr() != src[k].data_ptr()  # a copy, the source stays untouched


def test_eta_one_is_fresh_init_with_that_seed():
    cfg, src = _src()
    fresh = init_params(cfg, seed=9)
    out = perturb(src, cfg, 1.0, seed=9)
    geometry = [k for k in fresh if not k.startswith("background")]
    assert len(geometry) >= 11  # hash tables + density and colour MLPs
    for k in geometry:
        assert torch.equal(out[k], fresh[k])
    other = perturb(src, cfg, 1.0, seed=10)
    assert not torch.equal(other["encoding_tables"], out["encoding_tables"])


def test_background_is_untouched_by_perturbation():
    """The authors perturb geometry.parameters() only: the background model stays the source's at any η."""
    cfg, src = _src()
    bg = [k for k in src if k.startswith("background")]
    assert bg  # FieldConfig.tiny() has a learned background
    for eta in (0.3, 1.0):
        out = perturb(src, cfg, eta, seed=2)
        for k in bg:
            assert torch.equal(out[k], src[k])


def test_intermediate_eta_is_lerp_of_every_geometry_tensor_and_seeded():
    cfg, src = _src()
    fresh = init_params(cfg, seed=3)
    out = perturb(src, cfg, 0.6, seed=3)
    for k in src:
        want = src[k] if k.startswith("background") else 0.4 * src[k] + 0.6 * fresh[k]
        assert torch.allclose(out[k], want, atol=1e-6)
    again = perturb(src, cfg, 0.6, seed=3)
    assert all(torch.equal(out[k], again[k]) for k in out)


def test_mismatched_field_config_is_a_clear_error():
    cfg, src = _src()
    other = FieldConfig.tiny()
    other.log2_table_size = 12
    with pytest.raises(CheckpointError, match="different field config"):
        perturb(src, other, 0.5, seed=0)
    with pytest.raises(ValueError):
        perturb(src, cfg, 1.5, seed=0)


def test_density_shift_makes_a_fresh_field_empty_instead_of_fog():
    """θ_0 of the field's own init is a box of uniform fog (density ~e^-1); with fresh_density_shift -4 the
    perturbation target is empty, the other θ_0 tensors are unchanged, and η = 0 is still the identity."""
    cfg, src = _src()
    x = torch.rand(4096, 3) * 1.6 - 0.8  # points inside the box
    fog, empty = Field(cfg), Field(cfg)
    fog.load_params_dict(perturb(src, cfg, 1.0, seed=4))
    empty.load_params_dict(perturb(src, cfg, 1.0, seed=4, density_shift=-4.0))
    with torch.no_grad():
        d_fog, d_empty = fog.density(x).mean().item(), empty.density(x).mean().item()
    assert d_fog > 0.2  # the fog a plain lerp moves toward
    assert d_empty < d_fog * 0.03  # ~e^-4 of it
    a, b = perturb(src, cfg, 1.0, seed=4), perturb(src, cfg, 1.0, seed=4, density_shift=-4.0)
    assert torch.allclose(b["density_b1"][0], a["density_b1"][0] - 4.0)
    assert all(torch.equal(a[k], b[k]) for k in a if k != "density_b1")
    assert torch.equal(b["density_b1"][1:], a["density_b1"][1:])
    ident = perturb(src, cfg, 0.0, seed=4, density_shift=-4.0)
    assert all(torch.equal(ident[k], src[k]) for k in src)
    half = perturb(src, cfg, 0.5, seed=4, density_shift=-4.0)
    assert torch.allclose(half["density_b1"][0], 0.5 * src["density_b1"][0] + 0.5 * (a["density_b1"][0] - 4.0))
