"""FieldConfig.density_activation / density_blob (issue 19): threestudio's softplus + blob_magic3d density prior.
Default off and exactly the old density; with it a fresh (and so an η = 1 perturbed) field is a central blob."""

from dataclasses import replace

import pytest
import torch

from pnr.edit.perturb import perturb
from pnr.errors import CheckpointError
from pnr.field.config import FIELD_PRESETS, FieldConfig, field_preset
from pnr.field.field import Field, trunc_exp
from tests.threads import _one_thread  # noqa: F401  (one torch thread: fast on a shared CPU)

NEW_KEYS = ("density_activation", "density_blob", "density_blob_scale", "density_blob_std")


def _blob_cfg(**kw) -> FieldConfig:
    return replace(FieldConfig.tiny(), **{"density_activation": "softplus", "density_blob": "magic3d", **kw})


def _box_points(n=6000, bound=1.0, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, generator=g) * 2 - 1) * bound


def _shells(f: Field, x: torch.Tensor) -> tuple[float, float]:
    """Mean density in the inner ball |x| < 0.3 bound and in the outer shell |x| > 0.8 bound (inside the box)."""
    with torch.no_grad():
        s = f.density(x)
    r = x.norm(dim=-1) / f.cfg.bound
    return float(s[r < 0.3].mean()), float(s[r > 0.8].mean())


def test_default_density_is_the_old_formula_exactly():
    f = Field(FieldConfig.tiny(), seed=1)
    x = _box_points(300)
    with torch.no_grad():
        h = torch.relu(f._encode(x) @ f.density_w0 + f.density_b0) @ f.density_w1 + f.density_b1
        ref = trunc_exp(h[:, 0] + f.cfg.density_bias)
        sigma, geo = f._density_head(x)
    assert torch.equal(sigma, ref) and torch.equal(geo, h[:, 1:])
    d = FieldConfig.tiny().to_dict()
    assert not set(NEW_KEYS) & set(d)  # configs, checkpoints and cache keys stay byte-identical
    assert "contraction" not in d


def test_fresh_blob_field_is_dense_at_the_centre_and_empty_at_the_box():
    for bound in (1.0, 2.0):  # std is in units of bound: the blob scales with the box
        f = Field(_blob_cfg(bound=bound), seed=0)
        x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]) * bound
        with torch.no_grad():
            centre, corner, face, face2 = f.density(x).tolist()
        assert centre > 5.0  # softplus(~scale + density_bias)
        assert centre > 1e6 * corner
        assert face < 1e-3 and face2 < 1e-3  # |x| = bound: bias -scale


def test_blob_activation_and_bias_by_hand():
    cfg = _blob_cfg(density_blob_scale=4.0, density_blob_std=0.7, density_bias=-0.5)
    f = Field(cfg, seed=2)
    x = _box_points(200)
    with torch.no_grad():
        h = torch.relu(f._encode(x) @ f.density_w0 + f.density_b0) @ f.density_w1 + f.density_b1
        raw = h[:, 0] - 0.5 + 4.0 * (1 - x.norm(dim=-1) / 0.7)
        assert torch.allclose(f._density_head(x)[0], torch.nn.functional.softplus(raw))
        # trunc_exp with the blob, softplus without it: the two options are independent
        te = Field(_blob_cfg(density_activation="trunc_exp"), seed=2)
        assert torch.allclose(te._density_head(x)[0], torch.exp(h[:, 0] - 1.0 + 10.0 * (1 - x.norm(dim=-1) / 0.5)))
        sp = Field(replace(FieldConfig.tiny(), density_activation="softplus"), seed=2)
        assert torch.allclose(sp._density_head(x)[0], torch.nn.functional.softplus(h[:, 0] - 1.0))


