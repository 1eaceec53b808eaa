"""Edit methods as objects: what the loop in `pnr.edit.loop.edit` asks of PnR and of each baseline.

A method says (gsplat's strategies are the model: a small object per method, the loop stays the caller's)
  - `initial_eta`: the perturbation strength, or None for Alg. 2's search (PnR only);
  - `phases`: its phases in order, each with a length, a timestep schedule over the phase's own steps,
    whether the identity-preserving term is added, whether the render resolution ramps up;
  - `loss`: the distillation loss of one step (SDS, PDS, or the IDU dataset loss);
  - `begin` / `state`: per-run state that a resume must restore (the IDU dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from pnr.edit.config import EditConfig
from pnr.edit.guide import Guide, group_c2w, orbit_group, render_for_prior, render_train, repeat_cond
from pnr.edit.schedules import TimestepSchedule, fixed_schedule
from pnr.field.field import Field
from pnr.guidance.pds import pds, pds_timesteps
from pnr.guidance.sdedit import sdedit
from pnr.guidance.sds import sds
from pnr.h2d import to_device
from pnr.render.cameras import Cameras, random_orbit_views
from pnr.render.occupancy import OccupancyGrid
from pnr.render.volume import render


@dataclass(frozen=True)
class Phase:
    name: str  # "edit" | "revise"
    steps: int
    schedule: TimestepSchedule  # Σ(τ) over this phase's own steps
    identity: bool = False  # adds λ_L1 L1 + λ_p P to the source render (Eq. 5)
    ramp_resolution: bool = True  # res_low before cfg.milestone of the phase, res_high from it on


@dataclass
class StepInput:
    """One step's inputs to `Method.loss`: `step` counts within the phase, `extra` are cameras to render
    (with grad) in the same pass, for the caller's identity term."""

    field: Field
    occ: OccupancyGrid | None
    guide: Guide
    cfg: EditConfig
    phase: Phase
    step: int
    res: int
    g: torch.Generator
    extra: Cameras | None = None


class StepOut(NamedTuple):
    """A step's loss and the renders it made (with grad): rgb [N, H, W, 3] at `cams` (N cameras; the step's own
    views first, then StepInput.extra's)."""

    loss: Tensor
    rgb: Tensor
    cams: Cameras


class Method:
    """The SDS baseline from θ_src (DreamFusion's update: ε weighting, U(0.02, 0.98)); other methods override."""

    weighting_from_cfg = False  # False: DreamFusion's "eps" weighting; True: cfg.weighting

    def __init__(self, cfg: EditConfig):
        self.cfg = cfg

    def initial_eta(self) -> float | None:
        return 0.0

    def fresh_density_shift(self) -> float:
        """Shift of θ_0's density bias in the perturbation (PnR's setting; the baselines draw θ_0 unchanged)."""
        return 0.0

    def phases(self) -> list[Phase]:
        c = self.cfg  # the baselines spend the revise steps as more of their own (App. E)
        return [Phase("edit", c.edit_steps + c.revise_steps, fixed_schedule(*c.t_baseline))]

    def begin(self, guide: Guide, v: int, device, saved: Any = None) -> None:
        """Set up per-run state (restored from `saved` on a resume)."""

    def state(self) -> Any:
        return None

    def loss(self, s: StepInput) -> StepOut:
        return self._sds(s)

    def _sds(self, s: StepInput) -> StepOut:
        guide, cfg = s.guide, s.cfg
        v, dev, cams, rgb, x = _render_group(s)
        b = x.shape[0]
        t = to_device(s.phase.schedule.sample(s.step, s.phase.steps, b, generator=s.g), dev)
        weighting = cfg.weighting if self.weighting_from_cfg else "eps"
        rescale = cfg.recon_std_rescale if self.weighting_from_cfg and weighting == "x0" else 0.0
        out = sds(guide.prior, x, repeat_cond(guide.cond, b), repeat_cond(guide.uncond, b),
                  group_c2w(cams, v).to(dev), t, cfg.guidance_scale, weighting=weighting, x0_range=guide.x0_range,
                  generator=s.g, recon_std_rescale=rescale)
        return StepOut(out["loss"], rgb, _with_extra(cams, s.extra))


