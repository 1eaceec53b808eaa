"""The edit loop: Perturb-and-Revise and its baselines through one code path (paper Alg. 1-2, Eq. 3-5).

`edit()` is the algorithm read top to bottom; what differs between methods lives in `pnr.edit.methods`:
  1. η: the method's own (0 for SDS / PDS / IDU, 1 for regeneration, a fixed --eta), or Alg. 2: simulated
     SDS steps from θ_src on a throw-away copy (`search_eta`);
  2. perturb: θ ← Lerp(θ_src, θ_0, η) over the geometry parameters, θ_0 from the field's own init (Eq. 3);
  3. the method's phases in order (PnR: edit, then revise with the identity-preserving term whose weights
     anneal to 0 at half the revise steps); each step renders, takes the method's loss, one Adam step.
Every `checkpoint_every` steps the whole run state goes atomically to DIR/state.pt (`pnr.edit.state`); a run
started on a DIR holding one continues from it and ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from tqdm import tqdm

from pnr.edit.config import EditConfig, with_prior_defaults
from pnr.edit.eta import eta_from_decrease, loss_decrease
from pnr.edit.guide import Guide, release_graphs, render_counters, render_fixed, render_train
from pnr.edit.ipg import default_perceptual, identity_loss
from pnr.edit.methods import Phase, PnR, StepInput, make_method
from pnr.edit.perturb import perturb
from pnr.edit.schedules import ipg_weight, render_resolution
from pnr.edit.sparsity import opacity_penalty
from pnr.edit.state import STATE_FILE, check_resume, load_state, restore, save_state, snapshot, write_record
from pnr.errors import DeviceMemoryError, NumericalError
from pnr.field.field import Field
from pnr.render.cameras import random_orbit_views
from pnr.render.occupancy import OccupancyGrid

__all__ = ["EditResult", "Guide", "STATE_FILE", "edit", "load_state", "search_eta", "write_record"]
_render_train = render_train  # old private name, used by bench/edit_speed.py


@dataclass
class EditResult:
    field: Field
    occupancy: OccupancyGrid | None
    eta: float
    eta_trace: list[float]
    losses: list[float]
    seconds: float
    phase_seconds: dict[str, float] = dc_field(default_factory=dict)
    resumed_from: int = 0  # the step a partial run was continued from (0: started fresh)
    render: dict = dc_field(default_factory=dict)  # the CUDA-graph render's counters (graphed runs only)


def edit(source: Field, source_occ: OccupancyGrid | None, guide: Guide, cfg: EditConfig,
         out_dir: str | Path | None = None, resume: bool = True, progress: bool = True,
         on_step: Callable[[str, int, float], None] | None = None, search_only: bool = False,
         on_phase_end: Callable[[str, Field, OccupancyGrid | None], None] | None = None,
         task: dict | None = None) -> EditResult:
    """Edits `source` toward guide.cond with cfg.method; returns the edited field. With `out_dir`, writes
    DIR/state.pt every cfg.checkpoint_every steps and resumes from it. `search_only` returns right after the
    η search (the field is then θ_src). `on_phase_end(phase, field, occ)` runs after each phase's last step.
    `task` (e.g. the conditioning texts) is stored with the state; a resume with another task is refused."""
    t0 = time.time()
    out_dir = Path(out_dir) if out_dir is not None else None
    dev, src = source.device, source.params_dict()
    cfg = with_prior_defaults(cfg, guide.prior)
    method = make_method(cfg)
    phases = method.phases()
    total = sum(p.steps for p in phases)
    perceptual = _perceptual(phases, cfg)
    field, occ, g = Field(source.cfg, device=dev), _copy_occ(source_occ, dev), torch.Generator()
    opt = _optimizer(field, cfg)
    st = load_state(out_dir) if (out_dir is not None and resume) else None
    if st is not None:  # ---- continue a partial run
        check_resume(st, out_dir, src, source.cfg.to_dict(), cfg, task)
        eta, trace, losses, start, phase_s, earlier_s = restore(st, field, occ, opt, g)
        if progress:
            tqdm.write(f"pnr edit: continuing the partial run in {out_dir} from step {start} of {total} (η {eta:.3f})")
    else:
        # ---- 1. η (Alg. 2) -----------------------------------------------------------------------------
        ts = time.time()
        eta, trace, adam = method.initial_eta(), [], None
        if eta is None:
            field.load_params_dict(src)  # the search runs on the field the edit will use (its own optimiser), so
            eta, trace, adam = search_eta(source, source_occ, guide, method, progress, on_step,  # its CUDA graphs
                                          probe=field, probe_occ=occ)  # carry over: parameters change in place
            if occ is not None:
                occ.load_state_dict(source_occ.state_dict())  # (in place: the graphs read `occupied`)
            adam = adam if cfg.carry_adam else None
        phase_s, earlier_s = {"search": time.time() - ts}, 0.0
        if search_only:
            field.load_params_dict(src)
            return EditResult(field, occ, eta, trace, [], time.time() - t0, phase_s)
        # ---- 2. perturb (Eq. 3, Alg. 1) ------------------------------------------------------------------
        field.load_params_dict(perturb(src, source.cfg, eta, seed=cfg.seed + 1,
                                       density_shift=method.fresh_density_shift()))
        if adam is not None:
            opt.load_state_dict(adam)  # the search's Adam moments carried over (cfg.carry_adam)
        if occ is not None and (eta > 0 or cfg.occ_warmup > 0):
            occ.mark_all()
        g.manual_seed(cfg.seed)
        losses, start = [], 0
    method.begin(guide, guide.views(cfg), dev, st.get("idu") if st is not None else None)
    # ---- 3. the method's phases (PnR: edit, then revise with identity-preserving gradients) ----------------
    bar = tqdm(total=total, initial=start, desc=f"pnr edit [{cfg.method}]", disable=not progress)
    tp = time.time()
    pending = _LossReader(losses, out_dir, every=1 if on_step is not None else READ_EVERY)
    for step in range(start, total):
        phase, k = _phase_at(phases, step)
        if occ is not None and step >= cfg.occ_warmup:
            occ.update(field, step, generator=g)
        res = _resolution(phase, k, cfg)
        w = ipg_weight(k, phase.steps, cfg.ipg_anneal) * cfg.identity_scale if phase.identity else 0.0
        psi = random_orbit_views(1, 1, generator=g, res=res, device=dev) if w > 0 and cfg.identity_views == "random" \
            else None  # ψ of Eq. 5, rendered in the same pass as the SDS views
        with _memory_advice(cfg, phase.name, step, res, guide, out_dir):
            loss, rgb, cams = method.loss(StepInput(field, occ, guide, cfg, phase, k, res, g, extra=psi))
            if w > 0:  # + the identity-preserving term (Eq. 5)
                loss = loss + _identity_term(guide, cfg, rgb, cams, psi is not None, w, perceptual)
            if cfg.lambda_sparsity > 0:  # + the opacity penalty (the prior's weight; pnr/edit/sparsity.py)
                loss = loss + cfg.lambda_sparsity * opacity_penalty(field, g, cfg.num_samples)
            _apply(opt, loss)  # a non-finite loss is caught when read (below), before any state is saved
        bar.update(1)
        done = step + 1
        save = out_dir is not None and (done % cfg.checkpoint_every == 0 or done == total)
        last = on_phase_end is not None and k == phase.steps - 1
        if pending.add(loss, phase.name, step, force=save or last or done == total):
            bar.set_postfix(phase=phase.name, loss=f"{losses[-1]:.1f}", eta=f"{eta:.3f}", res=res)
        if on_step is not None:
            on_step(phase.name, step, losses[-1])
        if last:
            on_phase_end(phase.name, field, occ)
        if save:
            phase_s["edit+revise"] = phase_s.get("edit+revise", 0.0) + time.time() - tp
            tp = time.time()
            save_state(out_dir, snapshot(done, eta, trace, losses, field, occ, opt, g, cfg, src, source.cfg.to_dict(),
                                         phase_s, earlier_s + time.time() - t0, task, method.state()))
    bar.close()
    render_stats = render_counters(field)
    release_graphs(field)
    release_graphs(guide.source)  # θ_src's identity-term graphs (the next edit may bring another source)
    if out_dir is None or total == 0 or total % cfg.checkpoint_every != 0:
        phase_s["edit+revise"] = phase_s.get("edit+revise", 0.0) + time.time() - tp
    return EditResult(field, occ, eta, trace, losses, earlier_s + time.time() - t0, phase_s,
                      resumed_from=start if st is not None else 0, render=render_stats)


def search_eta(source: Field, source_occ: OccupancyGrid | None, guide: Guide, method: PnR, progress: bool = True,
               on_step: Callable[[str, int, float], None] | None = None, probe: Field | None = None,
               probe_occ: OccupancyGrid | None = None) -> tuple[float, list[float], dict]:
    """Alg. 2: cfg.search_steps SDS steps with c_edit from θ_src on a throw-away copy -> (η, loss trace, the
    copy's Adam state). `probe` (+ `probe_occ`): a field holding θ_src to run them on (edit() passes the field it
    goes on to overwrite with the perturbed parameters, so the render graphs captured here serve the edit too);
    None = a fresh copy, whose graphs are released at the end."""
    cfg = method.cfg
    assert cfg.delta_min is not None, "edit() fills Δ_min from the prior (with_prior_defaults)"
    own = probe is None
    if own:
        probe = Field(source.cfg, device=source.device)
        probe.load_params_dict(source.params_dict())
        probe_occ = _copy_occ(source_occ, source.device)
    probe_opt = _optimizer(probe, cfg)
    gs = torch.Generator().manual_seed(cfg.seed + 7)
    n_edit = method.phases()[0].steps
    phase = Phase("search", n_edit, method.search_schedule())
    bar = tqdm(total=cfg.search_steps, desc="pnr edit [eta search]", disable=not progress, leave=False)

    trace: list[float] = []
    pending = _LossReader(trace, None, every=1 if on_step is not None else READ_EVERY)
    for i in range(cfg.search_steps):
        res = render_resolution(i, n_edit, cfg.res_low, cfg.res_high, cfg.milestone)
        with _memory_advice(cfg, "eta search", i, res, guide, None):
            loss = method.loss(StepInput(probe, probe_occ, guide, cfg, phase, i, res, gs)).loss
            _apply(probe_opt, loss)
        bar.update(1)
        if pending.add(loss, "eta search", i, force=i == cfg.search_steps - 1):
            bar.set_postfix(loss=f"{trace[-1]:.1f}")
        if on_step is not None:
            on_step("search", i, trace[-1])

    k = max(1, min(10, cfg.search_steps // 5))  # Alg. 2: first/last 10 of 50
    eta = eta_from_decrease(loss_decrease(trace, k), cfg.delta_min, cfg.eta_max)  # Alg. 2, DetermineEta
    bar.close()
    if own:
        release_graphs(probe)
    return eta, trace, probe_opt.state_dict()


# ------------------------------------------------------------------------------------------ helpers
def _identity_term(guide: Guide, cfg: EditConfig, rgb: Tensor, cams, at_psi: bool, w: float, perceptual) -> Tensor:
    """w (λ_L1 L1 + λ_p P) between the renders and θ_src's at ψ (the last camera) or at all the step's views."""
    sl = slice(len(cams) - 1, None) if at_psi else slice(0, len(cams))
    rgb_src = render_fixed(guide.source, guide.source_occ, cams[sl], cfg)  # no grad; graphed on a GPU
    return identity_loss(rgb[sl], rgb_src, w * cfg.lambda_l1, w * cfg.lambda_p, perceptual)[0]


def _resolution(phase: Phase, k: int, cfg: EditConfig) -> int:
    """res_low before cfg.milestone of a ramping phase's steps (App. E), res_high from it on and in the others."""
    return render_resolution(k, phase.steps, cfg.res_low, cfg.res_high, cfg.milestone) if phase.ramp_resolution \
        else cfg.res_high


