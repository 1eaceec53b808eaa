"""Field: seeded init (= P(theta0)), flat parameter dict, background models, gradients."""

import dataclasses

import pytest
import torch

from pnr.errors import CheckpointError
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.field.init import init_params
from pnr.render.cameras import orbit_cameras
from pnr.render.volume import render


def test_init_is_a_deterministic_function_of_the_seed():
    cfg = FieldConfig.tiny()
    a, b, c = init_params(cfg, 1), init_params(cfg, 1), init_params(cfg, 2)
    assert a.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)
    assert a["encoding_tables"].abs().max() <= 1e-4  # instant-ngp U(-1e-4, 1e-4)


def test_params_dict_round_trip_and_errors():
    cfg = FieldConfig.tiny()
    f, g = Field(cfg, seed=0), Field(cfg, seed=5)
    d = f.params_dict()
    assert d.keys() == init_params(cfg, 0).keys()
    assert all(torch.equal(d[k], v) for k, v in init_params(cfg, 0).items())
    d["color_b2"] += 1  # clones: editing the dict leaves the field alone
    assert not torch.equal(f.color_b2, d["color_b2"])
    g.load_params_dict(d)
    assert torch.equal(g.color_b2, d["color_b2"]) and torch.equal(g.encoding_tables, f.encoding_tables)
    with pytest.raises(CheckpointError, match="missing"):
        g.load_params_dict({k: v for k, v in d.items() if k != "density_w0"})
    with pytest.raises(CheckpointError, match="shape"):
        g.load_params_dict({**d, "density_w0": torch.zeros(3, 3)})


def test_backgrounds():
    dirs = torch.nn.functional.normalize(torch.randn(10, 3), dim=-1)
    fixed = Field(dataclasses.replace(FieldConfig.tiny(), background="fixed", background_color=(0.1, 0.2, 0.3)))
    assert not any(k.startswith("background") for k in fixed.params_dict())
    assert torch.allclose(fixed.background(dirs), torch.tensor([0.1, 0.2, 0.3]).expand(10, 3))
    learned = Field(FieldConfig.tiny())
    bg = learned.background(dirs[None])
    assert bg.shape == (1, 10, 3) and (bg > 0.85).all()  # starts near the configured white


def test_gradients_reach_every_parameter_group():
    f = Field(FieldConfig.tiny(), seed=0)
    out = render(f, orbit_cameras(2, res=8), num_samples=32)
    (out["rgb"].sum() + out["depth"].sum()).backward()
    for name, p in f.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_density_is_zero_outside_the_box():
    f = Field(FieldConfig.tiny())
    x = torch.tensor([[1.5, 0.0, 0.0], [0.0, 0.0, -1.01], [0.2, 0.1, 0.0]])
    s = f.density(x)
    assert s[0] == 0 and s[1] == 0 and s[2] > 0


def _sh_by_formula(d: torch.Tensor, n: int) -> torch.Tensor:
    """The band 0-3 real SH written out term by term (what sh_encode's coefficient matrix must equal)."""
    x, y, z = d.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    out = [torch.full_like(x, 0.28209479177387814), -0.4886025119029199 * y, 0.4886025119029199 * z,
           -0.4886025119029199 * x, 1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
           0.31539156525252005 * (2 * zz - xx - yy), -1.0925484305920792 * x * z, 0.5462742152960396 * (xx - yy),
           -0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * x * y * z,
           -0.4570457994644658 * y * (4 * zz - xx - yy), 0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
           -0.4570457994644658 * x * (4 * zz - xx - yy), 1.445305721320277 * z * (xx - yy),
           -0.5900435899266435 * x * (xx - 3 * yy)]
    return torch.stack(out[:n], dim=-1)


@pytest.mark.parametrize("n", [1, 4, 9, 16])
def test_sh_encode_matrix_form_equals_the_formulas(n):
    from pnr.field.field import sh_encode

    d = torch.nn.functional.normalize(torch.randn(5000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert torch.allclose(sh_encode(d, n), _sh_by_formula(d, n), atol=1e-12, rtol=0)
    assert torch.allclose(sh_encode(d.float(), n).double(), _sh_by_formula(d, n), atol=1e-6, rtol=0)
    # orthonormal on the sphere: the Monte-Carlo Gram matrix of 4π-weighted samples is ~ identity
    big = torch.nn.functional.normalize(torch.randn(400_000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), dim=-1)
    y = sh_encode(big, n)
    gram = 4 * torch.pi * (y.T @ y) / big.shape[0]
    assert torch.allclose(gram, torch.eye(n, dtype=torch.float64), atol=0.02)