SDS = Method


class PnR(Method):
    """Perturb-and-Revise (Alg. 1): η (given, or Alg. 2's search), then an edit phase with Σ annealed from
    t_start to t_end, then a revise phase with the identity-preserving term (Eq. 5)."""

    weighting_from_cfg = True

    def initial_eta(self) -> float | None:
        return None if self.cfg.eta is None else float(self.cfg.eta)

    def fresh_density_shift(self) -> float:
        return self.cfg.fresh_density_shift

    def search_schedule(self) -> TimestepSchedule:
        """Σ of Alg. 2's simulated steps: held at t_start (the official mvdream-pnr.yaml starts the anneal after
        the 50 search steps, [50, 0.75, 0.02, 1250]); an anneal during the search would lower the loss by the
        schedule drift alone and make ΔL < 0 for every edit."""
        return fixed_schedule(*(self.cfg.t_search or self.cfg.t_start))

    def phases(self) -> list[Phase]:
        c = self.cfg
        edit = Phase("edit", c.edit_steps, TimestepSchedule(c.t_start, c.t_end, c.t_anneal))
        # the revise phase restarts the anneal over its own steps (official mvdream-pnr-ipg.yaml: [0, 0.75, 0.02, 800]
        # of 1000 steps); it is a second run from the edited field in the authors' code
        revise = Phase("revise", c.revise_steps, TimestepSchedule(c.t_revise or c.t_start, c.t_end, c.t_anneal),
                       identity=True, ramp_resolution=False)
        return [edit, revise] if c.revise_steps > 0 else [edit]


class Regen(Method):
    """Regeneration: η = 1 (text-to-3D from a fresh field), the baselines' schedule, cfg.weighting."""

    weighting_from_cfg = True

    def initial_eta(self) -> float | None:
        return 1.0


class PDS(Method):
    """Posterior Distillation Sampling (Koo et al. 2024) from θ_src: the source render at the same cameras and
    the source prompt enter each step."""

    def loss(self, s: StepInput) -> StepOut:
        guide, cfg = s.guide, s.cfg
        v, dev, cams, rgb, x = _render_group(s)
        with torch.no_grad():
            _, x_src = render_for_prior(guide.source, guide.source_occ, cams, guide, cfg, s.g, v, grad=False)
        b = x.shape[0]
        lo, hi = cfg.t_baseline
        t_idx, tp_idx = pds_timesteps(guide.prior.schedule.num_steps, b, lo=lo, hi=hi, generator=s.g)
        out = pds(guide.prior, x, x_src, repeat_cond(guide.cond, b), repeat_cond(guide.cond_src, b),
                  repeat_cond(guide.uncond, b), group_c2w(cams, v).to(dev), cfg.guidance_scale, to_device(t_idx, dev),
                  to_device(tp_idx, dev), generator=s.g)
        return StepOut(out["loss"], rgb, _with_extra(cams, s.extra))


@dataclass
class IDUDataset:
    """Instruct-NeRF2NeRF's training set: fixed cameras (idu_groups orbits of V views), their current images
    (source renders at first, replaced group by group by edits) and the source renders (an editor's
    conditioning views)."""

    cams: Cameras
    images: Tensor  # [G*V, H, W, 3]
    source: Tensor  # [G*V, H, W, 3]


