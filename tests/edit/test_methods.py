"""The methods' phases and schedules (pnr/edit/methods.py), checked by spying on the t the prior is asked at."""

import pytest
import torch

from pnr.edit.config import EditConfig
from pnr.edit.loop import edit
from pnr.edit.methods import PDS, SDS, PnR, Regen, make_method
from pnr.edit.run import make_guide
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from tests.edit.toy_prior import ToyDenoiser


class SpyDenoiser(ToyDenoiser):
    """Records the t of every noise prediction (CFG batches cond + uncond: each t appears twice)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.ts: list[float] = []

    def predict_eps(self, x_t, t, cond, c2w):
        self.ts.extend(float(v) for v in t[: t.shape[0] // 2])
        return super().predict_eps(x_t, t, cond, c2w)


def _cfg(**kw) -> EditConfig:
    base = dict(search_steps=6, edit_steps=10, revise_steps=10, res_low=8, res_high=8, num_samples=8,
                checkpoint_every=10**9, turntable_frames=0, lambda_p=0.0, delta_min=10.0)
    return EditConfig(**{**base, **kw})


def _run(cfg: EditConfig, **kw) -> SpyDenoiser:
    den = SpyDenoiser(num_views=2)
    src = Field(FieldConfig.tiny(), seed=4)
    edit(src, None, make_guide(den, src, None, "blue", "red"), cfg, progress=False, **kw)
    return den


def test_eta_search_holds_t_at_t_start():
    """Alg. 2's simulated steps run at the fixed starting t (official: the anneal starts after them)."""
    den = _run(_cfg(), search_only=True)
    assert len(den.ts) == 6 and all(t == pytest.approx(0.75) for t in den.ts)


def test_revise_phase_restarts_the_anneal_at_t_start():
    den = _run(_cfg(eta=0.2, search_steps=0))
    edit_t, revise_t = den.ts[:10], den.ts[10:]
    assert len(revise_t) == 10
    assert edit_t[0] == pytest.approx(0.75) and revise_t[0] == pytest.approx(0.75)
    assert max(edit_t[8:]) <= 0.40 + 1e-6 and max(revise_t[8:]) <= 0.40 + 1e-6  # t_end after 80% of each phase
    ph = PnR(_cfg()).phases()
    assert [p.name for p in ph] == ["edit", "revise"] and ph[1].identity and not ph[0].identity
    assert ph[1].schedule.range(0, 10) == pytest.approx((0.75, 0.75))
    assert ph[1].schedule.range(8, 10) == pytest.approx((0.02, 0.40))


def test_baselines_one_phase_of_edit_plus_revise_steps_at_their_fixed_range():
    for cls in (SDS, PDS, Regen):
        ph = cls(_cfg()).phases()
        assert len(ph) == 1 and ph[0].steps == 20 and not ph[0].identity
        assert ph[0].schedule.range(0, 20) == ph[0].schedule.range(19, 20) == pytest.approx((0.02, 0.98))
    assert make_method(_cfg(method="sds")).initial_eta() == 0.0
    assert make_method(_cfg(method="regen")).initial_eta() == 1.0
    assert make_method(_cfg(eta=None)).initial_eta() is None and make_method(_cfg(eta=0.3)).initial_eta() == 0.3
