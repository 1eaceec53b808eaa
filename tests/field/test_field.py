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