def _phase_at(phases: list[Phase], step: int) -> tuple[Phase, int]:
    """The phase that global `step` falls in, and the step within it."""
    for p in phases:
        if step < p.steps:
            return p, step
        step -= p.steps
    raise IndexError("step past the last phase")


def _perceptual(phases: list[Phase], cfg: EditConfig):
    """ST-LPIPS for the identity term when a phase uses it (it needs >= 32 px renders; below, L1 only)."""
    if any(p.identity and p.steps > 0 for p in phases) and cfg.lambda_p > 0 and cfg.res_high >= 32:
        return default_perceptual()
    return None


def _optimizer(field: Field, cfg: EditConfig) -> torch.optim.Optimizer:
    enc = [p for n, p in field.named_parameters() if n.startswith("encoding")]
    rest = [p for n, p in field.named_parameters() if not n.startswith("encoding")]
    return torch.optim.Adam([{"params": enc, "lr": cfg.lr_encoding}, {"params": rest, "lr": cfg.lr_mlp}],
                            betas=(0.9, 0.99), eps=1e-15, fused=field.device.type == "cuda")  # fused: 1 kernel


def _copy_occ(occ: OccupancyGrid | None, dev) -> OccupancyGrid | None:
    if occ is None:
        return None
    c = type(occ)(occ.resolution, occ.bound, device=dev)  # a contracted grid stays contracted (unbounded fields)
    c.load_state_dict(occ.state_dict())
    return c


