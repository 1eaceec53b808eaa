"""What every edit method's step is made of: the fixed guidance inputs (`Guide`), the differentiable render
of a view group in the prior's space, and batching of the conditioning."""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from pnr.edit.config import EditConfig
from pnr.field.field import Field
from pnr.render import graphed
from pnr.render.cameras import Cameras, random_orbit_views
from pnr.render.low_memory import render_low_memory
from pnr.render.occupancy import OccupancyGrid
from pnr.render.volume import render


@dataclass
class Guide:
    """What the guidance needs, fixed for a run: the prior, its conditionings, the source field."""

    prior: Any
    cond: Any  # c_edit
    uncond: Any
    cond_src: Any | None  # source prompt (PDS)
    source: Field
    source_occ: OccupancyGrid | None
    x0_range: float | None  # clamp of x0 estimates (1.0 for pixel-space priors)
    # IDU only: an image editor (renders [N,3,H,W], source views [N,3,H,W], generator) -> edited, all in [0, 1]
    # (InstructPix2Pix with the instruction bound, `pnr edit --editor`); None = SDEdit with the prior
    editor: Callable[[Tensor, Tensor, torch.Generator], Tensor] | None = None

    def views(self, cfg: EditConfig) -> int:
        """Views per group: the setting, or the prior's own (4 multi-view, 1 single-view)."""
        return cfg.views or int(getattr(self.prior, "num_views", 1))


_GRAPHED: "weakref.WeakKeyDictionary[Field, graphed.GraphedRenderer]" = weakref.WeakKeyDictionary()


def render_train(field: Field, occ, cams: Cameras, cfg: EditConfig, g: torch.Generator) -> Tensor:
    """Differentiable jittered render rgb [B, H, W, 3]; replayed from CUDA graphs with `cfg.render_graphs`
    (or PNR_RENDER_GRAPHS=1) on a GPU."""
    if cfg.low_memory:  # activation-checkpointed chunks (issue 21); no CUDA graphs: they keep every activation
        return render_low_memory(field, cams, occ, cfg.num_samples, g)
    if field.device.type == "cuda" and (cfg.render_graphs or graphed.enabled()):
        r = _GRAPHED.get(field)
        if r is None or r.occupancy is not occ or r.lazy != cfg.lazy_budget:
            r = _GRAPHED[field] = graphed.GraphedRenderer(field, occ, cfg.num_samples, lazy=cfg.lazy_budget)
        return r(cams, g)
    return render(field, cams, occ, num_samples=cfg.num_samples, perturb=True, generator=g)["rgb"]


_GRAPHED_FIXED: "weakref.WeakKeyDictionary[Field, graphed.GraphedFixedRenderer]" = weakref.WeakKeyDictionary()


def render_fixed(field: Field, occ, cams: Cameras, cfg: EditConfig) -> Tensor:
    """No-grad render at the bin centres, rgb [B, H, W, 3]: θ_src's views for the identity term. Replayed from CUDA
    graphs with `cfg.render_graphs` on a GPU (equal to the eager render but for early ray termination, < 1e-4)."""
    if field.device.type == "cuda" and (cfg.render_graphs or graphed.enabled()) and not cfg.low_memory \
            and getattr(field.cfg, "contraction", "none") == "none":
        r = _GRAPHED_FIXED.get(field)
        if r is None or r.occupancy is not occ or r.num_samples != cfg.num_samples or r.lazy != cfg.lazy_budget:
            r = _GRAPHED_FIXED[field] = graphed.GraphedFixedRenderer(field, occ, cfg.num_samples, lazy=cfg.lazy_budget)
        if not r.broken:
            try:
                return r(cams)
            except RuntimeError as e:  # a failed capture (seen for the training render under 16 processes): eager
                r.broken = True
                try:
                    torch.cuda.synchronize()
                except RuntimeError:
                    pass
                warnings.warn(f"CUDA-graph capture of the source render failed ({str(e).splitlines()[0] if str(e) else e!r}); "
                              "it runs eagerly (same result up to early ray termination)", RuntimeWarning)
    with torch.no_grad():
        return render(field, cams, occ, num_samples=cfg.num_samples)["rgb"]


def render_counters(field: Field) -> dict:
    """What the graphed render of `field` counted (for edit.json): {} when it did not run (CPU, eager)."""
    r = _GRAPHED.get(field)
    if r is None:
        return {}
    out = {"graphs": len(r._graphs), "eager_fallbacks": r.eager_fallbacks}
    if r.budgets is not None:  # --lazy-budget: whether every render kept all its samples (0 = as the per-step one)
        r.budgets.refresh()
        out.update(lazy_dropped_samples=r.budgets.dropped, lazy_short_refreshes=r.budgets.short_refreshes)
    return out


def release_graphs(field: Field) -> None:
    """Drop the CUDA graphs captured for `field`: the renderer holds the field, so the weak key alone never frees
    them, and a process running many edits (the benchmark) would keep one private memory pool per edit."""
    _GRAPHED.pop(field, None)
    _GRAPHED_FIXED.pop(field, None)


def render_for_prior(field: Field, occ, cams: Cameras, guide: Guide, cfg: EditConfig, g: torch.Generator,
                     v: int, grad: bool = True, extra: Cameras | None = None) -> tuple[Tensor, Tensor]:
    """-> (rgb [B*V (+E), H, W, 3], x [B, V, C, h, w] in the prior's space). `extra` cameras (E, same
    resolution) are rendered in the same call and returned after the B*V views but not encoded: one render
    instead of two in the revise phase (the step is launch-bound on a GPU, docs/speed.md)."""
    n = len(cams)
    if extra is not None:
        cams = Cameras.cat([cams, extra.to(cams.device)])
    with torch.set_grad_enabled(grad):
        rgb = render_train(field, occ, cams, cfg, g) if grad else render_fixed(field, occ, cams, cfg)
        b = n // v
        imgs = rgb[:n].view(b, v, *rgb.shape[1:]).permute(0, 1, 4, 2, 3)
        x = (checkpoint(guide.prior.encode_images, imgs, use_reentrant=False) if grad and cfg.low_memory
             else guide.prior.encode_images(imgs))  # low_memory: the VAE encoder's activations recomputed too
    return rgb, x


def orbit_group(cfg: EditConfig, v: int, res: int, g: torch.Generator, device) -> Cameras:
    """cfg.groups orbits of v views each, at random elevation/azimuth (the prior's training cameras)."""
    return random_orbit_views(cfg.groups, v, generator=g, res=res, device=device)


def group_c2w(cams: Cameras, v: int) -> Tensor:
    """c2w [B, V, 4, 4] of B groups of v views."""
    return cams.c2w.view(-1, v, 4, 4)


def repeat_cond(cond: Any, b: int) -> Any:
    """Conditioning encoded for one prompt -> batch b (tensors, or dicts of tensors)."""
    if cond is None or b == 1:
        return cond
    if isinstance(cond, Tensor):
        return cond.expand(b, *cond.shape[1:])
    if isinstance(cond, dict):
        return {k: repeat_cond(val, b) for k, val in cond.items()}
    return cond
