"""`run`: fit each source (once per process, or through a shared cache), edit and evaluate each job, append its
record(s); a wall-time budget decides whether the next step still fits."""

from __future__ import annotations

import math
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .config import RunConfig, parse_overrides
from .jobs import (THUMB_RES, THUMB_VIEWS, TYPES, Job, jobs_of, parse_methods, read_ablation, select_edits,
                   split_tag, thumb_edit_ids, variant_run)
from .results import Appender, clean, read_results, shard_path

ROOT = Path(__file__).resolve().parents[3]  # the checkout, for the git commit recorded with each job
EVAL_DEFAULTS = dict(elevation=20.0, radius=3.0, fov=40.0)  # pnr eval's turntable orbit
METRIC_KEYS = ("clip_dir_sim", "clip_sim_target", "clip_dir_consistency", "lpips_to_source", "a_lpips",
               "a_lpips_source", "edited_attr_acc", "preservation", "psnr_to_target", "lpips_to_target",
               "psnr_source_to_target", "source_read_acc", "coverage", "reference_coverage", "haze")  # recorded flat


@dataclass(frozen=True)
class RunContext:
    """What `run` resolves once from its RunConfig and every job reads."""

    run: RunConfig
    overrides: dict  # parse_overrides(run)
    ablation: dict[str, dict] | None = None  # read_ablation(run.ablation_file)
    thumbs_dir: Path | None = None
    thumb_ids: set[str] | None = None  # edits that get thumbnails (None: none)
    device_name: str = ""
    git: str | None = None


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def field_config(name: str):
    """The source field of `quality run --field NAME`: a pnr.field.config.FIELD_PRESETS name (tiny, small, default,
    small_blob = small with threestudio's softplus + blob_magic3d density prior, issue 19)."""
    from pnr.field.config import field_preset

    return field_preset(name)


def fit_source(spec, dev, steps: int, field_name: str = "small", views: int = 40, res: int = 64,
               rays: int = 4096, samples: int = 128):
    """Exact renders of `spec` (white background, as the prior was trained) -> fitted field, occupancy
    (as pnr.edit.showcase.fit_source, with the field size and fit batch as options)."""
    from pnr.data.domain.render import render_dataset
    from pnr.data.transforms import TransformsDataset
    from pnr.fit import FitConfig, fit

    rgba, cams = render_dataset(spec, views=views, res=res, seed=0, device=dev)
    a = rgba[..., 3]
    images = rgba[..., :3] * a[..., None] + (1 - a[..., None])
    ds = TransformsDataset(images=images.cpu(), alpha=a.cpu(), cams=cams.to("cpu"), splits={"train": torch.arange(views)},
                           files=[f"v{i}" for i in range(views)], background=(1.0, 1.0, 1.0))
    with tempfile.TemporaryDirectory() as d:
        field, occ, _ = fit(ds, field_config(field_name), FitConfig(steps=steps, device=str(dev), rays_per_batch=rays,
                            num_samples=samples, checkpoint_every=10**9), d, progress=False)
    return field, occ


def cached_fit(e, a: RunConfig, dev):
    """fit_source, through --source-cache DIR when given: several processes (e.g. one per ablation variant) share
    one fit per edit; a cached checkpoint is written atomically, so a race only costs a second fit."""
    from pnr.field.checkpoint import load_checkpoint, save_checkpoint

    if not a.source_cache:
        return fit_source(e.source, dev, a.fit_steps, a.field, a.fit_views, a.fit_res, a.fit_rays, a.fit_samples)
    # the key has always named the field preset, so a new preset (small_blob) gets its own fits and the keys of the
    # existing caches (small, ...) are unchanged
    d = Path(a.source_cache) / f"{e.id}-{a.field}-{a.fit_steps}-{a.fit_views}-{a.fit_res}-{a.fit_rays}-{a.fit_samples}"
    if (d / "meta.json").exists() or d.exists():
        try:
            field, occ, _ = load_checkpoint(d, device=str(dev))
            return field, occ
        except Exception:
            pass
    field, occ = fit_source(e.source, dev, a.fit_steps, a.field, a.fit_views, a.fit_res, a.fit_rays, a.fit_samples)
    try:
        save_checkpoint(d, field, occ, {"caption": e.source_caption})
    except OSError:
        pass
    return field, occ