@contextmanager
def _memory_advice(cfg: EditConfig, phase: str, step: int, res: int, guide: Guide, out_dir: Path | None):
    """A CUDA out-of-memory error in a step becomes a DeviceMemoryError that says which settings set the step's
    memory (the render at res_high and its backward dominate with the large priors, docs/large-priors.md) and
    what they are now; the partial run is kept and resumes with --low-memory (lower values need --restart)."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        v = guide.views(cfg)
        kept = (f"the last saved state is {out_dir / STATE_FILE} (lower resolutions, samples or groups need "
                f"--restart)") if out_dir is not None and (out_dir / STATE_FILE).exists() else "no state was saved"
        first = "Lower" if cfg.low_memory else \
            "Add --low-memory (checkpointed render and encoder; a partial run resumes with it), or lower"
        raise DeviceMemoryError(
            f"out of GPU memory at step {step} ({phase} phase): {cfg.groups} group(s) x {v} views at {res} px, "
            f"{cfg.num_samples} samples per ray. {first} --res-high (now {cfg.res_high}), --num-samples (now "
            f"{cfg.num_samples}) or --groups (now {cfg.groups}), or free the GPU of other processes; {kept}. "
            f"({str(e).splitlines()[0] if str(e) else 'CUDA out of memory'})") from e


READ_EVERY = 32  # steps between reads of the losses (each read waits for the GPU; see _LossReader)


class _LossReader:
    """Collects the steps' losses on the device and reads them to `into` (floats) every `every` steps, when forced
    (before a checkpoint, at a phase's end, at the last step) — checking each for NaN/inf in step order.

    Why: reading a loss (`float`, `isfinite`) makes the host wait for the GPU, so a per-step read keeps the host
    from queueing step i+1 while step i runs (docs/speed.md). The values and the error are the same as a per-step
    read: the first non-finite loss raises NumericalError naming its step, and since every checkpoint forces a read
    first, no non-finite state is ever saved (the steps run after a NaN until the read are thrown away)."""

    def __init__(self, into: list[float], out_dir: Path | None, every: int):
        self.into, self.out_dir, self.every = into, out_dir, max(1, every)
        self._pending: list[tuple[Tensor, str, int]] = []

    def add(self, loss: Tensor, phase: str, step: int, force: bool = False) -> bool:
        """Queues this step's loss; returns whether the queue was read (so `into[-1]` is this step's loss)."""
        self._pending.append((loss.detach(), phase, step))
        if not force and len(self._pending) < self.every:
            return False
        vals = torch.stack([t.double().reshape(()) for t, _, _ in self._pending]).tolist()  # one read; exact
        for v, (_, ph, st) in zip(vals, self._pending):
            if not math.isfinite(v):
                kept = f"the last good state is kept in {self.out_dir / STATE_FILE}" if self.out_dir \
                    else "no state was saved"
                raise NumericalError(f"the {ph} loss became {v} at step {st}; stopped ({kept}). "
                                     f"Try a lower --guidance-scale or learning rate, or another --seed")
        self.into.extend(vals)
        self._pending.clear()
        return True


def _apply(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
