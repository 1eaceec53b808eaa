"""Differentiable rendering replayed from CUDA graphs (forward and backward), for the edit loop on a GPU.

Why: after the prior's forward was graphed, the render and its backward are ~14 of the ~20 ms of an H100
edit step, almost all of it kernel-launch and Python overhead for ~0.03 M samples (docs/speed.md). This
wraps `static.render_rays_static` with `torch.cuda.make_graphed_callables`: one forward + backward graph
per (rays, samples, budget), where the budget is the occupied-sample count rounded up to a power of two
(one host sync per call to read that count). Field parameters must be updated in place (Adam, and
`Field.load_params_dict`, do) and the occupancy grid's `occupied` buffer too (`OccupancyGrid._refresh`).

On by default on CUDA: `EditConfig.render_graphs` (`pnr edit --no-render-graphs` for the eager render;
PNR_RENDER_GRAPHS=1 forces it on). Its equality with the dynamic renderer is tested on the CPU through
`render_rays_static` (tests/render/test_static.py); the replay itself in tests/render/test_graphed.py (CUDA
only; what it saves per edit step is in docs/speed.md). Not bit-identical to the eager render (no early ray termination), but on 72 benchmark edits its metrics differ
from the committed ones no more than an eager rerun's do (docs/speed.md).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from pnr import rng
from pnr.render.cameras import Cameras, generate_rays
from pnr.cuda_graph import GraphCache
from pnr.render.static import occupied_samples, render_rays_static, sample_mask, sample_points
from pnr.env import env_flag


def enabled() -> bool:
    return env_flag("PNR_RENDER_GRAPHS")


def pow2_budget(need: float, rays: int, num_samples: int, min_budget: int) -> int:
    """The smallest power-of-two multiple of `min_budget` >= need, at most every sample of the rays (few graphs)."""
    b = min_budget
    while b < need:
        b *= 2
    return min(b, rays * num_samples)


class _Render(nn.Module):
    """rgb [R, 3] = render of rays (origins, dirs) with jitter u; the field's parameters are its own."""

    def __init__(self, field, occupancy, budget: int):
        super().__init__()
        self.field, self.occupancy, self.budget = field, occupancy, budget

    def forward(self, origins: Tensor, dirs: Tensor, u: Tensor) -> Tensor:
        return render_rays_static(self.field, origins, dirs, self.occupancy, u, self.budget)["rgb"]