@dataclass
class Source:
    edit: object  # BenchmarkEdit
    field: object
    occ: object
    frames: torch.Tensor  # uint8 [V,H,W,3] eval turntable of the fitted source
    gt: torch.Tensor  # float [V,3,H,W] exact target renders, same cameras and background (on the device)
    fit_s: float
    source_psnr_to_exact: float


def _turntable(field, occ, a: RunConfig, n=None, res=None):
    from pnr.render.turntable import turntable

    frames = turntable(field, occ, n=n or a.eval_views, res=res or a.eval_res, num_samples=a.eval_samples,
                       **EVAL_DEFAULTS)
    return frames.to(field.device)  # metrics (encoder, ST-LPIPS) run where the field is


def prepare_source(e, ctx: RunContext, dev) -> Source:
    from pnr.metrics.gt_metrics import estimate_background, exact_turntable
    from pnr.metrics.image_metrics import psnr

    _sync(dev)
    t0 = time.time()
    a = ctx.run
    field, occ = cached_fit(e, a, dev)
    _sync(dev)
    fit_s = time.time() - t0
    frames = _turntable(field, occ, a)
    bg = estimate_background(frames)
    ex = lambda spec, n, res: exact_turntable(spec, n, res=res, background=bg, device=dev,  # noqa: E731
                                              **EVAL_DEFAULTS)
    gt = ex(e.target, a.eval_views, a.eval_res)
    src_psnr = psnr(frames, ex(e.source, a.eval_views, a.eval_res))
    if ctx.thumb_ids is not None and e.id in ctx.thumb_ids:
        d = ctx.thumbs_dir / e.id
        _save_strip(d / "source.png", _turntable(field, occ, a, THUMB_VIEWS, THUMB_RES))
        _save_strip(d / "target.png", ex(e.target, THUMB_VIEWS, THUMB_RES))
        if a.turntables:  # the eval turntables already rendered above
            _save_frames(d / "source.npz", frames)
            _save_frames(d / "target.npz", gt)
    return Source(e, field, occ, frames, gt, fit_s, src_psnr)


def _save_frames(path: Path, frames) -> None:
    """A turntable as uint8 [V, H, W, 3] in one .npz (for `figure --video`), written atomically. frames: uint8
    [V, H, W, 3] (a NeRF turntable) or float [V, 3, H, W] (exact renders)."""
    import io

    import numpy as np

    from pnr.io import atomic_write_bytes, to_uint8

    if torch.is_tensor(frames) and frames.is_floating_point():
        frames = frames.permute(0, 2, 3, 1)
    buf = io.BytesIO()
    np.savez_compressed(buf, frames=np.stack([to_uint8(f)[..., :3] for f in frames]))
    atomic_write_bytes(path, buf.getvalue())


def _save_strip(path: Path, frames) -> None:
    """4 views side by side, one PNG."""
    from pnr.io import save_png, to_uint8

    if torch.is_tensor(frames) and frames.dtype != torch.uint8:  # float [V,3,H,W]
        frames = frames.permute(0, 2, 3, 1)
    imgs = [to_uint8(f) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, np.concatenate(imgs, axis=1))


# ------------------------------------------------------------------------------------------ one job
def make_config(ctx: RunContext, variant: str, seed: int):
    from pnr.edit.config import preset

    method, eta = variant_run(variant)
    # the committed results were run with the eager render: keep that path unless --set render_graphs=true asks
    # otherwise, so reruns reproduce them
    return preset(ctx.run.preset, method=method, eta=eta, seed=seed,
                  **{"render_graphs": False, **overrides_of(ctx, variant)})


def overrides_of(ctx: RunContext, variant: str) -> dict:
    """--set overrides, then the variant's ablation settings (--ablation FILE: {tag: {setting: value}})."""
    tag = split_tag(variant)[1]
    own = (ctx.ablation or {}).get(tag, {})
    return {**ctx.overrides, **{k: v for k, v in own.items() if k != "methods"}}


