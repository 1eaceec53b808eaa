"""The lazy render budget (`EditConfig.lazy_budget`, pnr.render.graphed.LazyBudget): one read per refresh, budgets that
cover what was seen, overflow counted exactly and answered by doubling, and a budget that follows the counts down.
Device-agnostic logic, tested on the CPU (the CUDA-graph renderer that uses it: tests/render/test_graphed.py)."""

import torch

from pnr.render.graphed import LazyBudget


def _pow2(need: float, rays: int, floor: int = 64) -> int:
    b = floor
    while b < need:
        b *= 2
    return min(b, rays * 64)


def _t(n: int) -> torch.Tensor:
    return torch.tensor(n)


def test_first_call_reads_the_count_and_later_calls_reuse_the_budget():
    lb = LazyBudget(_pow2, refresh_every=4)
    assert lb(1000, _t(100)) == 128  # 100 x 1.25 -> 128
    assert [lb(1000, _t(n)) for n in (90, 110, 120)] == [128, 128, 128]  # 4th call refreshes: max 120 -> 150 -> 256
    assert lb.current[1000] == 256 and lb.dropped == 0 and lb.short_refreshes == 0


def test_an_overflow_is_counted_exactly_and_doubles_the_next_budget():
    lb = LazyBudget(_pow2, refresh_every=4)
    got = [lb(1000, _t(n)) for n in (100, 100, 300, 100)]
    assert got == [128] * 4
    assert lb.dropped == 300 - 128 and lb.short_refreshes == 1  # the one short render, its missing samples
    assert lb.current[1000] == _pow2(300 * 1.25 * 2, 1000) == 1024
    assert all(lb(1000, _t(300)) >= 300 for _ in range(4))  # covered from then on
    assert lb.dropped == 172


def test_the_budget_follows_a_shrinking_grid_down_and_ray_counts_are_separate():
    lb = LazyBudget(_pow2, refresh_every=2)
    lb(4000, _t(3000)), lb(4000, _t(3000))  # after a perturbation every cell is occupied
    high = lb.current[4000]
    lb(4000, _t(200)), lb(4000, _t(200))  # the grid has pruned the empty space
    assert lb.current[4000] < high and lb.current[4000] >= 200 * 1.25
    assert lb(1000, _t(50)) == 64 and lb.current[4000] >= 250  # another resolution: its own budget