class IDU(Method):
    """Iterative dataset update: every idu_every steps one view group's image is replaced by an SDEdit edit
    (with c_edit; or guide.editor's, e.g. InstructPix2Pix) of the current render; each step fits L1 to one group."""

    data: IDUDataset | None = None

    def begin(self, guide: Guide, v: int, device, saved: Any = None) -> None:
        cfg = self.cfg
        gd = torch.Generator().manual_seed(cfg.seed + 11)
        cams = random_orbit_views(cfg.idu_groups, v, generator=gd, res=cfg.res_high, device=device)
        with torch.no_grad():
            source = render(guide.source, cams, guide.source_occ, num_samples=cfg.num_samples)["rgb"]
        images = saved.to(device) if saved is not None else source.clone()
        self.data = IDUDataset(cams, images, source)

    def state(self) -> Any:
        return self.data.images if self.data is not None else None

    def loss(self, s: StepInput) -> StepOut:
        cfg, v = s.cfg, s.guide.views(s.cfg)
        global_step = s.step  # IDU has one phase: its steps are the run's steps
        if global_step % cfg.idu_every == 0:
            self._update(s, global_step // cfg.idu_every, v)
        gi = int(torch.randint(0, cfg.idu_groups, (1,), generator=s.g))
        d = self.data
        cams = d.cams[gi * v:(gi + 1) * v].resized(s.res)
        rgb = render_train(s.field, s.occ, cams, cfg, s.g)
        target = d.images[gi * v:(gi + 1) * v]
        if target.shape[1] != s.res:
            target = torch.nn.functional.interpolate(target.permute(0, 3, 1, 2), size=(s.res, s.res), mode="area"
                                                     ).permute(0, 2, 3, 1)
        return StepOut((rgb - target).abs().mean(), rgb, cams)

    def _update(self, s: StepInput, k: int, v: int) -> None:
        """Replace view group k mod G by an edit of the current render there."""
        cfg, guide, d = s.cfg, s.guide, self.data
        gi = k % cfg.idu_groups
        sl = slice(gi * v, (gi + 1) * v)
        cams = d.cams[sl]
        with torch.no_grad():
            if guide.editor is not None:
                rgb = render(s.field, cams, s.occ, num_samples=cfg.num_samples)["rgb"].permute(0, 3, 1, 2)
                out = guide.editor(rgb, d.source[sl].permute(0, 3, 1, 2), s.g).to(rgb.device).permute(0, 2, 3, 1)
                d.images[sl] = out.to(d.images.dtype)
                return
            _, x = render_for_prior(s.field, s.occ, cams, guide, cfg, s.g, v, grad=False)
            lo, hi = cfg.idu_t
            t = lo + (hi - lo) * float(torch.rand(1, generator=s.g))
            x_e = sdedit(guide.prior, x, t, guide.cond, guide.uncond, group_c2w(cams, v).to(x.device),
                         cfg.guidance_scale, steps=cfg.idu_ddim_steps, x0_range=guide.x0_range, generator=s.g)
            rgb = guide.prior.decode(x_e)[0].permute(0, 2, 3, 1)  # [V, h, w, 3]
            h = d.images.shape[1]
            if rgb.shape[1] != h:
                rgb = torch.nn.functional.interpolate(rgb.permute(0, 3, 1, 2), size=(h, h), mode="bilinear",
                                                      align_corners=False).permute(0, 2, 3, 1)
            d.images[sl] = rgb.to(d.images.dtype)


def _render_group(s: StepInput):
    """The step's view groups at random orbits, rendered (with s.extra) and encoded for the prior ->
    (V, device, cameras, rgb [B*V (+E), H, W, 3], x [B, V, C, h, w])."""
    v, dev = s.guide.views(s.cfg), s.field.device
    cams = orbit_group(s.cfg, v, s.res, s.g, dev)
    rgb, x = render_for_prior(s.field, s.occ, cams, s.guide, s.cfg, s.g, v, extra=s.extra)
    return v, dev, cams, rgb, x


def _with_extra(cams: Cameras, extra: Cameras | None) -> Cameras:
    return Cameras.cat([cams, extra.to(cams.device)]) if extra is not None else cams


METHODS: dict[str, type[Method]] = {"pnr": PnR, "sds": SDS, "pds": PDS, "idu": IDU, "regen": Regen}


def make_method(cfg: EditConfig) -> Method:
    return METHODS[cfg.method](cfg)