class GraphedRenderer:
    """render(cams, generator) -> rgb [B, H, W, 3] (differentiable w.r.t. the field), jittered samples."""

    def __init__(self, field, occupancy, num_samples: int, min_budget: int = 4096, max_graphs: int = 16,
                 lazy: bool = False, refresh_every: int = 16):
        self.field, self.occupancy, self.num_samples = field, occupancy, num_samples
        self.min_budget, self.max_graphs = min_budget, max_graphs
        self._graphs: dict[tuple[int, int], nn.Module] = {}
        self.eager_fallbacks = 0  # render shapes whose capture failed twice and run eagerly (`_capture`)
        self.lazy, self.budgets = lazy, LazyBudget(self._round, refresh_every) if lazy else None
        # make_graphed_callables warms up on a side stream, so the parameters' AccumulateGrad nodes (made on the
        # default stream) draw a stream-mismatch warning on backward; replay values and grads are checked
        # against eager in tests/render/test_graphed.py (passed on an H200), so it is noise for our users.
        warnings.filterwarnings("ignore", message="The AccumulateGrad node's stream does not match")

    def _capture(self, module: nn.Module, args: tuple) -> nn.Module:
        """The graphed render, or `module` itself (the same static render, run eagerly) when the capture fails twice.

        Why: with 16 benchmark processes sharing one H200 a capture was sometimes invalidated (2 of 64 jobs in one
        call of 2026-12-02, none of the 42 of the next calls; `cudaErrorStreamCaptureInvalidated` in the SH encoding;
        cause not found) and failed the whole edit. The fallback computes what the graph would (same fixed budget
        and jitter), only slower; `eager_fallbacks` counts it and a warning says so."""
        err = None
        for _ in range(2):
            try:
                return torch.cuda.make_graphed_callables(module, args, allow_unused_input=True)
            except RuntimeError as e:  # torch.AcceleratorError is a RuntimeError
                if "captur" not in str(e).lower():
                    raise
                err = e
                try:
                    torch.cuda.synchronize()
                except RuntimeError:
                    pass
        self.eager_fallbacks += 1
        warnings.warn(f"CUDA-graph capture of the render failed twice ({str(err).splitlines()[0]}); this render shape "
                      "runs eagerly (same result, slower). --no-render-graphs turns the graphs off.", RuntimeWarning)
        return module

    def budget(self, origins: Tensor, dirs: Tensor) -> int:
        """Occupied samples at bin centres + 25 % for jitter, rounded up to a power of two (few graphs)."""
        need = int(occupied_samples(origins, dirs, self.field.cfg.bound, self.occupancy, self.num_samples))
        return self._round(need * 1.25, origins.shape[0])

    def _round(self, need: float, rays: int) -> int:
        return pow2_budget(need, rays, self.num_samples, self.min_budget)

    def __call__(self, cams: Cameras, generator: torch.Generator | None) -> Tensor:
        if getattr(self.field.cfg, "contraction", "none") != "none":  # no static unbounded sampler: eager render
            from pnr.render.volume import render

            return render(self.field, cams, self.occupancy, self.num_samples, perturb=True, generator=generator)["rgb"]
        cams = cams.to(self.field.device)
        o, d = generate_rays(cams)
        B, H, W = o.shape[:3]
        o, d = o.reshape(-1, 3).contiguous(), d.reshape(-1, 3).contiguous()
        u = rng.rand((o.shape[0], self.num_samples), generator, o.device)
        if self.budgets is not None:  # lazy: this step's exact count goes on the device, read 1 in refresh_every
            self.budgets.follow(getattr(self.occupancy, "version", 0))  # a changed grid: the count is read again
            _, pts, _, hit = sample_points(o, d, self.field.cfg.bound, u)
            key = (o.shape[0], self.budgets(o.shape[0], sample_mask(pts, hit, self.occupancy, self.num_samples).sum()))
        else:
            key = (o.shape[0], self.budget(o, d))
        fn = self._graphs.get(key)
        if fn is None:
            if len(self._graphs) >= self.max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
            module = _Render(self.field, self.occupancy, key[1])
            fn = self._capture(module, (o.clone(), d.clone(), u.clone()))
            self._graphs[key] = fn
        return fn(o, d, u).view(B, H, W, 3)


class LazyBudget:
    """The render's sample budget per ray count without reading each step's count (`EditConfig.lazy_budget`).

    budget(rays, need) takes this step's exact occupied-sample count as a 0-dim device tensor and returns the budget
    to render with, an int known on the host: on the first call for a ray count, and the first after the grid
    changed (`follow`), the count is read (one sync) and
    rounded up with a 25 % margin; later calls only fold `need` into a device-side maximum and overflow sum, which
    are read every `refresh_every` calls: the budget is then re-derived from the largest count seen (so it follows a
    shrinking occupancy grid down) and doubled after an overflow. A render whose budget was at least its count equals
    the per-step policy's (the static render keeps every occupied sample either way); `dropped` counts the samples
    of the renders that were short, so a run can say whether that held. Device-agnostic (tested on the CPU)."""

    def __init__(self, round_fn, refresh_every: int = 16, margin: float = 1.25):
        self.round, self.refresh_every, self.margin = round_fn, max(1, refresh_every), margin
        self.version = None  # of the occupancy grid the budgets were derived under
        self.current: dict[int, int] = {}
        self._max: dict[int, Tensor] = {}
        self._over: Tensor | None = None
        self._calls = 0
        self.dropped = 0  # occupied samples left out, summed over the renders read so far
        self.short_refreshes = 0  # refreshes that found an overflow

    def __call__(self, rays: int, need: Tensor) -> int:
        if rays not in self.current:
            self.current[rays] = self.round(int(need) * self.margin, rays)
        b = self.current[rays]
        over = (need - b).clamp(min=0)
        self._over = over if self._over is None else self._over + over
        self._max[rays] = need if rays not in self._max else torch.maximum(self._max[rays], need)
        self._calls += 1
        if self._calls % self.refresh_every == 0:
            self.refresh()
        return b

    def follow(self, version) -> None:
        """A new occupancy grid state (an update every 16 steps, `mark_all` after a perturbation) can change the counts
        at once: settle the overflow so far and read the next call's count again (one sync per grid update, which
        itself syncs)."""
        if version != self.version:
            self.refresh()
            self.current.clear()
            self.version = version

    def refresh(self) -> None:
        """Reads the overflow and the largest counts (one sync) and sets the next budgets from them."""
        if self._over is None:
            return
        keys = list(self._max)
        vals = torch.stack([self._over.reshape(()).to(torch.int64)] + [self._max[k].reshape(()).to(torch.int64)
                                                                       for k in keys]).tolist()
        over, maxes = vals[0], vals[1:]
        self.dropped += over
        self.short_refreshes += over > 0
        for k, m in zip(keys, maxes):
            self.current[k] = self.round(m * self.margin * (2 if over > 0 else 1), k)
        self._over, self._max = None, {}


