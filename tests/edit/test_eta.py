import math

import pytest

from pnr.edit.eta import eta_from_decrease, loss_decrease


def test_loss_decrease_first_and_last_ten():
    trace = [100.0] * 10 + [50.0] * 30 + [40.0] * 10
    assert loss_decrease(trace) == pytest.approx(-60.0)
    assert loss_decrease([1.0, 2.0, 3.0, 4.0], k=2) == pytest.approx(3.5 - 1.5)


@pytest.mark.parametrize("dl,expected", [
    (-1000.0, 0.0),  # a decrease of Δ_min: no perturbation
    (0.0, 0.3),  # flat loss: η_max / 2
    (1000.0, 0.6 * (1 - 2 ** -2)),  # rising loss: 0.45
    (-5000.0, 0.0),  # clipped at 0
    (-500.0, 0.6 * (1 - 2 ** -0.5)),
])
def test_eta_formula_by_hand(dl, expected):
    assert eta_from_decrease(dl, 1000.0, 0.6) == pytest.approx(expected)


def test_eta_approaches_eta_max_and_needs_positive_delta_min():
    assert eta_from_decrease(1e6, 1000.0, 0.6) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        eta_from_decrease(0.0, 0.0)


def test_alg2_on_a_known_trace():
    trace = [2000.0 - 20.0 * i for i in range(50)]  # falls by 20 per step
    dl = loss_decrease(trace, 10)
    assert dl == pytest.approx((sum(trace[-10:]) - sum(trace[:10])) / 10) and dl == pytest.approx(-800.0)
    assert eta_from_decrease(dl, 1000.0, 0.6) == pytest.approx(0.6 * (1 - math.pow(2, -200 / 1000)))


def test_a_decrease_far_beyond_delta_min_gives_zero_not_an_overflow():
    # a search whose loss fell by 10^6 x Δ_min once raised OverflowError in 2^x (quality benchmark, H100)
    assert eta_from_decrease(-1e9, 281.0, 0.6) == 0.0
    assert eta_from_decrease(-3 * 281.0, 281.0, 0.6) == 0.0