def evaluate_field(src: Source, field, occ, a: RunConfig, encoder, frames=None) -> dict:
    """Every metric of docs/metrics.md for one edited field, flattened; 'success' also needs finite metrics.
    frames: uint8 [V, H, W, 3], the field's eval turntable if the caller rendered it already (--turntables keeps it)."""
    from pnr.metrics.eval import evaluate_frames

    e = src.edit
    frames = _turntable(field, occ, a) if frames is None else frames
    m = evaluate_frames(encoder, src.frames, frames, e.source_caption, e.target_caption, a.net, src.gt,
                        e.source, e.target)
    gt = m.get("gt", {})
    sanity = gt.get("sanity", {})
    flat = {k: m.get(k, gt.get(k, sanity.get(k))) for k in METRIC_KEYS}
    flat["changed_attributes"] = gt.get("changed_attributes")
    flat["preservation_failures"] = gt.get("preservation_failures")
    flat["empty"], flat["exploded"], flat["finite"] = sanity.get("empty"), sanity.get("exploded"), sanity.get("finite")
    flat["sanity_version"] = sanity.get("sanity_version", 1)
    nan = [k for k in METRIC_KEYS if isinstance(flat[k], float) and math.isnan(flat[k])]
    flat["success"] = bool(gt.get("success")) and not nan
    if nan:
        flat["nan_metrics"] = nan
    return clean(flat)