def render_centres(field, occupancy, num_samples: int, budget: int, origins: Tensor, dirs: Tensor) -> Tensor:
    """rgb [R, 3] of rays at their bin centres (u = 0.5, no jitter), `budget` samples: what `GraphedFixedRenderer`
    replays. Equals `volume.render(perturb=False)` but for early ray termination (< 1e-4, tests/render)."""
    u = torch.full((origins.shape[0], num_samples), 0.5, device=origins.device)
    return render_rays_static(field, origins, dirs, occupancy, u, budget)["rgb"]


class GraphedFixedRenderer:
    """render(cams) -> rgb [B, H, W, 3] without grad, at the bin centres, replayed from CUDA graphs (one per rays x
    budget, the budget = the exact occupied-sample count rounded up to a power of two, LRU of `max_graphs`).

    Why: in the revise phase the identity term renders θ_src at the step's cameras every step; through the eager
    `volume.render` that is ~100 small launches and host syncs, most of what a revise step costs over an edit step
    (docs/speed.md). The source field and its grid never change during an edit, so nothing needs re-capturing."""

    def __init__(self, field, occupancy, num_samples: int, min_budget: int = 4096, max_graphs: int = 8,
                 lazy: bool = False):
        self.field, self.occupancy, self.num_samples = field, occupancy, num_samples
        self.min_budget, self.max_graphs = min_budget, max_graphs
        self._graphs: dict[int, object] = {}  # budget -> GraphCache (keyed there by the rays' shape)
        self.broken = False  # set by pnr.edit.guide.render_fixed when a capture failed: eager from then on
        self.lazy, self.budgets = lazy, LazyBudget(self._round) if lazy else None

    def _round(self, need: float, rays: int) -> int:
        return pow2_budget(need, rays, self.num_samples, self.min_budget)

    def budget(self, origins: Tensor, dirs: Tensor) -> int:
        need = occupied_samples(origins, dirs, self.field.cfg.bound, self.occupancy, self.num_samples)
        if self.budgets is not None:
            self.budgets.follow(getattr(self.occupancy, "version", 0))
            return self.budgets(origins.shape[0], need)
        return self._round(int(need), origins.shape[0])  # bin centres: the count is exact, no jitter margin

    @torch.no_grad()
    def __call__(self, cams: Cameras) -> Tensor:
        cams = cams.to(self.field.device)
        o, d = generate_rays(cams)
        B, H, W = o.shape[:3]
        o, d = o.reshape(-1, 3).contiguous(), d.reshape(-1, 3).contiguous()
        b = self.budget(o, d)
        fn = self._graphs.pop(b, None)  # re-inserted last: the dict's order is the LRU order
        if fn is None:
            if len(self._graphs) >= self.max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
            field, occ, n = self.field, self.occupancy, self.num_samples
            fn = GraphCache(lambda oo, dd: render_centres(field, occ, n, b, oo, dd), max_graphs=2)
        self._graphs[b] = fn
        return fn(o, d).view(B, H, W, 3)
