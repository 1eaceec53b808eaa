"""The edit loop: Perturb-and-Revise and its baselines through one code path (paper Alg. 1-2, Eq. 3-5).

Read `edit()` top to bottom:
  1. η: Alg. 2 simulates `search_steps` SDS steps from θ_src on a throw-away copy (or a fixed η;
     η = 0 for the SDS / PDS / IDU baselines, 1 for regeneration);
  2. perturb: θ ← Lerp(θ_src, θ_0, η), θ_0 from the field's own initialisation (Eq. 3);
  3. edit: multi-view SDS with the annealed Σ(τ) (PnR) or the baseline's own update and U(0.02, 0.98);
     render resolution raised at the milestone;
  4. revise (PnR only): SDS + identity-preserving term with λ annealed to 0 at half the revise steps.
Every `checkpoint_every` steps the whole run state (field, occupancy, optimiser, RNG, step, η, IDU
dataset) is written atomically to DIR/state.pt; a run started on a DIR holding one continues from it
and ends bit-identical to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import io
import json
import math
import time
import weakref
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm import tqdm

from pnr.edit.config import RESUME_MAY_CHANGE, EditConfig
from pnr.edit.eta import choose_eta
from pnr.edit.ipg import default_perceptual, identity_loss
from pnr.edit.perturb import perturb
from pnr.edit.schedules import TimestepSchedule, fixed_schedule, ipg_weight, render_resolution
from pnr.errors import CheckpointError, NumericalError
from pnr.field.field import Field
from pnr.guidance.pds import pds, pds_timesteps
from pnr.guidance.sdedit import sdedit
from pnr.guidance.sds import sds
from pnr.io import atomic_write_bytes
from pnr.render import graphed
from pnr.render.cameras import Cameras, random_orbit_views
from pnr.render.occupancy import OccupancyGrid
from pnr.render.volume import render

STATE_FILE = "state.pt"
STATE_VERSION = 1


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


# ------------------------------------------------------------------------------------------ steps
def _optimizer(field: Field, cfg: EditConfig) -> torch.optim.Optimizer:
    enc = [p for n, p in field.named_parameters() if n.startswith("encoding")]
    rest = [p for n, p in field.named_parameters() if not n.startswith("encoding")]
    return torch.optim.Adam([{"params": enc, "lr": cfg.lr_encoding}, {"params": rest, "lr": cfg.lr_mlp}],
                            betas=(0.9, 0.99), eps=1e-15, fused=field.device.type == "cuda")  # fused: 1 kernel


def _views(guide: Guide, cfg: EditConfig) -> int:
    return cfg.views or int(getattr(guide.prior, "num_views", 1))


def _cams(cfg: EditConfig, v: int, res: int, g: torch.Generator, device) -> Cameras:
    return random_orbit_views(cfg.groups, v, generator=g, res=res, device=device)


_GRAPHED: "weakref.WeakKeyDictionary[Field, graphed.GraphedRenderer]" = weakref.WeakKeyDictionary()


def _render_train(field: Field, occ, cams: Cameras, cfg: EditConfig, g: torch.Generator) -> Tensor:
    """Differentiable jittered render rgb [B, H, W, 3]; replayed from CUDA graphs with `cfg.render_graphs`
    (or PNR_RENDER_GRAPHS=1) on a GPU."""
    if field.device.type == "cuda" and (cfg.render_graphs or graphed.enabled()):
        r = _GRAPHED.get(field)
        if r is None or r.occupancy is not occ:
            r = _GRAPHED[field] = graphed.GraphedRenderer(field, occ, cfg.num_samples)
        return r(cams, g)
    return render(field, cams, occ, num_samples=cfg.num_samples, perturb=True, generator=g)["rgb"]


def _render_x(field: Field, occ, cams: Cameras, guide: Guide, cfg: EditConfig, g: torch.Generator, v: int,
              grad: bool = True, extra: Cameras | None = None) -> tuple[Tensor, Tensor]:
    """-> (rgb [B*V (+E), H, W, 3], x [B, V, C, h, w] in the prior's space). `extra` cameras (E, same
    resolution) are rendered in the same call and returned after the B*V views but not encoded: one render
    instead of two in the revise phase (the step is launch-bound on a GPU, docs/speed.md)."""
    n = len(cams)
    if extra is not None:
        cams = Cameras.cat([cams, extra.to(cams.device)])
    with torch.set_grad_enabled(grad):
        rgb = (_render_train(field, occ, cams, cfg, g) if grad
               else render(field, cams, occ, num_samples=cfg.num_samples, generator=g)["rgb"])
        b = n // v
        x = guide.prior.encode_images(rgb[:n].view(b, v, *rgb.shape[1:]).permute(0, 1, 4, 2, 3))
    return rgb, x


def _c2w(cams: Cameras, v: int) -> Tensor:
    return cams.c2w.view(-1, v, 4, 4)


def guidance_loss(field: Field, occ, guide: Guide, cfg: EditConfig, sched: TimestepSchedule, step: int,
                  total: int, res: int, g: torch.Generator, method: str,
                  extra: Cameras | None = None) -> tuple[Tensor, Tensor | None]:
    """The distillation loss of one step at `step` of `total` (SDS for pnr / sds / regen, PDS for pds), and
    the renders [E, res, res, 3] (with grad) of the `extra` cameras (None without), made in the same pass."""
    v = _views(guide, cfg)
    dev = field.device
    cams = _cams(cfg, v, res, g, dev)
    rgb, x = _render_x(field, occ, cams, guide, cfg, g, v, extra=extra)
    rgb_extra = rgb[len(cams):] if extra is not None else None
    c2w = _c2w(cams, v).to(dev)
    b = x.shape[0]
    cond = _repeat(guide.cond, b)
    uncond = _repeat(guide.uncond, b)
    if method == "pds":
        with torch.no_grad():
            _, x_src = _render_x(guide.source, guide.source_occ, cams, guide, cfg, g, v, grad=False)
        lo, hi = cfg.t_baseline
        t_idx, tp_idx = pds_timesteps(guide.prior.schedule.num_steps, b, lo=lo, hi=hi, generator=g)
        return pds(guide.prior, x, x_src, cond, _repeat(guide.cond_src, b), uncond, c2w, cfg.guidance_scale,
                   t_idx.to(dev), tp_idx.to(dev), generator=g)["loss"], rgb_extra
    t = sched.sample(step, total, b, generator=g).to(dev)
    weighting = "eps" if method == "sds" else cfg.weighting  # the SDS baseline is DreamFusion's update
    return sds(guide.prior, x, cond, uncond, c2w, t, cfg.guidance_scale, weighting=weighting,
               x0_range=guide.x0_range, generator=g)["loss"], rgb_extra


def _repeat(cond: Any, b: int) -> Any:
    """Conditioning encoded for one prompt -> batch b (tensors, or dicts of tensors)."""
    if cond is None or b == 1:
        return cond
    if isinstance(cond, Tensor):
        return cond.expand(b, *cond.shape[1:])
    if isinstance(cond, dict):
        return {k: _repeat(val, b) for k, val in cond.items()}
    return cond


def _check_finite(loss: Tensor, phase: str, step: int, out_dir: Path | None) -> None:
    if not torch.isfinite(loss):
        kept = f"the last good state is kept in {out_dir / STATE_FILE}" if out_dir else "no state was saved"
        raise NumericalError(f"the {phase} loss became {float(loss.detach())} at step {step}; stopped ({kept}). "
                             f"Try a lower --guidance-scale or learning rate, or another --seed")


def _apply(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


# ----------------------------------------------------------------------------------- run state IO
def _save_state(out_dir: Path, st: dict) -> None:
    buf = io.BytesIO()
    torch.save(st, buf)
    atomic_write_bytes(out_dir / STATE_FILE, buf.getvalue())


def load_state(out_dir: Path) -> dict | None:
    p = Path(out_dir) / STATE_FILE
    if not p.exists():
        return None
    try:
        st = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{p}: cannot read the partial run ({e}); start over with --restart") from None
    if st.get("version") != STATE_VERSION:
        raise CheckpointError(f"{p}: partial run of state version {st.get('version')!r}; start over with --restart")
    return st


def _fingerprint(params: dict[str, Tensor]) -> list[float]:
    """A few numbers identifying θ_src, so a partial run is only resumed against the same source."""
    return [float(params[k].double().sum()) for k in sorted(params)][:8]


# ------------------------------------------------------------------------------------------- edit
def edit(source: Field, source_occ: OccupancyGrid | None, guide: Guide, cfg: EditConfig,
         out_dir: str | Path | None = None, resume: bool = True, progress: bool = True,
         on_step: Callable[[str, int, float], None] | None = None, search_only: bool = False,
         on_phase_end: Callable[[str, Field, OccupancyGrid | None], None] | None = None,
         task: dict | None = None) -> EditResult:
    """Edits `source` toward guide.cond with cfg.method; returns the edited field. With `out_dir`,
    writes DIR/state.pt every cfg.checkpoint_every steps and resumes from it when present.
    `search_only` returns right after the η search (the field is then θ_src; for calibration).
    `on_phase_end(phase, field, occ)` is called after the last step of the edit phase ("edit") and of
    the revise phase ("revise"), e.g. to evaluate PnR without its revise phase from the same run.
    `task` (e.g. the conditioning texts) is stored with the state; a resume with another task is refused."""
    t0 = time.time()
    out_dir = Path(out_dir) if out_dir is not None else None
    dev = source.device
    src = source.params_dict()
    method = cfg.method
    revise = cfg.revise_steps if method == "pnr" else 0
    n_edit = cfg.edit_steps if method == "pnr" else cfg.edit_steps + cfg.revise_steps
    total = n_edit + revise
    sched = (TimestepSchedule(cfg.t_start, cfg.t_end, cfg.t_anneal) if method == "pnr"
             else fixed_schedule(*cfg.t_baseline))
    v = _views(guide, cfg)
    # ST-LPIPS needs >= 32 px renders; below that the identity term is L1 only
    perceptual = default_perceptual() if revise > 0 and cfg.lambda_p > 0 and cfg.res_high >= 32 else None

    field = Field(source.cfg, device=dev)
    occ = OccupancyGrid(source_occ.resolution, source_occ.bound, device=dev) if source_occ is not None else None
    opt = _optimizer(field, cfg)
    g = torch.Generator()
    phase_s: dict[str, float] = {}
    earlier_s = 0.0  # wall seconds of the sessions before a resume
    st = load_state(out_dir) if (out_dir is not None and resume) else None

    if st is not None:  # ---- continue a partial run
        if st["fingerprint"] != _fingerprint(src) or st["field_cfg"] != source.cfg.to_dict():
            raise CheckpointError(f"{out_dir / STATE_FILE} is a partial edit of another source or field config; "
                                  f"use another --out or --restart")
        started = EditConfig.from_dict(st["config"]).to_dict()  # settings added since then take their defaults
        now = cfg.to_dict()
        unused = () if method == "idu" else tuple(k for k in now if k.startswith("idu_"))  # no effect on this method
        diff = sorted(k for k in now if started.get(k) != now[k] and k not in RESUME_MAY_CHANGE + unused)
        if diff:
            raise CheckpointError(f"{out_dir / STATE_FILE} was started with other settings ({', '.join(diff)}; "
                                  f"another --preset?); use the same ones, another --out, or --restart")
        if task is not None and st.get("task") is not None and st["task"] != task:
            keys = [k for k in task if st["task"].get(k) != task[k]]
            was = ", ".join(f"{k} {st['task'].get(k)!r}" for k in keys)
            now_ = ", ".join(f"{k} {task[k]!r}" for k in keys)
            raise CheckpointError(f"{out_dir / STATE_FILE} is a partial edit for {was}, not {now_}; "
                                  f"use another --out or --restart")
        field.load_params_dict(st["params"])
        if occ is not None:
            occ.load_state_dict(st["occupancy"])
        opt.load_state_dict(st["optimizer"])
        g.set_state(st["rng"])
        eta, trace, losses, start = st["eta"], st["eta_trace"], st["losses"], st["step"]
        phase_s = dict(st.get("phase_seconds", {}))
        earlier_s = float(st.get("run_seconds", sum(phase_s.values())))
        if progress:
            tqdm.write(f"pnr edit: continuing the partial run in {out_dir} from step {start} of {total} (η {eta:.3f})")
    else:
        # ---- 1. η (Alg. 2) -----------------------------------------------------------------
        ts = time.time()
        trace: list[float] = []
        if method == "regen":
            eta = 1.0
        elif method != "pnr":
            eta = 0.0
        elif cfg.eta is not None:
            eta = float(cfg.eta)
        else:
            probe = Field(source.cfg, device=dev)
            probe.load_params_dict(src)
            probe_occ = _copy_occ(source_occ, dev)
            probe_opt = _optimizer(probe, cfg)
            gs = torch.Generator().manual_seed(cfg.seed + 7)
            bar = tqdm(total=cfg.search_steps, desc="pnr edit [eta search]", disable=not progress, leave=False)

            def search_step(i: int) -> float:
                res = render_resolution(i, n_edit, cfg.res_low, cfg.res_high, cfg.milestone)
                loss, _ = guidance_loss(probe, probe_occ, guide, cfg, sched, i, n_edit, res, gs, "pnr")
                _check_finite(loss, "eta search", i, None)
                _apply(probe_opt, loss)
                lv = float(loss.detach())
                bar.update(1)
                bar.set_postfix(loss=f"{lv:.1f}")
                if on_step is not None:
                    on_step("search", i, lv)
                return lv

            k = max(1, min(10, cfg.search_steps // 5))  # Alg. 2: first/last 10 of 50
            delta_min = cfg.delta_min if cfg.delta_min is not None else 1000.0
            eta, trace = choose_eta(search_step, cfg.search_steps, delta_min, cfg.eta_max, k=k)
            bar.close()
            del probe, probe_opt, probe_occ
        phase_s["search"] = time.time() - ts
        if search_only:
            field.load_params_dict(src)
            return EditResult(field, _copy_occ(source_occ, dev), eta, trace, [], time.time() - t0, phase_s)
        # ---- 2. perturb (Eq. 3, Alg. 1) ------------------------------------------------------
        field.load_params_dict(perturb(src, source.cfg, eta, seed=cfg.seed + 1))
        if occ is not None:
            occ.load_state_dict(source_occ.state_dict())
            if eta > 0:
                occ.mark_all()
        g.manual_seed(cfg.seed)
        losses, start = [], 0

    # ---- IDU dataset: source renders at fixed cameras, replaced group by group by SDEdit (or editor) edits
    idu = _idu_init(source, source_occ, guide, cfg, v, dev, st) if method == "idu" else None

    # ---- 3. edit and 4. revise ---------------------------------------------------------------
    bar = tqdm(total=total, initial=start, desc=f"pnr edit [{method}]", disable=not progress)
    tp = time.time()
    for step in range(start, total):
        phase = "edit" if step < n_edit else "revise"
        if occ is not None:
            occ.update(field, step, generator=g)
        if phase == "edit":
            res = render_resolution(step, n_edit, cfg.res_low, cfg.res_high, cfg.milestone)
        else:
            res = cfg.res_high
        # revise: the identity term's random camera ψ (Eq. 5) is rendered in the same pass as the SDS views
        w = ipg_weight(step - n_edit, revise, cfg.ipg_anneal) if phase == "revise" else 0.0
        cam = random_orbit_views(1, 1, generator=g, res=res, device=dev) if w > 0 else None
        if method == "idu":
            if step % cfg.idu_every == 0:
                _idu_update(field, occ, guide, cfg, idu, step // cfg.idu_every, g, v)
            loss = _idu_loss(field, occ, guide, cfg, idu, g, v, res)
        else:
            loss, rgb = guidance_loss(field, occ, guide, cfg, sched, min(step, n_edit), n_edit, res, g, method,
                                      extra=cam)
        if cam is not None:
            with torch.no_grad():
                rgb_src = render(guide.source, cam, guide.source_occ, num_samples=cfg.num_samples)["rgb"]
            ipg, _ = identity_loss(rgb, rgb_src, w * cfg.lambda_l1, w * cfg.lambda_p, perceptual)
            loss = loss + ipg
        _check_finite(loss, phase, step, out_dir)
        _apply(opt, loss)
        lv = float(loss.detach())
        losses.append(lv)
        bar.update(1)
        bar.set_postfix(phase=phase, loss=f"{lv:.1f}", eta=f"{eta:.3f}", res=res)
        if on_step is not None:
            on_step(phase, step, lv)
        done = step + 1
        if on_phase_end is not None and (done == n_edit or (phase == "revise" and done == total)):
            on_phase_end(phase, field, occ)
        if out_dir is not None and (done % cfg.checkpoint_every == 0 or done == total):
            phase_s["edit+revise"] = phase_s.get("edit+revise", 0.0) + time.time() - tp
            tp = time.time()
            _save_state(out_dir, {
                "version": STATE_VERSION, "step": done, "eta": eta, "eta_trace": trace, "losses": losses,
                "params": field.params_dict(), "occupancy": occ.state_dict() if occ is not None else None,
                "optimizer": opt.state_dict(), "rng": g.get_state(), "config": cfg.to_dict(),
                "field_cfg": source.cfg.to_dict(), "fingerprint": _fingerprint(src), "phase_seconds": phase_s,
                "run_seconds": earlier_s + time.time() - t0, "task": task,
                "idu": idu["images"] if idu is not None else None})
    bar.close()
    if out_dir is None or total == 0 or total % cfg.checkpoint_every != 0:
        phase_s["edit+revise"] = phase_s.get("edit+revise", 0.0) + time.time() - tp
    return EditResult(field, occ, eta, trace, losses, earlier_s + time.time() - t0, phase_s,
                      resumed_from=start if st is not None else 0)


def _copy_occ(occ: OccupancyGrid | None, dev) -> OccupancyGrid | None:
    if occ is None:
        return None
    c = OccupancyGrid(occ.resolution, occ.bound, device=dev)
    c.load_state_dict(occ.state_dict())
    return c


# ------------------------------------------------------------------------- iterative dataset update
def _idu_init(source: Field, source_occ, guide: Guide, cfg: EditConfig, v: int, dev, st: dict | None) -> dict:
    """Fixed dataset cameras (cfg.idu_groups orbits of V views) and their images, initially source renders
    (kept as "source": an image editor's conditioning views)."""
    gd = torch.Generator().manual_seed(cfg.seed + 11)
    cams = random_orbit_views(cfg.idu_groups, v, generator=gd, res=cfg.res_high, device=dev)
    with torch.no_grad():
        source_images = render(source, cams, source_occ, num_samples=cfg.num_samples)["rgb"]  # [G*V, H, W, 3]
    if st is not None and st.get("idu") is not None:
        images = st["idu"].to(dev)
    else:
        images = source_images.clone()
    return {"cams": cams, "images": images, "source": source_images}


def _idu_update(field: Field, occ, guide: Guide, cfg: EditConfig, idu: dict, k: int, g: torch.Generator, v: int):
    """Replace view group k mod G by an SDEdit edit (with c_edit) of the current render there, or with
    guide.editor by its edit (Instruct-NeRF2NeRF: InstructPix2Pix conditioned on the source views)."""
    gi = k % cfg.idu_groups
    cams = idu["cams"][gi * v:(gi + 1) * v]
    if guide.editor is not None:
        with torch.no_grad():
            rgb = render(field, cams, occ, num_samples=cfg.num_samples)["rgb"].permute(0, 3, 1, 2)
            src = idu["source"][gi * v:(gi + 1) * v].permute(0, 3, 1, 2)
            out = guide.editor(rgb, src, g).to(rgb.device).permute(0, 2, 3, 1)
        idu["images"][gi * v:(gi + 1) * v] = out.to(idu["images"].dtype)
        return
    with torch.no_grad():
        _, x = _render_x(field, occ, cams, guide, cfg, g, v, grad=False)
        lo, hi = cfg.idu_t
        t = lo + (hi - lo) * float(torch.rand(1, generator=g))
        x_e = sdedit(guide.prior, x, t, guide.cond, guide.uncond, _c2w(cams, v).to(x.device), cfg.guidance_scale,
                     steps=cfg.idu_ddim_steps, x0_range=guide.x0_range, generator=g)
        rgb = guide.prior.decode(x_e)[0].permute(0, 2, 3, 1)  # [V, h, w, 3]
        h = idu["images"].shape[1]
        if rgb.shape[1] != h:
            rgb = torch.nn.functional.interpolate(rgb.permute(0, 3, 1, 2), size=(h, h), mode="bilinear",
                                                  align_corners=False).permute(0, 2, 3, 1)
        idu["images"][gi * v:(gi + 1) * v] = rgb.to(idu["images"].dtype)


def _idu_loss(field: Field, occ, guide: Guide, cfg: EditConfig, idu: dict, g: torch.Generator, v: int,
              res: int) -> Tensor:
    """L1 between renders of one dataset view group (at `res`) and its current images."""
    gi = int(torch.randint(0, cfg.idu_groups, (1,), generator=g))
    cams = idu["cams"][gi * v:(gi + 1) * v].resized(res)
    rgb = _render_train(field, occ, cams, cfg, g)
    target = idu["images"][gi * v:(gi + 1) * v]
    if target.shape[1] != res:
        target = torch.nn.functional.interpolate(target.permute(0, 3, 1, 2), size=(res, res), mode="area"
                                                 ).permute(0, 2, 3, 1)
    return (rgb - target).abs().mean()


# ------------------------------------------------------------------------------------------ record
def write_record(path: Path, record: dict) -> None:
    from pnr.io import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1, default=_json_default))


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, (Tensor,)):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
