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


def test_a_changed_grid_makes_the_next_call_read_its_count_again():
    """After `mark_all` (a perturbation) every cell is occupied: the budget must cover that at once, not after an
    overflow; `follow` sees the grid's version change, settles the overflow so far and re-reads."""
    from pnr.render.occupancy import OccupancyGrid

    occ = OccupancyGrid(8)
    lb = LazyBudget(_pow2, refresh_every=100)
    lb.follow(occ.version)
    assert lb(1000, _t(100)) == 128
    lb(1000, _t(200))  # short by 72, not read yet
    v = occ.version
    occ.mark_all()
    assert occ.version != v
    lb.follow(occ.version)
    assert lb.dropped == 72  # settled at the change
    assert lb(1000, _t(3000)) >= 3000  # read again: covers the full box at once
    lb.follow(occ.version)  # same version: nothing re-read
    assert lb(1000, _t(3000)) == lb.current[1000]
