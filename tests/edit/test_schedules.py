import pytest
import torch

from pnr.edit.schedules import TimestepSchedule, fixed_schedule, ipg_weight, render_resolution


def test_timestep_annealing_endpoints():
    s = TimestepSchedule()
    assert s.range(0, 1500) == pytest.approx((0.75, 0.75))
    t = s.sample(0, 1500, 64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(t, torch.full_like(t, 0.75))
    assert s.range(1200, 1500) == pytest.approx((0.02, 0.40))  # 80% of the editing steps
    assert s.range(1499, 1500) == pytest.approx((0.02, 0.40))  # constant after
    assert s.range(600, 1500) == pytest.approx((0.75 - 0.5 * 0.73, 0.75 - 0.5 * 0.35))
    t = s.sample(1300, 1500, 4000, generator=torch.Generator().manual_seed(0))
    assert 0.02 <= float(t.min()) < 0.05 and 0.37 < float(t.max()) <= 0.40


def test_fixed_schedule_is_sds_range():
    s = fixed_schedule()
    assert s.range(0, 10) == pytest.approx((0.02, 0.98)) and s.range(10, 10) == pytest.approx((0.02, 0.98))


def test_ipg_weight_reaches_zero_at_half_the_revise_steps():
    assert ipg_weight(0, 1000) == 1.0
    assert ipg_weight(250, 1000) == pytest.approx(0.5)
    assert ipg_weight(500, 1000) == 0.0
    assert ipg_weight(900, 1000) == 0.0


def test_resolution_milestone_at_half_the_edit_steps():
    assert render_resolution(749, 1500, 64, 128) == 64
    assert render_resolution(750, 1500, 64, 128) == 128
