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


def test_search_and_revise_can_keep_their_own_t_when_the_edit_starts_higher():
    """t_search / t_revise (issue 19): the edit phase starts at 0.95, Alg. 2 still probes at 0.75 (at 0.95 it sees
    no loss decrease and would pick η = 0) and revise restarts at 0.75; unset, both follow t_start."""
    cfg = _cfg(t_start=(0.95, 0.95), t_search=(0.75, 0.75), t_revise=(0.75, 0.75))
    den = _run(cfg, search_only=True)
    assert len(den.ts) == 6 and all(t == pytest.approx(0.75) for t in den.ts)
    den = _run(cfg.__class__(**{**cfg.__dict__, "eta": 0.2, "search_steps": 0}))
    assert den.ts[0] == pytest.approx(0.95) and den.ts[10] == pytest.approx(0.75)
    assert PnR(_cfg(t_start=(0.9, 0.9))).search_schedule().range(0, 1) == pytest.approx((0.9, 0.9))
    assert PnR(_cfg(t_start=(0.9, 0.9))).phases()[1].schedule.range(0, 10) == pytest.approx((0.9, 0.9))
    with pytest.raises(ValueError, match="--t-search"):
        _cfg(t_search=(0.8, 0.7))


def test_baselines_one_phase_of_edit_plus_revise_steps_at_their_fixed_range():
    for cls in (SDS, PDS, Regen):
        ph = cls(_cfg()).phases()
        assert len(ph) == 1 and ph[0].steps == 20 and not ph[0].identity
        assert ph[0].schedule.range(0, 20) == ph[0].schedule.range(19, 20) == pytest.approx((0.02, 0.98))
    assert make_method(_cfg(method="sds")).initial_eta() == 0.0
    assert make_method(_cfg(method="regen")).initial_eta() == 1.0
    assert make_method(_cfg(eta=None)).initial_eta() is None and make_method(_cfg(eta=0.3)).initial_eta() == 0.3


def test_occupancy_warm_up_keeps_every_cell_occupied_then_rebuilds(monkeypatch):
    """occ_warmup: for its first steps the grid is all-occupied (an edit may grow outside the source's footprint,
    e.g. a raised arm or an added hat), and is rebuilt from the field after; also for η = 0 (the baselines)."""
    from pnr.render.occupancy import OccupancyGrid

    src = Field(FieldConfig.tiny(), seed=4)
    occ = OccupancyGrid(8, 1.0)
    occ.update(src, 0, force=True, generator=torch.Generator().manual_seed(0))
    occ.density[: occ.density.numel() // 2] = 0.0  # half the box empty in the source's footprint
    occ._refresh()
    assert occ.occupied_fraction() < 0.75
    seen = []
    real_update = OccupancyGrid.update

    def spy(self, field, step, **kw):
        seen.append((step, self.occupied_fraction()))
        return real_update(self, field, step, **kw)

    monkeypatch.setattr(OccupancyGrid, "update", spy)
    den = SpyDenoiser(num_views=2)
    for method, eta in (("sds", 0.0), ("pnr", 0.3)):
        seen.clear()
        cfg = _cfg(method=method, eta=eta if method == "pnr" else None, search_steps=0, edit_steps=6, revise_steps=2,
                   occ_warmup=4)
        edit(src, occ, make_guide(den, src, occ, "blue", "red"), cfg, progress=False)
        assert [s for s, _ in seen] == [4, 5, 6, 7]  # no update inside the warm-up
        assert seen[0][1] == 1.0  # all cells occupied through it
    seen.clear()
    edit(src, occ, make_guide(den, src, occ, "blue", "red"), _cfg(method="sds", edit_steps=3, revise_steps=0),
         progress=False)
    assert seen[0] == (0, occ.occupied_fraction())  # default: SDS starts from the source's grid


def test_identity_term_at_the_sds_views_or_a_random_camera(tmp_path):
    """identity_views "sds" (the authors' code) adds the term at the step's own views: no extra camera drawn, so
    the edit phase is unchanged and the first revise step differs from the "random" variant."""
    runs = {}
    for views in ("random", "sds"):
        den = SpyDenoiser(num_views=2)
        src = Field(FieldConfig.tiny(), seed=4)
        res = edit(src, None, make_guide(den, src, None, "blue", None),
                   _cfg(eta=0.3, search_steps=0, edit_steps=4, revise_steps=2, lambda_l1=1000.0, identity_views=views,
                        ipg_anneal=1.0), progress=False)
        runs[views] = res.losses
    assert runs["random"][:4] == runs["sds"][:4]
    assert runs["random"][4] != runs["sds"][4]
    base = edit(Field(FieldConfig.tiny(), seed=4), None,
                make_guide(SpyDenoiser(num_views=2), Field(FieldConfig.tiny(), seed=4), None, "blue", None),
                _cfg(eta=0.3, search_steps=0, edit_steps=4, revise_steps=2, lambda_l1=1000.0, identity_scale=0.0),
                progress=False).losses
    assert base[4] < runs["sds"][4] and base[4] < runs["random"][4]  # identity_scale 0 switches the term off


def test_carry_adam_keeps_the_search_moments():
    """carry_adam: after the perturbation the optimiser continues with the search copy's Adam state (the authors'
    code searches on the real optimiser), so the first edit step differs from a fresh Adam's."""
    out = {}
    for carry in (False, True):
        den = SpyDenoiser(num_views=2)
        src = Field(FieldConfig.tiny(), seed=4)
        res = edit(src, None, make_guide(den, src, None, "blue", None),
                   _cfg(search_steps=4, edit_steps=3, revise_steps=0, carry_adam=carry), progress=False)
        out[carry] = res
    assert out[False].eta == out[True].eta and out[False].eta_trace == out[True].eta_trace
    a, b = out[False].field.params_dict(), out[True].field.params_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_only_pnr_shifts_the_fresh_density():
    """fresh_density_shift is PnR's: regeneration (η = 1) and the baselines draw θ_0 as the field's own init."""
    from pnr.edit.config import EditConfig
    from pnr.edit.methods import make_method
    for name in ("sds", "pds", "idu", "regen"):
        assert make_method(EditConfig(method=name, fresh_density_shift=-4.0)).fresh_density_shift() == 0.0
    assert make_method(EditConfig(method="pnr", fresh_density_shift=-4.0)).fresh_density_shift() == -4.0