def test_perturbation_at_eta_1_fades_to_a_central_blob_not_fog():
    x = _box_points()
    for cfg, blob in ((_blob_cfg(), True), (FieldConfig.tiny(), False)):
        src = Field(cfg, seed=0)
        with torch.no_grad():
            src.density_b1[0] += 20.0  # a source that fills the box, overcoming the blob's -scale at its faces
        f = Field(cfg, seed=0)
        f.load_params_dict(perturb(src.params_dict(), cfg, 1.0, seed=7))
        inner, outer = _shells(f, x)
        if blob:
            assert inner > 2.0 and outer < 1e-3 * inner
        else:
            assert 0.5 < outer / inner < 2.0  # near-uniform fog
        # part way, the blob already empties the outer shell of the over-grown source; without it, uniform fog
        f.load_params_dict(perturb(src.params_dict(), cfg, 0.6, seed=7))
        inner, outer = _shells(f, x)
        assert _shells(src, x)[1] > 1.0
        if blob:
            assert outer < 0.05 * _shells(src, x)[1] and outer < 0.05 * inner
        else:
            assert 0.5 < outer / inner < 2.0


def test_config_round_trip_and_validation():
    for cfg in (FieldConfig.tiny(), _blob_cfg(), _blob_cfg(density_blob_scale=3.0, density_blob_std=0.25),
                FieldConfig.small_blob()):
        d = cfg.to_dict()
        assert FieldConfig.from_dict(d) == cfg
    d = _blob_cfg().to_dict()
    assert {k: d[k] for k in NEW_KEYS} == {"density_activation": "softplus", "density_blob": "magic3d",
                                           "density_blob_scale": 10.0, "density_blob_std": 0.5}  # written with the blob
    sp = FieldConfig(density_activation="softplus").to_dict()
    assert "density_activation" in sp and not {"density_blob", "density_blob_scale", "density_blob_std"} & set(sp)
    base = FieldConfig.tiny().to_dict()
    for bad, msg in (({"density_activation": "exp"}, "trunc_exp"), ({"density_blob": "dreamfusion"}, "magic3d"),
                     ({"density_blob_std": 0.0}, "> 0"), ({"density_blob_scale": "big"}, "finite")):
        with pytest.raises(CheckpointError, match=msg):
            FieldConfig.from_dict({**base, **bad})
    with pytest.raises(CheckpointError, match="softplus"):
        Field(replace(FieldConfig.tiny(), density_activation="relu"))


def test_small_blob_preset():
    assert "small_blob" in FIELD_PRESETS
    sb, s = field_preset("small_blob"), field_preset("small")
    assert (sb.density_activation, sb.density_blob) == ("softplus", "magic3d")
    assert replace(sb, density_activation="trunc_exp", density_blob="none") == s
    from pnr.bench.quality.run import field_config  # `bench/quality.py run --field small_blob`

    assert field_config("small_blob") == sb and field_config("small") == s


def test_blob_field_fits_a_small_scene():
    """A few hundred density + colour steps toward an analytic target (an off-centre sphere, coloured by side):
    the blob prior does not stop the field from fitting."""
    torch.manual_seed(0)
    cfg = _blob_cfg()
    f = Field(cfg, seed=0)
    opt = torch.optim.Adam(f.parameters(), lr=1e-2, eps=1e-15)
    g = torch.Generator().manual_seed(0)
    x_eval = _box_points(2000, seed=1)

    def target(x):
        inside = ((x - torch.tensor([0.3, 0.0, 0.0])).norm(dim=-1) < 0.4).float()
        rgb = torch.stack([(x[:, 0] > 0.3).float(), 0.5 * torch.ones_like(x[:, 0]), (x[:, 1] > 0).float()], -1)
        return 20.0 * inside, rgb

    def loss_of(x):
        d = torch.nn.functional.normalize(torch.ones_like(x), dim=-1)
        s, rgb = f.query(x, d)
        ts, trgb = target(x)
        w = (ts > 0).float()[:, None]
        return ((s - ts) ** 2).mean() / 100 + (w * (rgb - trgb) ** 2).mean()

    with torch.no_grad():
        first = float(loss_of(x_eval))
    for _ in range(250):
        x = (torch.rand(1024, 3, generator=g) * 2 - 1)
        opt.zero_grad()
        loss_of(x).backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_of(x_eval))
        s = f.density(torch.tensor([[0.3, 0.0, 0.0], [-0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])).tolist()
    assert last < first / 5
    assert s[0] > 10.0 and s[1] < 2.0  # the sphere is dense, the empty side of the old blob has been carved away
