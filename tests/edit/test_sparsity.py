"""The opacity penalty (pnr/edit/sparsity.py, EditConfig.lambda_sparsity): what it measures, that it reaches the
field's density, that it shrinks what an edit leaves occupied, and that it is off by default."""

import dataclasses

import pytest
import torch

from pnr.edit.config import EditConfig
from pnr.edit.loop import edit
from pnr.edit.run import make_guide
from pnr.edit.sparsity import opacity_penalty
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.settings import ConfigError
from tests.edit.toy_prior import ToyDenoiser


def _field(bias: float) -> Field:
    return Field(dataclasses.replace(FieldConfig.tiny(), density_bias=bias), seed=4)


def test_penalty_is_the_occupied_fraction_of_the_box_and_reaches_the_density():
    g = torch.Generator().manual_seed(0)
    full, empty = _field(8.0), _field(-12.0)  # sigma ~e^8 everywhere vs ~0
    assert opacity_penalty(full, g, num_samples=8) > 0.99
    assert opacity_penalty(empty, g, num_samples=8) < 1e-3
    f = Field(FieldConfig.tiny(), seed=4)
    p = opacity_penalty(f, g, num_samples=8)
    p.backward()
    grads = {n: q.grad for n, q in f.named_parameters()}
    assert grads["density_b1"].abs().sum() > 0 and grads["encoding_tables"].abs().sum() > 0
    assert all(grads[n] is None or grads[n].abs().sum() == 0 for n in grads if n.startswith("color"))


def _edit(lam: float, **kw) -> Field:
    cfg = EditConfig(method="sds", search_steps=0, edit_steps=30, revise_steps=0, res_low=8, res_high=8,
                     num_samples=8, checkpoint_every=10**9, turntable_frames=0, lambda_sparsity=lam, **kw)
    src = Field(FieldConfig.tiny(), seed=4)
    den = ToyDenoiser(num_views=2)
    return edit(src, None, make_guide(den, src, None, "blue", "red"), cfg, progress=False).field


def test_the_penalty_shrinks_what_an_edit_leaves_occupied():
    g = torch.Generator()
    before = opacity_penalty(Field(FieldConfig.tiny(), seed=4), g.manual_seed(1), 8, points=20000)
    occ_off = opacity_penalty(_edit(0.0), g.manual_seed(1), 8, points=20000)
    occ_on = opacity_penalty(_edit(1e4), g.manual_seed(1), 8, points=20000)
    assert occ_off > before  # the toy edit grows the occupied volume (0.077 -> 0.107) ...
    assert occ_on < 0.6 * occ_off and occ_on < before  # ... the penalty shrinks it below the source (0.054)


def test_at_zero_the_penalty_is_never_evaluated(monkeypatch):
    """The default: no extra density query and no extra random numbers, so results are those of before."""
    import pnr.edit.loop as loop

    def boom(*a, **k):
        raise AssertionError("opacity_penalty called at lambda_sparsity 0")

    monkeypatch.setattr(loop, "opacity_penalty", boom)
    _edit(0.0)
    with pytest.raises(AssertionError, match="called"):
        _edit(1.0)


def test_a_negative_weight_is_refused_by_its_option_name():
    with pytest.raises(ConfigError, match="--lambda-sparsity must be a number >= 0"):
        EditConfig(lambda_sparsity=-1.0)


def test_the_default_is_the_priors_weight():
    """None = the prior's own weight: the built-in prior's 1e4 (chosen on dev2), 0 for a prior that names none
    (the official configs' value); an explicit value wins."""
    from types import SimpleNamespace

    from pnr.edit.config import with_prior_defaults
    from pnr.priors.builtin.prior import LAMBDA_SPARSITY_BUILTIN, BuiltinPrior

    assert EditConfig().lambda_sparsity is None
    assert BuiltinPrior.lambda_sparsity == LAMBDA_SPARSITY_BUILTIN == 1e4
    fake_builtin = SimpleNamespace(delta_min=281.0, identity_scale=0.1, lambda_sparsity=LAMBDA_SPARSITY_BUILTIN)
    assert with_prior_defaults(EditConfig(), fake_builtin).lambda_sparsity == 1e4
    assert with_prior_defaults(EditConfig(), SimpleNamespace(delta_min=1000.0)).lambda_sparsity == 0.0
    assert with_prior_defaults(EditConfig(lambda_sparsity=0.0), fake_builtin).lambda_sparsity == 0.0