def run_job(src: Source, job: Job, ctx: RunContext, prior, encoder, dev) -> list[dict]:
    """Edit + evaluate one job -> its record(s) (pnr: also the pnr_norevise snapshot)."""
    from pnr.edit.config import with_prior_defaults
    from pnr.edit.eta import loss_decrease
    from pnr.edit.loop import edit
    from pnr.edit.prompts import resolve_prompts
    from pnr.edit.run import make_guide
    from pnr.errors import NumericalError
    from pnr.field.field import Field
    from pnr.render.occupancy import OccupancyGrid

    a, e = ctx.run, src.edit
    cfg = with_prior_defaults(make_config(ctx, job.variant, job.seed), prior)
    text, src_text = resolve_prompts(prior, e.prompt, e.source_caption, cfg.method)
    guide = make_guide(prior, src.field, src.occ, text, src_text)
    snap: dict = {}
    base_variant, tag = split_tag(job.variant)
    want_snap = base_variant == "pnr" and cfg.revise_steps > 0
    norevise_name = "pnr_norevise" + (f"+{tag}" if tag else "")

    def on_phase_end(phase, field, occ):
        if phase == "edit" and want_snap and a.identity_grad:
            snap["identity_grad"] = identity_gradients(field, occ, guide, cfg)
        if phase == "edit" and want_snap:
            _sync(dev)
            snap["t"] = time.time()
            snap["params"] = field.params_dict()
            snap["occ"] = occ.state_dict() if occ is not None else None

    _sync(dev)
    t0 = time.time()
    error = None
    try:
        res = edit(src.field, src.occ, guide, cfg, progress=False, on_phase_end=on_phase_end)
    except NumericalError as ex:  # a diverged edit is a finished job that failed
        res, error = None, str(ex)
    _sync(dev)
    secs = time.time() - t0

    base = {
        "edit_id": e.id, "seed": job.seed, "split": e.split, "edit_type": e.edit_type, "prompt": e.prompt,
        "source_caption": e.source_caption, "target_caption": e.target_caption, "conditioning_text": text,
        "method": cfg.method, "run_variant": job.variant, "preset": a.preset,
        "steps": {"search": cfg.search_steps if cfg.method == "pnr" and cfg.eta is None else 0,
                  "edit": cfg.edit_steps, "revise": cfg.revise_steps},
        "config_overrides": overrides_of(ctx, job.variant), "guidance_scale": cfg.guidance_scale, "delta_min": cfg.delta_min,
        "fit": {"steps": a.fit_steps, "field": a.field, "views": a.fit_views, "res": a.fit_res,
                "seconds": src.fit_s, "source_psnr_to_exact": clean(src.source_psnr_to_exact)},
        "eval": {"views": a.eval_views, "res": a.eval_res, "num_samples": a.eval_samples, "net": a.net,
                 "backbone": a.backbone, **EVAL_DEFAULTS},
        "device": ctx.device_name, "torch": torch.__version__, "python": platform.python_version(),
        "git": ctx.git, "shard": a.shard, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    thumbs = ctx.thumb_ids is not None and e.id in ctx.thumb_ids and job.seed == 0

    def norevise(eta_rec: dict, search_s: float | None) -> dict:
        """The pnr run's field at the end of its edit phase, evaluated as variant pnr_norevise."""
        f2 = Field(src.field.cfg, device=dev)
        f2.load_params_dict(snap["params"])
        o2 = None
        if snap["occ"] is not None:
            o2 = OccupancyGrid(src.occ.resolution, src.occ.bound, device=dev)
            o2.load_state_dict(snap["occ"])
        te = time.time()
        frames2 = _turntable(f2, o2, a)
        m2 = evaluate_field(src, f2, o2, a, encoder, frames2)
        s2 = {"total": snap["t"] - t0, "search": search_s,
              "edit": None if search_s is None else snap["t"] - t0 - search_s, "eval": time.time() - te}
        if thumbs:
            _save_strip(ctx.thumbs_dir / e.id / f"{norevise_name}.png", _turntable(f2, o2, a, THUMB_VIEWS, THUMB_RES))
            if a.turntables:
                _save_frames(ctx.thumbs_dir / e.id / f"{norevise_name}.npz", frames2)
        return {**base, "variant": norevise_name, **eta_rec, "success": m2["success"], "metrics": m2,
                "seconds": s2, "steps": {**base["steps"], "revise": 0}}

    if res is None:  # diverged; if that happened in the revise phase, the edit-phase snapshot still counts
        out = [{**base, "variant": job.variant, "eta": None, "error": error, "success": False, "metrics": None,
                "seconds": {"total": secs}}]
        if snap:
            out.insert(0, norevise({"eta": None}, None))
        return [clean(r) for r in out]
    trace = res.eta_trace
    k = max(1, min(10, len(trace) // 5)) if trace else 0
    eta_rec = {"eta": res.eta, "eta_auto": cfg.method == "pnr" and cfg.eta is None,
               "eta_search": {"n": len(trace), "k": k, "first_mean": sum(trace[:k]) / k, "last_mean": sum(trace[-k:]) / k,
                              "delta_loss": loss_decrease(trace, k), "trace": [round(x, 2) for x in trace]}
               if trace else None}
    search_s = res.phase_seconds.get("search", 0.0)
    loss_tail = res.losses[-10:]
    te = time.time()
    frames = _turntable(res.field, res.occupancy, a)
    m = evaluate_field(src, res.field, res.occupancy, a, encoder, frames)
    eval_s = time.time() - te
    seconds = {"total": secs, "search": search_s, "edit": secs - search_s, "eval": eval_s}
    if snap:
        seconds["edit"] = snap["t"] - t0 - search_s
        seconds["revise"] = secs - (snap["t"] - t0)
    rec = {**base, "variant": job.variant, **eta_rec, "final_loss": sum(loss_tail) / max(1, len(loss_tail)),
           "success": m["success"], "metrics": m, "seconds": seconds}
    if "identity_grad" in snap:
        rec["identity_grad"] = snap["identity_grad"]
    if res.render:  # the CUDA-graph render's counters (graphs, eager fallbacks, --lazy-budget overflow)
        rec["render"] = res.render
    out = [rec]
    if thumbs:
        _save_strip(ctx.thumbs_dir / e.id / f"{job.variant}.png",
                    _turntable(res.field, res.occupancy, a, THUMB_VIEWS, THUMB_RES))
        if a.turntables:
            _save_frames(ctx.thumbs_dir / e.id / f"{job.variant}.npz", frames)
    if snap:
        out.insert(0, norevise(eta_rec, search_s))
    return [clean(r) for r in out]


def identity_gradients(field, occ, guide, cfg) -> dict:
    """Image-space gradient norms at the start of the revise phase, for calibrating identity_scale: the SDS term
    at the revise phase's first t (V views of one orbit, seeded) against λ_L1 L1 and λ_p P (unscaled official
    weights) at the same views, and λ_L1 L1 at one random camera (identity_views "random")."""
    from pnr.edit.guide import group_c2w, orbit_group, repeat_cond
    from pnr.edit.ipg import default_perceptual
    from pnr.guidance.sds import sds
    from pnr.render.volume import render

    g = torch.Generator().manual_seed(12345)
    v, dev = guide.views(cfg), field.device
    out = {}
    with torch.no_grad():
        cams = orbit_group(cfg, v, cfg.res_high, g, dev)
        rgb = render(field, cams, occ, num_samples=cfg.num_samples)["rgb"]
        rgb_src = render(guide.source, cams, guide.source_occ, num_samples=cfg.num_samples)["rgb"]
    rgb = rgb.detach().requires_grad_(True)
    x = guide.prior.encode_images(rgb.view(1, v, *rgb.shape[1:]).permute(0, 1, 4, 2, 3))
    t = torch.full((1,), cfg.t_start[0], device=dev)
    loss = sds(guide.prior, x, repeat_cond(guide.cond, 1), repeat_cond(guide.uncond, 1), group_c2w(cams, v).to(dev),
               t, cfg.guidance_scale, weighting=cfg.weighting, x0_range=guide.x0_range, generator=g,
               recon_std_rescale=cfg.recon_std_rescale)["loss"]
    out["sds"] = float(torch.autograd.grad(loss, rgb)[0].norm())
    l1 = cfg.lambda_l1 * (rgb - rgb_src).abs().mean()
    out["l1_sds_views"] = float(torch.autograd.grad(l1, rgb)[0].norm())
    per = default_perceptual()
    if per is not None and cfg.res_high >= 32:
        p = cfg.lambda_p * per(rgb.permute(0, 3, 1, 2), rgb_src.permute(0, 3, 1, 2)).mean()
        out["p_sds_views"] = float(torch.autograd.grad(p, rgb)[0].norm())
    one = cfg.lambda_l1 * (rgb[:1] - rgb_src[:1]).abs().mean()
    out["l1_one_view"] = float(torch.autograd.grad(one, rgb)[0].norm())
    out["l1_value"] = float((rgb - rgb_src).detach().abs().mean())
    return out


def warm_up(src: Source, ctx: RunContext, prior, encoder, dev) -> None:
    """One untimed 2+2+2-step PnR edit and evaluation, so that one-off costs (CUDA context and kernels,
    lazily loaded ST-LPIPS / encoder weights) do not land in the first job's seconds."""
    from pnr.edit.loop import edit
    from pnr.edit.prompts import resolve_prompts
    from pnr.edit.run import make_guide

    e = src.edit
    cfg = replace(make_config(ctx, "pnr", 0), search_steps=2, edit_steps=2, revise_steps=2, delta_min=1.0)
    text, src_text = resolve_prompts(prior, e.prompt, e.source_caption, cfg.method)
    res = edit(src.field, src.occ, make_guide(prior, src.field, src.occ, text, src_text), cfg, progress=False)
    evaluate_field(src, res.field, res.occupancy, ctx.run, encoder)
    _sync(dev)


# ------------------------------------------------------------------------------------------- run
class Budget:
    """Stops before --max-minutes: a step is started only if elapsed + its estimate fits."""

    def __init__(self, minutes: float | None, t_start: float, margin: float = 1.15):
        self.limit = None if minutes is None else minutes * 60.0
        self.t_start, self.margin = t_start, margin
        self.job_s: dict[str, float] = {}
        self.fit_s = 0.0

    def elapsed(self) -> float:
        return time.time() - self.t_start

    def estimate(self, variant: str | None, with_fit: bool) -> float:
        job = self.job_s.get(variant, max(self.job_s.values(), default=0.0)) if variant else 0.0
        return self.margin * (job + (self.fit_s if with_fit else 0.0)) + 2.0

    def allows(self, variant: str | None, with_fit: bool = False) -> bool:
        return self.limit is None or self.elapsed() + self.estimate(variant, with_fit) <= self.limit

    def record_job(self, variant: str, s: float) -> None:
        self.job_s[variant] = max(self.job_s.get(variant, 0.0), s)

    def record_fit(self, s: float) -> None:
        self.fit_s = max(self.fit_s, s)


def _git() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    i, _, n = text.partition("/")
    shard = (int(i), int(n))
    if not (n and 0 <= shard[0] < shard[1]):
        raise SystemExit(f"--shard {text!r}: expected I/N with 0 <= I < N")
    return shard


def _use_pool(a: RunConfig) -> bool:
    """--workers K > 1, --backend or --workers-per-gpu: the jobs go to a pnr.batch worker pool (worker.py)."""
    for name in ("workers", "workers_per_gpu"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    return a.backend is not None or (a.workers or 1) > 1 or a.workers_per_gpu is not None


def cmd_run(a: RunConfig, worker_cls: type | None = None) -> int:
    """`quality run`: in this process (one shard with --shard I/N), or on a worker pool with --workers K
    (`worker_cls`, default worker.QualityWorker)."""
    t_start = time.time()
    pool = _use_pool(a)
    from pnr.metrics.eval import load_backbone
    from pnr.priors.builtin.prior import load_builtin_prior

    ctx = RunContext(a, parse_overrides(a), read_ablation(a.ablation_file) if a.ablation_file else None)
    make_config(ctx, "pnr", 0)  # fail early on a bad preset / setting
    if pool:
        from .worker import pool_plan

        pool_plan(a)  # and on a bad worker setting
    dev = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    shard = _parse_shard(a.shard)
    out = Path(a.out)
    mine = shard_path(out, shard)
    types = [t.strip() for t in a.types.split(",")] if a.types else None
    if types and any(t not in TYPES for t in types):
        raise SystemExit(f"--types: expected some of {', '.join(TYPES)}")
    variants = parse_methods(a.methods)
    if ctx.ablation:
        variants = [f"{v}+{tag}" for tag, own in ctx.ablation.items() for v in own.get("methods", variants)]
        for v in variants:
            make_config(ctx, v, 0)
    edits = select_edits(a.split, types, a.limit)
    if a.edits:
        want = [i.strip() for i in a.edits.split(",") if i.strip()]
        unknown = sorted(set(want) - {e.id for e in edits})
        if unknown:
            raise SystemExit(f"--edits: {', '.join(unknown)} not among the {len(edits)} edits of --split {a.split}"
                             + (f" --types {a.types}" if a.types else "") + (f" --limit {a.limit}" if a.limit else ""))
        edits = [e for e in edits if e.id in want]
    if shard is not None:
        edits = [e for i, e in enumerate(edits) if i % shard[1] == shard[0]]
    ctx = replace(ctx, thumbs_dir=Path(a.thumbs) if a.thumbs else out.parent / "thumbs",
                  thumb_ids=thumb_edit_ids(a.split, a.thumb_edits) if a.thumb_edits > 0 else None,
                  device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.machine()})",
                  git=_git())

    done = set(read_results(out))
    todo = [(e, [j for j in jobs_of(e.id, variants, a.seeds) if j.key not in done]) for e in edits]
    todo = [(e, js) for e, js in todo if js]
    n_jobs = sum(len(js) for _, js in todo)
    print(f"quality: {n_jobs} jobs to run over {len(todo)} source objects ({len(done)} keys already done); "
          f"writing {mine}", flush=True)
    if not todo:
        return 0
    if pool:
        from .worker import QualityWorker, run_pool

        return run_pool(todo, ctx, mine, t_start, worker_cls or QualityWorker)
    prior = load_builtin_prior(a.prior, device=dev)
    encoder = load_backbone(a.backbone, str(dev))
    writer = Appender(mine)
    budget = Budget(a.max_minutes, t_start)
    n_done, warmed = 0, False
    for e, jobs in todo:
        if not budget.allows(jobs[0].variant, with_fit=True):
            break
        src = prepare_source(e, ctx, dev)
        budget.record_fit(src.fit_s)
        if not warmed and not a.no_warm_up:
            warm_up(src, ctx, prior, encoder, dev)
            warmed = True
        stop = False
        for job in jobs:
            if not budget.allows(job.variant):
                stop = True
                break
            tj = time.time()
            recs = run_job(src, job, ctx, prior, encoder, dev)
            writer.append(recs)
            budget.record_job(job.variant, time.time() - tj)
            n_done += 1
            r = recs[-1]
            print(f"quality: [{n_done}/{n_jobs}] {e.id} {job.variant} seed {job.seed}: "
                  f"{time.time() - tj:.1f} s, eta {r.get('eta')}, success {r['success']}"
                  + (f", edit acc {r['metrics'].get('edited_attr_acc')}" if r.get("metrics") else "")
                  + (f" ({r['error']})" if r.get("error") else ""), flush=True)
        del src
        if stop:
            break
    left = n_jobs - n_done
    print(f"quality: finished {n_done} jobs in {budget.elapsed():.0f} s"
          + (f"; {left} left (stopped before --max-minutes {a.max_minutes})" if left else "; all done"), flush=True)
    return 0
