"""Quality benchmark (paper Tables 1-2, Fig. 8) on the built-in domain's held-out TEST split, with ground truth.

    python bench/quality.py run    --out bench/results/quality.jsonl [--device cuda] [--methods pnr,sds,...]
                                   [--types color,...] [--limit N] [--shard I/N] [--max-minutes M]
                                   [--fit-steps K] [--preset bench] [--edit-steps S ...] [--set NAME=VALUE ...]
    python bench/quality.py merge  --jsonl bench/results/quality.jsonl
    python bench/quality.py table  --jsonl bench/results/quality.jsonl --md docs/quality.md
    python bench/quality.py figure --jsonl bench/results/quality.jsonl --out docs/quality_grid.png
    python bench/quality.py compare --a bench/results/quality.jsonl --b OTHER.jsonl [--variant pnr]
    python bench/quality.py left   --jsonl bench/results/quality.jsonl   # jobs still to run, per variant
    (also `pnr bench quality run|merge|table|figure ...`)

run: one job per (edit_id, variant, seed). Variants: "pnr" (η by Alg. 2), "pnr_fixed_<η>" for η in
{0, 0.2, 0.4, 0.6, 0.8}, "sds", "pds", "idu", "regen"; seeds 0 and 1 for pnr and sds, seed 0 for the rest.
"pnr_norevise" is not a run of its own: each "pnr" job also evaluates its field as it was at the end of the
edit phase (the loop's on_phase_end hook) and records it with the seconds of search + edit only.
Jobs are grouped by source object; each source is rendered exactly and fitted once per process. Keys
already in the results (the --out file and its shard files) are skipped, so a run can be repeated until
everything is done. Every finished job appends one JSON line (pnr: two) in a single write + fsync; a
truncated last line (a process killed mid-write) is ignored on read and cut off before the next append.
--shard I/N: process I of N takes the edits whose index in the selected list is I mod N and writes
`<out stem>.shardI.jsonl`; `table` and `figure` read the shard files too, `merge` folds them into --out.
--max-minutes: before each source fit and each job, the harness stops if the estimate (the longest
finished job of that variant so far, else of any variant, with a margin) would overrun.

On the GPU machine: `bash bench/gpu/call.sh quality MINUTES SHARDS` runs the shards in parallel (finished keys
skipped) and packs the shard files for the trip back; bench/gpu/README.md says how to fold them in here
(copy into bench/results/, `merge`, `table`, commit).

Settings are fixed beforehand (preset "bench" of pnr/edit/config.py, Δ_min and guidance as `pnr edit`);
nothing is tuned on the test split. Per-job thumbnails (4 views, 64 px, seed 0) for the first
--thumb-edits (2) test edits of each type go to <out dir>/thumbs/ for the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/quality.py` from a checkout without an installed pnr
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TYPES = ("color", "pattern", "shape", "pose", "object")
FIXED_ETAS = (0.0, 0.2, 0.4, 0.6, 0.8)
RUN_VARIANTS = ("pnr", *(f"pnr_fixed_{e:.1f}" for e in FIXED_ETAS), "sds", "pds", "idu", "regen")
VARIANTS = ("pnr", "pnr_norevise", *RUN_VARIANTS[1:])  # as reported (pnr_norevise comes from the pnr runs)
MULTI_SEED = ("pnr", "pnr_norevise", "sds")
EVAL_DEFAULTS = dict(elevation=20.0, radius=3.0, fov=40.0)  # pnr eval's turntable orbit
THUMB_VIEWS, THUMB_RES = 4, 64

# metrics as recorded (flat) -> table columns
METRIC_KEYS = ("clip_dir_sim", "clip_sim_target", "clip_dir_consistency", "lpips_to_source", "a_lpips",
               "a_lpips_source", "edited_attr_acc", "preservation", "psnr_to_target", "lpips_to_target",
               "psnr_source_to_target", "source_read_acc", "coverage", "reference_coverage", "haze")


# ------------------------------------------------------------------------------------------- jobs
def split_tag(variant: str) -> tuple[str, str | None]:
    """"pnr+snr" -> ("pnr", "snr"): an ablation variant (--ablation) is a base variant with a tag."""
    base, _, tag = variant.partition("+")
    return base, tag or None


def variant_run(variant: str) -> tuple[str, float | None]:
    """-> (EditConfig.method, fixed η or None) of a run variant (an ablation tag is ignored)."""
    variant = split_tag(variant)[0]
    if variant == "pnr":
        return "pnr", None
    if variant.startswith("pnr_fixed_"):
        return "pnr", float(variant[len("pnr_fixed_"):])
    if variant in ("sds", "pds", "idu", "regen"):
        return variant, None
    raise ValueError(f"unknown variant {variant!r}")


def seeds_of(variant: str, n_multi: int = 2) -> tuple[int, ...]:
    return tuple(range(n_multi)) if split_tag(variant)[0] in MULTI_SEED else (0,)


def key_of(rec: dict) -> tuple[str, str, int]:
    return (rec["edit_id"], rec["variant"], int(rec["seed"]))


@dataclass(frozen=True)
class Job:
    edit_id: str
    variant: str  # a run variant (never pnr_norevise)
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.edit_id, self.variant, self.seed)


def parse_methods(text: str | None) -> list[str]:
    """--methods: comma list of variants; 'pnr_fixed' = all five fixed η; pnr_norevise implies pnr."""
    if not text:
        return list(RUN_VARIANTS)
    out: list[str] = []
    for m in (t.strip() for t in text.split(",") if t.strip()):
        names = [v for v in RUN_VARIANTS if v.startswith("pnr_fixed_")] if m == "pnr_fixed" else \
            ["pnr"] if m == "pnr_norevise" else [m]
        for n in names:
            if n not in RUN_VARIANTS:
                raise SystemExit(f"unknown method {m!r}; expected some of {', '.join(VARIANTS)} or pnr_fixed")
            if n not in out:
                out.append(n)
    return out


def select_edits(split: str = "test", types: list[str] | None = None, limit: int | None = None) -> list:
    """Benchmark edits of a split, interleaved across types (color_01, pattern_01, ..., color_02, ...) so
    that a partial run covers every type evenly; --limit keeps the first N of that order."""
    from pnr.data.domain.benchmark import make_benchmark

    es = [e for e in make_benchmark() if e.split == split and (not types or e.edit_type in types)]
    es.sort(key=lambda e: (int(e.id.rsplit("_", 1)[1]), TYPES.index(e.edit_type)))
    return es[:limit] if limit else es


def thumb_edit_ids(split: str, per_type: int) -> set[str]:
    es = select_edits(split)
    return {i for t in TYPES for i in [e.id for e in es if e.edit_type == t][:per_type]}


def jobs_of(edit_id: str, variants: list[str], n_multi: int) -> list[Job]:
    return [Job(edit_id, v, s) for s in range(max(n_multi, 1)) for v in variants if s in seeds_of(v, n_multi)]


# ------------------------------------------------------------------------------------------ JSONL
def shard_path(out: Path, shard: tuple[int, int] | None) -> Path:
    return out if shard is None else out.with_name(f"{out.stem}.shard{shard[0]}{out.suffix}")


def result_files(out: Path) -> list[Path]:
    """The results file and its shard files (those that exist)."""
    out = Path(out)
    files = [out] if out.is_file() else []
    return files + sorted(p for p in out.parent.glob(f"{out.stem}.shard*{out.suffix}") if p.is_file())


def read_jsonl(path: Path, warn=True) -> list[dict]:
    """Records of one JSONL file (or .jsonl.gz, as archived results are). Lines that do not parse (a process
    killed mid-write leaves a truncated last line) are skipped, with a note on stderr."""
    recs = []
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key_of(rec)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            if warn:
                where = "truncated last line" if i == len(lines) - 1 else f"unreadable line {i + 1}"
                print(f"quality: {path}: skipping a {where}", file=sys.stderr)
            continue
        recs.append(rec)
    return recs


def read_results(out: Path) -> dict[tuple, dict]:
    """Every record of --out and its shard files, deduplicated by key (the first one read wins)."""
    res: dict[tuple, dict] = {}
    for p in result_files(out):
        for r in read_jsonl(p):
            res.setdefault(key_of(r), r)
    return res


class Appender:
    """Appends records to a JSONL file, one os.write + fsync per call; on opening, a partial last line
    (no trailing newline: its writer was killed) is cut off so the next record starts on a fresh line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size > 0:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                print(f"quality: {self.path}: cutting off a partial last line ({len(data) - cut} bytes)",
                      file=sys.stderr)
                with open(self.path, "r+b") as f:
                    f.truncate(cut)
                    f.flush()
                    os.fsync(f.fileno())

    def append(self, records: list[dict]) -> None:
        blob = b"".join(json.dumps(r, default=_json_default, allow_nan=False).encode() + b"\n" for r in records)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            n = os.write(fd, blob)
            if n != len(blob):
                raise OSError(f"short write to {self.path} ({n} of {len(blob)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _clean(v):
    """Floats to 6 significant digits, non-finite ones -> None (JSON has no NaN/inf); nested containers too."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v


# ------------------------------------------------------------------------------------------ source
def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def field_config(name: str):
    from pnr.field.config import FieldConfig

    return {"tiny": FieldConfig.tiny, "small": FieldConfig.small, "default": FieldConfig}[name]()


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


def cached_fit(e, a, dev):
    """fit_source, through --source-cache DIR when given: several processes (e.g. one per ablation variant) share
    one fit per edit; a cached checkpoint is written atomically, so a race only costs a second fit."""
    from pnr.field.checkpoint import load_checkpoint, save_checkpoint

    if not getattr(a, "source_cache", None):
        return fit_source(e.source, dev, a.fit_steps, a.field, a.fit_views, a.fit_res, a.fit_rays, a.fit_samples)
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


def _turntable(field, occ, a, n=None, res=None):
    from pnr.render.turntable import turntable

    frames = turntable(field, occ, n=n or a.eval_views, res=res or a.eval_res, num_samples=a.eval_samples,
                       **EVAL_DEFAULTS)
    return frames.to(field.device)  # metrics (encoder, ST-LPIPS) run where the field is


def prepare_source(e, a, dev) -> Source:
    from pnr.metrics.gt_metrics import estimate_background, exact_turntable
    from pnr.metrics.image_metrics import psnr

    _sync(dev)
    t0 = time.time()
    field, occ = cached_fit(e, a, dev)
    _sync(dev)
    fit_s = time.time() - t0
    frames = _turntable(field, occ, a)
    bg = estimate_background(frames)
    ex = lambda spec, n, res: exact_turntable(spec, n, res=res, background=bg, device=dev,  # noqa: E731
                                              **EVAL_DEFAULTS)
    gt = ex(e.target, a.eval_views, a.eval_res)
    src_psnr = psnr(frames, ex(e.source, a.eval_views, a.eval_res))
    if a.thumb_ids is not None and e.id in a.thumb_ids:
        d = a.thumbs_dir / e.id
        _save_strip(d / "source.png", _turntable(field, occ, a, THUMB_VIEWS, THUMB_RES))
        _save_strip(d / "target.png", ex(e.target, THUMB_VIEWS, THUMB_RES))
    return Source(e, field, occ, frames, gt, fit_s, src_psnr)


def _save_strip(path: Path, frames) -> None:
    """4 views side by side, one PNG."""
    from pnr.io import save_png, to_uint8

    if torch.is_tensor(frames) and frames.dtype != torch.uint8:  # float [V,3,H,W]
        frames = frames.permute(0, 2, 3, 1)
    imgs = [to_uint8(f) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, np.concatenate(imgs, axis=1))


# ------------------------------------------------------------------------------------------ one job
def make_config(a, variant: str, seed: int):
    from pnr.edit.config import preset

    method, eta = variant_run(variant)
    # the committed results were run with the eager render (render_graphs was off by default until 2026-11-30);
    # keep that path unless --set render_graphs=true asks otherwise, so reruns reproduce them
    return preset(a.preset, method=method, eta=eta, seed=seed, **{"render_graphs": False, **overrides_of(a, variant)})


def overrides_of(a, variant: str) -> dict:
    """--set overrides, then the variant's ablation settings (--ablation FILE: {tag: {setting: value}})."""
    tag = split_tag(variant)[1]
    own = (getattr(a, "ablation", None) or {}).get(tag, {})
    return {**a.overrides, **{k: v for k, v in own.items() if k != "methods"}}


def evaluate_field(src: Source, field, occ, a, encoder) -> dict:
    """Every metric of docs/metrics.md for one edited field, flattened; 'success' also needs finite metrics."""
    from pnr.metrics.eval import evaluate_frames

    e = src.edit
    frames = _turntable(field, occ, a)
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
    return _clean(flat)


def run_job(src: Source, job: Job, a, prior, encoder, dev) -> list[dict]:
    """Edit + evaluate one job -> its record(s) (pnr: also the pnr_norevise snapshot)."""
    from pnr.edit.config import with_prior_defaults
    from pnr.edit.eta import loss_decrease
    from pnr.edit.loop import edit
    from pnr.edit.prompts import resolve_prompts
    from pnr.edit.run import make_guide
    from pnr.errors import NumericalError
    from pnr.field.field import Field
    from pnr.render.occupancy import OccupancyGrid

    e = src.edit
    cfg = with_prior_defaults(make_config(a, job.variant, job.seed), prior)
    text, src_text = resolve_prompts(prior, e.prompt, e.source_caption, cfg.method)
    guide = make_guide(prior, src.field, src.occ, text, src_text)
    snap: dict = {}
    base_variant, tag = split_tag(job.variant)
    want_snap = base_variant == "pnr" and cfg.revise_steps > 0
    norevise_name = "pnr_norevise" + (f"+{tag}" if tag else "")

    def on_phase_end(phase, field, occ):
        if phase == "edit" and want_snap and getattr(a, "identity_grad", False):
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
        "config_overrides": overrides_of(a, job.variant), "guidance_scale": cfg.guidance_scale, "delta_min": cfg.delta_min,
        "fit": {"steps": a.fit_steps, "field": a.field, "views": a.fit_views, "res": a.fit_res,
                "seconds": src.fit_s, "source_psnr_to_exact": _clean(src.source_psnr_to_exact)},
        "eval": {"views": a.eval_views, "res": a.eval_res, "num_samples": a.eval_samples, "net": a.net,
                 "backbone": a.backbone, **EVAL_DEFAULTS},
        "device": a.device_name, "torch": torch.__version__, "python": platform.python_version(),
        "git": a.git, "shard": a.shard_text, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    thumbs = a.thumb_ids is not None and e.id in a.thumb_ids and job.seed == 0

    def norevise(eta_rec: dict, search_s: float | None) -> dict:
        """The pnr run's field at the end of its edit phase, evaluated as variant pnr_norevise."""
        f2 = Field(src.field.cfg, device=dev)
        f2.load_params_dict(snap["params"])
        o2 = None
        if snap["occ"] is not None:
            o2 = OccupancyGrid(src.occ.resolution, src.occ.bound, device=dev)
            o2.load_state_dict(snap["occ"])
        te = time.time()
        m2 = evaluate_field(src, f2, o2, a, encoder)
        s2 = {"total": snap["t"] - t0, "search": search_s,
              "edit": None if search_s is None else snap["t"] - t0 - search_s, "eval": time.time() - te}
        if thumbs:
            _save_strip(a.thumbs_dir / e.id / f"{norevise_name}.png", _turntable(f2, o2, a, THUMB_VIEWS, THUMB_RES))
        return {**base, "variant": norevise_name, **eta_rec, "success": m2["success"], "metrics": m2,
                "seconds": s2, "steps": {**base["steps"], "revise": 0}}

    if res is None:  # diverged; if that happened in the revise phase, the edit-phase snapshot still counts
        out = [{**base, "variant": job.variant, "eta": None, "error": error, "success": False, "metrics": None,
                "seconds": {"total": secs}}]
        if snap:
            out.insert(0, norevise({"eta": None}, None))
        return [_clean(r) for r in out]
    trace = res.eta_trace
    k = max(1, min(10, len(trace) // 5)) if trace else 0
    eta_rec = {"eta": res.eta, "eta_auto": cfg.method == "pnr" and cfg.eta is None,
               "eta_search": {"n": len(trace), "k": k, "first_mean": sum(trace[:k]) / k, "last_mean": sum(trace[-k:]) / k,
                              "delta_loss": loss_decrease(trace, k), "trace": [round(x, 2) for x in trace]}
               if trace else None}
    search_s = res.phase_seconds.get("search", 0.0)
    loss_tail = res.losses[-10:]
    te = time.time()
    m = evaluate_field(src, res.field, res.occupancy, a, encoder)
    eval_s = time.time() - te
    seconds = {"total": secs, "search": search_s, "edit": secs - search_s, "eval": eval_s}
    if snap:
        seconds["edit"] = snap["t"] - t0 - search_s
        seconds["revise"] = secs - (snap["t"] - t0)
    rec = {**base, "variant": job.variant, **eta_rec, "final_loss": sum(loss_tail) / max(1, len(loss_tail)),
           "success": m["success"], "metrics": m, "seconds": seconds}
    if "identity_grad" in snap:
        rec["identity_grad"] = snap["identity_grad"]
    out = [rec]
    if thumbs:
        _save_strip(a.thumbs_dir / e.id / f"{job.variant}.png",
                    _turntable(res.field, res.occupancy, a, THUMB_VIEWS, THUMB_RES))
    if snap:
        out.insert(0, norevise(eta_rec, search_s))
    return [_clean(r) for r in out]


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


def warm_up(src: Source, a, prior, encoder, dev) -> None:
    """One untimed 2+2+2-step PnR edit and evaluation, so that one-off costs (CUDA context and kernels,
    lazily loaded ST-LPIPS / encoder weights) do not land in the first job's seconds."""
    from pnr.edit.loop import edit
    from pnr.edit.prompts import resolve_prompts
    from pnr.edit.run import make_guide

    e = src.edit
    cfg = replace(make_config(a, "pnr", 0), search_steps=2, edit_steps=2, revise_steps=2, delta_min=1.0)
    text, src_text = resolve_prompts(prior, e.prompt, e.source_caption, cfg.method)
    res = edit(src.field, src.occ, make_guide(prior, src.field, src.occ, text, src_text), cfg, progress=False)
    evaluate_field(src, res.field, res.occupancy, a, encoder)
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


def _read_ablation(path: str) -> dict[str, dict]:
    """--ablation FILE: {"tag": {"setting": value, ...}, ...}; lists become tuples (ranges). A tag's optional
    "methods": [...] runs it with those methods instead of --methods' (e.g. one reference SDS run); "_comment" keys are ignored."""
    d = json.loads(Path(path).read_text())
    if not isinstance(d, dict) or not all(isinstance(v, dict) for k, v in d.items() if not k.startswith("_")):
        raise SystemExit(f"--ablation {path}: expected {{tag: {{setting: value}}}}")
    return {k: {n: tuple(x) if isinstance(x, list) and n != "methods" else x for n, x in v.items()
                if not n.startswith("_")} for k, v in d.items() if not k.startswith("_")}


def _parse_overrides(a) -> dict:
    from pnr.edit.config import EditConfig

    types = {f.name: f for f in fields(EditConfig)}
    over: dict = {}
    for name in ("search_steps", "edit_steps", "revise_steps"):
        v = getattr(a, name)
        if v is not None:
            if v < 0:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 0")
            over[name] = v
    for item in a.set or []:
        k, _, v = item.partition("=")
        k = k.strip().replace("-", "_")
        if k not in types or k in ("method", "eta", "seed"):
            raise SystemExit(f"--set {item!r}: not an EditConfig setting (or one the harness sets per job)")
        default = types[k].default
        try:
            if isinstance(default, bool):  # bool("false") would be True
                if v.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(v)
                over[k] = v.strip().lower() in ("1", "true", "yes")
            elif isinstance(default, tuple):
                over[k] = tuple(float(x) for x in v.split(","))
            elif default is None:
                over[k] = float(v)
            else:
                over[k] = type(default)(float(v)) if isinstance(default, int) and not isinstance(default, bool) \
                    else type(default)(v)
        except ValueError:
            raise SystemExit(f"--set {item!r}: cannot read the value") from None
    return over


def cmd_run(a) -> int:
    t_start = time.time()
    from pnr.metrics.eval import load_backbone
    from pnr.priors.builtin.prior import load_builtin_prior

    a.overrides = _parse_overrides(a)
    a.ablation = _read_ablation(a.ablation_file) if a.ablation_file else None
    make_config(a, "pnr", 0)  # fail early on a bad preset / setting
    dev = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    shard = None
    if a.shard:
        i, _, n = a.shard.partition("/")
        shard = (int(i), int(n))
        if not (n and 0 <= shard[0] < shard[1]):
            raise SystemExit(f"--shard {a.shard!r}: expected I/N with 0 <= I < N")
    a.shard_text = a.shard
    out = Path(a.out)
    mine = shard_path(out, shard)
    types = [t.strip() for t in a.types.split(",")] if a.types else None
    if types and any(t not in TYPES for t in types):
        raise SystemExit(f"--types: expected some of {', '.join(TYPES)}")
    variants = parse_methods(a.methods)
    if a.ablation:
        variants = [f"{v}+{tag}" for tag, own in a.ablation.items() for v in own.get("methods", variants)]
        for v in variants:
            make_config(a, v, 0)
    edits = select_edits(a.split, types, a.limit)
    if shard is not None:
        edits = [e for i, e in enumerate(edits) if i % shard[1] == shard[0]]
    a.thumbs_dir = Path(a.thumbs) if a.thumbs else out.parent / "thumbs"
    a.thumb_ids = thumb_edit_ids(a.split, a.thumb_edits) if a.thumb_edits > 0 else None
    a.device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.machine()})"
    a.git = _git()

    done = set(read_results(out))
    todo = [(e, [j for j in jobs_of(e.id, variants, a.seeds) if j.key not in done]) for e in edits]
    todo = [(e, js) for e, js in todo if js]
    n_jobs = sum(len(js) for _, js in todo)
    print(f"quality: {n_jobs} jobs to run over {len(todo)} source objects ({len(done)} keys already done); "
          f"writing {mine}", flush=True)
    if not todo:
        return 0
    prior = load_builtin_prior(a.prior, device=dev)
    encoder = load_backbone(a.backbone, str(dev))
    writer = Appender(mine)
    budget = Budget(a.max_minutes, t_start)
    n_done, warmed = 0, False
    for e, jobs in todo:
        if not budget.allows(jobs[0].variant, with_fit=True):
            break
        src = prepare_source(e, a, dev)
        budget.record_fit(src.fit_s)
        if not warmed and not a.no_warm_up:
            warm_up(src, a, prior, encoder, dev)
            warmed = True
        stop = False
        for job in jobs:
            if not budget.allows(job.variant):
                stop = True
                break
            tj = time.time()
            recs = run_job(src, job, a, prior, encoder, dev)
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


def cmd_merge(a) -> int:
    from pnr.io import atomic_write_text

    out = Path(a.jsonl)
    files = result_files(out)
    recs = read_results(out)
    atomic_write_text(out, "".join(json.dumps(r, allow_nan=False) + "\n" for r in recs.values()))
    for p in files:
        if p != out:
            p.unlink()
    print(f"quality: merged {len(files)} files into {out} ({len(recs)} records)")
    return 0


def jobs_left(done: set, split: str = "test", n_multi: int = 2) -> dict[str, int]:
    """Run jobs not in `done` (keys), per variant — what a further `run` would still do."""
    left: dict[str, int] = {}
    for e in select_edits(split):
        for j in jobs_of(e.id, list(RUN_VARIANTS), n_multi):
            if j.key not in done:
                left[j.variant] = left.get(j.variant, 0) + 1
    return left


def cmd_left(a) -> int:
    left = jobs_left(set(read_results(Path(a.jsonl))), a.split, a.seeds)
    n = sum(left.values())
    print("jobs left: " + (", ".join(f"{v} {k}" for v, k in left.items()) if left else "none") + f" (total {n})")
    if n and a.rate:
        print(f"at {a.rate:g} jobs per device-minute: ~{n / a.rate:.1f} device-minutes")
    return 0


# ------------------------------------------------------------------------------------------ table
COLUMNS = (  # header, metric key (or special), format, better
    ("dir sim ↑", "clip_dir_sim", "{:.3f}"),
    ("dir cons ↑", "clip_dir_consistency", "{:.3f}"),
    ("LPIPS src ↓", "lpips_to_source", "{:.3f}"),
    ("A-LPIPS ↓", "a_lpips", "{:.4f}"),
    ("edit acc ↑", "edited_attr_acc", "{:.2f}"),
    ("preserve ↑", "preservation", "{:.2f}"),
    ("PSNR tgt ↑", "psnr_to_target", "{:.2f}"),
    ("LPIPS tgt ↓", "lpips_to_target", "{:.3f}"),
    ("success", "success", "{:.0%}"),
    ("η", "eta", "{:.2f}"),
    ("s/edit", "seconds", "{:.1f}"),
)


def _value(r: dict, key: str):
    if key == "success":
        return 1.0 if r.get("success") else 0.0
    if key == "eta":
        return r.get("eta")
    if key == "seconds":
        s = r.get("seconds") or {}
        return s.get("total")
    m = r.get("metrics")
    return None if m is None else m.get(key)


def _mean(vals):
    vals = [float(v) for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarize(recs: list[dict], key: str) -> tuple[float | None, float | None]:
    """(mean over all records, spread over seeds) — spread = population s.d. of the per-seed means over
    the edits finished for every seed (for 2 seeds: half the gap), None with one seed."""
    mean = _mean(_value(r, key) for r in recs)
    seeds = sorted({r["seed"] for r in recs})
    if len(seeds) < 2:
        return mean, None
    common = set.intersection(*({r["edit_id"] for r in recs if r["seed"] == s} for s in seeds))
    if not common:
        return mean, None
    per_seed = [_mean(_value(r, key) for r in recs if r["seed"] == s and r["edit_id"] in common) for s in seeds]
    if any(v is None for v in per_seed):
        return mean, None
    mu = sum(per_seed) / len(per_seed)
    return mean, math.sqrt(sum((v - mu) ** 2 for v in per_seed) / len(per_seed))


def _cell(mean, spread, fmt: str) -> str:
    if mean is None:
        return "–"
    s = fmt.format(mean)
    if spread is not None:
        s += " ± " + (fmt.format(spread).rstrip("%") + "%" if fmt.endswith("%}") else fmt.format(spread))
    return s


def expected_counts(split: str, n_multi: int = 2) -> dict[tuple[str, str], int]:
    """(variant, edit type) -> number of jobs that cover the whole split."""
    es = select_edits(split)
    return {(v, t): sum(1 for e in es if e.edit_type == t) * len(seeds_of(v, n_multi)) for v in VARIANTS for t in TYPES}


def _on_cpu(r: dict) -> bool:
    return str(r.get("device", "")).lower().startswith("cpu")


def _seconds_cell(rs: list[dict], fmt: str) -> str:
    """s/edit over the GPU records; a variant with CPU records only shows their time, marked "(CPU)"."""
    gpu = [r for r in rs if not _on_cpu(r)]
    if gpu:
        return _cell(*summarize(gpu, "seconds"), fmt)
    return _cell(*summarize(rs, "seconds"), fmt) + " (CPU)" if rs else "–"


def markdown_table(recs: list[dict], etype: str | None, expected: dict) -> str:
    head = ["method", "jobs", *[c[0] for c in COLUMNS]]
    rows = []
    for v in VARIANTS:
        rs = [r for r in recs if r["variant"] == v and (etype is None or r["edit_type"] == etype)]
        exp = sum(n for (vv, t), n in expected.items() if vv == v and (etype is None or t == etype))
        cells = [v, f"{len(rs)}/{exp}"]
        for _, key, fmt in COLUMNS:
            if key == "seconds":  # times from different machines do not average: GPU records only
                cells.append(_seconds_cell(rs, fmt))
            else:
                cells.append(_cell(*summarize(rs, key), fmt) if rs else "–")
        rows.append(cells)
    return _markdown(head, rows)


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    line = lambda c: "| " + " | ".join(c) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("---" for _ in head) + "|", *map(line, rows)])


CLAIM_COLUMNS = (("dir sim ↑", "clip_dir_sim", "{:.3f}"), ("dir cons ↑", "clip_dir_consistency", "{:.3f}"),
                 ("LPIPS src ↓", "lpips_to_source", "{:.3f}"), ("edit acc ↑", "edited_attr_acc", "{:.2f}"),
                 ("PSNR tgt ↑", "psnr_to_target", "{:.2f}"))
MAIN_METHODS = ("pnr", "pnr_norevise", "sds", "pds", "idu", "regen")
FIXED_VARIANTS = tuple(f"pnr_fixed_{e:.1f}" for e in FIXED_ETAS)


def paired_table(recs: list[dict], variants: tuple[str, ...], title: str) -> str:
    """Seed-0 records of `variants` on the edits that every one of them has finished (a like-for-like
    comparison while coverage is partial): means over the successful runs, and successes / edits."""
    by = {(r["variant"], r["edit_id"]): r for r in recs if r["seed"] == 0 and r["variant"] in variants}
    edits = set.intersection(*({e for (v, e) in by if v == vv} for vv in variants)) if by else set()
    head = [f"seed 0, {len(edits)} {title}", *[c[0] for c in CLAIM_COLUMNS], "η", "success"]
    if not edits:
        return _markdown(head, [["(no edit finished by all)"] + [""] * (len(head) - 1)])
    rows = []
    for v in variants:
        rs = [by[(v, e)] for e in sorted(edits)]
        cells = [v] + [_cell(_mean(_value(r, k) for r in rs if r.get("success")), None, f) for _, k, f in CLAIM_COLUMNS]
        cells += [_cell(_mean(r.get("eta") for r in rs), None, "{:.2f}"), f"{sum(1 for r in rs if r.get('success'))}/{len(rs)}"]
        rows.append(cells)
    return _markdown(head, rows)


def compare_runs(recs_a: dict, recs_b: dict) -> str:
    """Markdown: the same jobs (key) in two result sets, both successful — mean of each metric in A and B and
    the mean per-job |A - B|. Why: a code path meant to leave results unchanged within noise (e.g. `--set
    render_graphs=true`) is judged against a plain rerun compared the same way (GPU runs are not bit-exact)."""
    common = sorted(set(recs_a) & set(recs_b))
    both = [k for k in common if recs_a[k].get("success") and recs_b[k].get("success")]
    head = [f"{len(both)} jobs in both, successful in both ({len(common)} in both)", "A", "B", "mean |A - B|"]
    rows = []
    for name, key, fmt in CLAIM_COLUMNS + (("LPIPS tgt ↓", "lpips_to_target", "{:.3f}"), ("η", "eta", "{:.3f}")):
        pairs = [(_value(recs_a[k], key), _value(recs_b[k], key)) for k in both]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        diff = _mean(abs(float(x) - float(y)) for x, y in pairs)
        rows.append([name, _cell(_mean(x for x, _ in pairs), None, fmt), _cell(_mean(y for _, y in pairs), None, fmt),
                     _cell(diff, None, fmt)])
    ok_a = sum(1 for k in common if recs_a[k].get("success"))
    ok_b = sum(1 for k in common if recs_b[k].get("success"))
    rows.append(["success", f"{ok_a}/{len(common)}", f"{ok_b}/{len(common)}", ""])
    return _markdown(head, rows)


def cmd_compare(a) -> int:
    ra, rb = read_results(Path(a.a)), read_results(Path(a.b))
    if a.variant:
        ra = {k: r for k, r in ra.items() if r["variant"] == a.variant}
    text = compare_runs(ra, rb)
    print(f"A = {a.a}, B = {a.b}" + (f", variant {a.variant}" if a.variant else "") + "\n\n" + text)
    return 0


def _acc0(r: dict | None) -> float:
    """Edit accuracy with a failed run (no object, fog, diverged, missing) counted as 0."""
    return float((r.get("metrics") or {}).get("edited_attr_acc") or 0.0) if r and r.get("success") else 0.0


def _ok_mean(rs: list, key: str) -> float | None:
    vals = [r["metrics"][key] for r in rs if r and r.get("success") and r.get("metrics") and r["metrics"].get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(v, f: str = ".3f") -> str:
    return "–" if v is None else format(v, f)


def method_rows(rows: list[tuple[str, dict]], edits: list[str], seed: int = 0) -> str:
    """Markdown: per row (label, {edit_id: record}) edit accuracy per type and overall with failures as 0, the
    overall mean over successful runs, success, LPIPS to source, PSNR to target, dir sim (means over successes)."""
    head = ["method", *[f"{t} acc" for t in TYPES], "all acc (fail=0)", "all acc (successes)", "success",
            "LPIPS src ↓", "PSNR tgt ↑", "dir sim ↑"]
    out = []
    for label, recs in rows:
        rs = [recs.get(e) for e in edits]
        per = []
        for t in TYPES:
            ts = [recs.get(e) for e in edits if e.startswith(t + "_")]
            per.append(_fmt(sum(map(_acc0, ts)) / len(ts), ".2f") if ts else "–")
        ok = [r for r in rs if r and r.get("success")]
        out.append([label, *per, _fmt(sum(map(_acc0, rs)) / len(rs), ".2f"), _fmt(_ok_mean(ok, "edited_attr_acc"), ".2f"),
                    f"{len(ok)}/{len(rs)}", _fmt(_ok_mean(ok, "lpips_to_source")), _fmt(_ok_mean(ok, "psnr_to_target"), ".2f"),
                    _fmt(_ok_mean(ok, "clip_dir_sim"))])
    return _markdown(head, out)


def cmd_versus(a) -> int:
    """New runs (--new) against the committed results (--base) on the edits the new file covers, seed by seed."""
    new, base = read_results(Path(a.new)), read_results(Path(a.base))
    rows = []
    for v in a.variants.split(","):
        for seed in sorted({k[2] for k in new if k[1] == v}):
            rows.append((f"{v} (new, seed {seed})", {k[0]: r for k, r in new.items() if k[1] == v and k[2] == seed}))
    edits = sorted({k[0] for k in new if k[1] == a.variants.split(",")[0]},
                   key=lambda e: (TYPES.index(e.rsplit("_", 1)[0]), e))
    for v in a.against.split(","):
        for seed in sorted({k[2] for k in base if k[1] == v}):
            rows.append((f"{v} (committed, seed {seed})", {k[0]: r for k, r in base.items() if k[1] == v and k[2] == seed}))
    print(f"{len(edits)} test edits ({', '.join(f'{t} {sum(e.startswith(t + chr(95)) for e in edits)}' for t in TYPES)}); "
          f"new = {a.new}, committed = {a.base}\n")
    print(method_rows(rows, edits))
    return 0


def cmd_ablation(a) -> int:
    """Each tag of an ablation run against --ref on the same edits: edit accuracy (failures as 0) and its paired
    difference, per type, success, LPIPS to source, PSNR to target."""
    recs = read_results(Path(a.jsonl))
    by: dict[str, dict[str, dict]] = {}
    for (e, v, s), r in recs.items():
        if s == a.seed:
            by.setdefault(v, {})[e] = r
    ref = by[a.ref]
    head = ["variant", "edits", "edit acc (fail=0)", f"Δ vs {a.ref} (same edits)", *[f"{t}" for t in TYPES if t in a.types],
            "success", "LPIPS src ↓", "PSNR tgt ↑", "η mean"]
    rows = []
    for v in sorted(by, key=lambda v: (split_tag(v)[0] != "pnr", split_tag(v)[0], v != a.ref, v)):
        es = sorted(e for e in by[v] if e in ref)
        if not es:
            continue
        rs = [by[v][e] for e in es]
        acc = sum(map(_acc0, rs)) / len(rs)
        d = acc - sum(_acc0(ref[e]) for e in es) / len(es)
        per = []
        for t in (t for t in TYPES if t in a.types):
            ts = [by[v][e] for e in es if e.startswith(t + "_")]
            per.append(_fmt(sum(map(_acc0, ts)) / len(ts), ".2f") if ts else "–")
        ok = [r for r in rs if r.get("success")]
        etas = [r["eta"] for r in rs if r.get("eta") is not None]
        rows.append([v, str(len(es)), _fmt(acc, ".2f"), "" if v == a.ref else f"{d:+.2f}", *per, f"{len(ok)}/{len(rs)}",
                     _fmt(_ok_mean(ok, "lpips_to_source")), _fmt(_ok_mean(ok, "psnr_to_target"), ".2f"),
                     _fmt(sum(etas) / len(etas) if etas else None, ".2f")])
    print(_markdown(head, rows))
    return 0


def claims_section(recs: list[dict]) -> str:
    """The like-for-like tables behind the README's point-by-point comparison with the paper's claims."""
    fixed = tuple(v for v in FIXED_VARIANTS if any(r["variant"] == v and r["seed"] == 0 for r in recs))
    return "\n".join([
        "## Paired comparisons (for the paper's claims)", "",
        "Methods on the test edits finished by all of them (seed 0; metrics over successful runs):", "",
        paired_table(recs, MAIN_METHODS, "edits finished by every method"), "",
        "Adaptive η (pnr) against the fixed-η variants "
        + ("" if len(fixed) == len(FIXED_VARIANTS) else
           f"that have results so far ({', '.join(v[len('pnr_fixed_'):] for v in fixed) or 'none'} of "
           f"{', '.join(f'{e:.1f}' for e in FIXED_ETAS)}) ")
        + "on the edits finished by all of them:", "",
        paired_table(recs, ("pnr", *fixed), "edits with pnr and each fixed η"),
    ])


def _reference_line(recs: list[dict]) -> str:
    """What doing nothing scores, and how well the sources were fitted (one value per edit)."""
    per_edit: dict[str, dict] = {}
    for r in recs:
        per_edit.setdefault(r["edit_id"], r)
    nothing = _mean((r.get("metrics") or {}).get("psnr_source_to_target") for r in per_edit.values())
    fit = _mean((r.get("fit") or {}).get("source_psnr_to_exact") for r in per_edit.values())
    if nothing is None and fit is None:
        return ""
    return (f"Reference levels over the {len(per_edit)} edits with results: the unedited source field scores "
            f"PSNR tgt {_cell(nothing, None, '{:.2f}')} dB (doing nothing); the fitted sources reach "
            f"{_cell(fit, None, '{:.2f}')} dB against exact renders of the source object.")


def _sanity_note(recs: list[dict]) -> str:
    """Which success test the records used (image_metrics.render_sanity, version 1 or 2)."""
    v1 = [r for r in recs if r.get("metrics") and r["metrics"].get("sanity_version", 1) == 1]
    if not v1:
        return ("Success test v2: silhouette coverage against each frame's own background (border median), "
                "so a faint haze in empty space is not an explosion; haze > 0.25 off the source's background "
                "(fog) is.")
    tinted: dict[str, int] = {}
    for r in v1:
        m = r["metrics"]
        if m.get("exploded") and (m.get("coverage") or 0) >= 0.99:
            tinted[r["variant"]] = tinted.get(r["variant"], 0) + 1
    by = ", ".join(f"{v} {n}" for v, n in sorted(tinted.items(), key=lambda x: -x[1]))
    return (f"**Success test caveat:** {len(v1)} of {len(recs)} records were scored with success test v1, which "
            "measured coverage against the source's background colour, so a faint uniform tint of the empty "
            "space (> 0.04, e.g. the thin haze a field regenerated from random init keeps) read as 100% "
            f"coverage = \"exploded\" ({len(tinted)} variants with such v1 records at coverage ≥ 0.99: {by}; "
            "such records count as failures in the success column; the first session's 12 regen records, all "
            "failed this way, were deleted and are re-run under v2). v2 "
            "(image_metrics.render_sanity) measures the silhouette against each frame's own border; the JSONL "
            "does not hold what v2 needs, so v1 records keep v1 until re-run (delete their lines and run again).")


def cmd_table(a) -> int:
    from pnr.io import atomic_write_text

    recs = [r for r in read_results(Path(a.jsonl)).values() if r.get("split", "test") == a.split]
    expected = expected_counts(a.split, a.seeds)
    n_exp = sum(expected.values())
    n_runs = n_exp - sum(n for (v, _), n in expected.items() if v == "pnr_norevise")
    cmd = " ".join(["python bench/quality.py table --jsonl", a.jsonl, *(["--md", a.md] if a.md else []),
                    *(["--figure", a.figure] if a.figure else [])])
    settings = sorted({(r.get("preset"), json.dumps(r.get("steps")), json.dumps(r.get("config_overrides")),
                        r.get("device"), r.get("torch")) for r in recs})
    parts = [
        "# Quality benchmark (paper Tables 1-2) on the built-in domain",
        "",
        f"Generated by `{cmd}` from the committed JSONL ({len(recs)} of {n_exp} results on the {a.split} split, "
        f"from {n_runs} runs: pnr_norevise is read off the pnr runs"
        + (", **partial coverage: the numbers below are over the finished jobs only**" if len(recs) < n_exp else "")
        + "). Runs: `python bench/quality.py run` (see its docstring and the README).",
        "",
        "Each row: mean over the finished edits; for methods run with 2 seeds (pnr, pnr_norevise, sds) "
        "`± x` is the spread over seeds (population s.d. of the per-seed means over the edits finished for "
        "both seeds, i.e. half the gap between the two seeds). `jobs` = finished / expected (edits × seeds). "
        "Metrics (docs/metrics.md): dir sim / dir cons = directional similarity / consistency with the "
        "domain encoder; LPIPS src = perceptual distance (ST-LPIPS alex) to the source; A-LPIPS = between "
        "adjacent turntable frames; edit acc / preserve = ground-truth edited-attribute accuracy and "
        "preservation read by the domain encoder; PSNR / LPIPS tgt = distance to exact renders of the "
        "ground-truth target; success = finite, not empty, not exploded (see below; diverged runs count as failures "
        "and have no metrics); η = the perturbation used (auto for pnr); s/edit = seconds of the edit itself "
        "(η search + edit + revise; pnr_norevise: without the revise time), evaluation and source fit excluded, "
        "averaged over the GPU records only (a variant run only on the CPU so far shows its CPU time, marked).",
        "",
        "Settings (preset, steps, overrides, device, torch): "
        + "; ".join(f"`{p}` {st} {ov} on {d}, torch {t}" for p, st, ov, d, t in settings) if settings
        else "No jobs finished yet.",
        "",
        _reference_line(recs),
        "",
        _sanity_note(recs) if recs else "",
        "",
        "## All edit types",
        "",
        markdown_table(recs, None, expected),
    ]
    parts += ["", claims_section(recs)]
    for t in TYPES:
        parts += ["", f"## {t}", "", markdown_table(recs, t, expected)]
    if a.figure:  # (re)draw it from the thumbnails, next to the markdown, and link it
        fig = (Path(a.md).parent if a.md else Path(".")) / a.figure
        thumbs = Path(a.jsonl).parent / "thumbs"
        if thumbs.is_dir() and any(thumbs.iterdir()):
            cmd_figure(argparse.Namespace(jsonl=a.jsonl, thumbs=str(thumbs), out=str(fig), per_type=2, views=2,
                                          methods=None, split=a.split))
        parts += ["", "## Figure", "", "Rows: the first test edits of each type with thumbnails; columns: the "
                  "fitted source, each method with thumbnails so far (seed 0), the exact ground-truth target; "
                  "each cell: the first two of the 4 thumbnail views (90° apart on the eval orbit, 64 px).", "",
                  f"![source | methods | ground truth]({a.figure})"]
    text = "\n".join(p for i, p in enumerate(parts) if p or (i and parts[i - 1])) + "\n"  # no double blanks
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(a.md, text)
        print(f"quality: wrote {a.md} ({len(recs)} of {n_exp} results)")
    else:
        print(text)
    if a.readme:
        n = update_readme_tables(Path(a.readme), text)
        print(f"quality: replaced {n} tables in {a.readme}")
    return 0


README_SECTION = "### Quality benchmark"
README_TABLES = ("| method | jobs |", "| seed 0, ", "| seed 0, ")  # the all-types table, then the two paired ones


def _table_at(lines: list[str], start: int, head: str) -> tuple[int, int]:
    """(first, end) line indices of the first markdown table at or after `start` whose header begins `head`."""
    i = next((i for i in range(start, len(lines)) if lines[i].startswith(head)), None)
    if i is None:
        raise SystemExit(f"quality: no table starting {head!r} found")
    j = i
    while j < len(lines) and lines[j].startswith("|"):
        j += 1
    return i, j


def update_readme_tables(readme: Path, md: str) -> int:
    """Replace, in README's quality section, the averaged table and the two paired tables with the ones just
    generated (same order as in docs/quality.md), so README's numbers come from the same command."""
    from pnr.io import atomic_write_text

    doc, rd = md.splitlines(), readme.read_text().splitlines()
    sec = next((i for i, l in enumerate(rd) if l.startswith(README_SECTION)), None)
    if sec is None:
        raise SystemExit(f"quality: {readme} has no '{README_SECTION}' section")
    d_at = r_at = 0
    for head in README_TABLES:
        d0, d1 = _table_at(doc, d_at, head)
        r0, r1 = _table_at(rd, max(r_at, sec), head)
        rd[r0:r1] = doc[d0:d1]
        d_at, r_at = d1, r0 + (d1 - d0)
    atomic_write_text(readme, "\n".join(rd) + "\n")
    return len(README_TABLES)


# ------------------------------------------------------------------------------------------ figure
def cmd_figure(a) -> int:
    from PIL import Image, ImageDraw

    from pnr.io import save_png

    thumbs = Path(a.thumbs) if a.thumbs else Path(a.jsonl).parent / "thumbs"
    cols = ["source", *[v for v in (a.methods.split(",") if a.methods else VARIANTS)], "target"]
    es = select_edits(a.split)
    rows = []
    for t in TYPES:
        have = [e for e in es if e.edit_type == t and (thumbs / e.id / "source.png").is_file()]
        rows += have[:a.per_type]
    if not rows:
        raise SystemExit(f"quality figure: no thumbnails under {thumbs} (run `quality.py run` first)")
    # method columns without any thumbnail yet (e.g. variants not run so far) are left out
    cols = [c for c in cols if c in ("source", "target") or any((thumbs / e.id / f"{c}.png").is_file() for e in rows)]
    v, s = a.views, THUMB_RES
    label_w, head_h, pad = 150, 16, 2
    cell_w = v * s
    W = label_w + len(cols) * (cell_w + pad)
    H = head_h + len(rows) * (s + pad)
    img = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for j, c in enumerate(cols):
        draw.text((label_w + j * (cell_w + pad) + 2, 2), c.replace("pnr_fixed_", "eta="), fill=(0, 0, 0))
    for i, e in enumerate(rows):
        y = head_h + i * (s + pad)
        draw.text((2, y + 2), e.id, fill=(0, 0, 0))
        draw.text((2, y + 16), e.prompt[:24], fill=(60, 60, 60))
        for j, c in enumerate(cols):
            p = thumbs / e.id / f"{c}.png"
            if not p.is_file():
                continue
            strip = Image.open(p).convert("RGB")
            img.paste(strip.crop((0, 0, cell_w, s)), (label_w + j * (cell_w + pad), y))
    save_png(a.out, np.asarray(img))
    print(f"quality: wrote {a.out} ({len(rows)} edits x {len(cols)} columns)")
    return 0


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or continue) the benchmark jobs")
    r.add_argument("--out", default="bench/results/quality.jsonl")
    r.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    r.add_argument("--methods", default=None, help=f"comma list of {', '.join(VARIANTS)}, pnr_fixed (default: all)")
    r.add_argument("--types", default=None, help=f"comma list of {', '.join(TYPES)} (default: all)")
    r.add_argument("--limit", type=int, default=None, help="only the first N edits (interleaved over types)")
    r.add_argument("--shard", default=None, help="I/N: this process takes edits i with i mod N == I")
    r.add_argument("--max-minutes", type=float, default=None, help="stop before this wall time is exceeded")
    r.add_argument("--split", choices=("test", "dev"), default="test", help="test (the benchmark); dev only for tuning")
    r.add_argument("--seeds", type=int, default=2, help="seeds for pnr and sds (others: 1)")
    r.add_argument("--preset", default="bench")
    r.add_argument("--search-steps", type=int, default=None)
    r.add_argument("--edit-steps", type=int, default=None)
    r.add_argument("--revise-steps", type=int, default=None)
    r.add_argument("--set", action="append", metavar="NAME=VALUE", help="any other EditConfig setting (repeatable)")
    r.add_argument("--ablation", dest="ablation_file", default=None,
                   help="JSON {tag: {setting: value}}: every method runs once per tag, as variant METHOD+TAG")
    r.add_argument("--source-cache", default=None, help="folder of fitted sources shared between processes")
    r.add_argument("--identity-grad", action="store_true",
                   help="record image-space gradient norms of the SDS and identity terms at the start of revise")
    r.add_argument("--prior", default=None, help="built-in prior checkpoint (default: the shipped one)")
    r.add_argument("--backbone", default="domain", help="metric encoder (pnr eval --backbone)")
    r.add_argument("--net", default="alex", help="ST-LPIPS trunk")
    r.add_argument("--fit-steps", type=int, default=400)
    r.add_argument("--field", choices=("tiny", "small", "default"), default="small")
    r.add_argument("--fit-views", type=int, default=40)
    r.add_argument("--fit-res", type=int, default=64)
    r.add_argument("--fit-rays", type=int, default=4096)
    r.add_argument("--fit-samples", type=int, default=128)
    r.add_argument("--eval-views", type=int, default=24)
    r.add_argument("--eval-res", type=int, default=128)
    r.add_argument("--eval-samples", type=int, default=128)
    r.add_argument("--thumb-edits", type=int, default=2, help="edits per type with thumbnails for the figure")
    r.add_argument("--thumbs", default=None, help="thumbnail folder (default: <out dir>/thumbs)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    r.add_argument("--no-warm-up", action="store_true", help="skip the untimed warm-up edit before the first job")
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("merge", help="fold the shard files into the results file")
    m.add_argument("--jsonl", default="bench/results/quality.jsonl")
    m.set_defaults(func=cmd_merge)
    t = sub.add_parser("table", help="markdown tables per edit type and averaged")
    t.add_argument("--jsonl", default="bench/results/quality.jsonl")
    t.add_argument("--md", default=None, help="write here (default: print)")
    t.add_argument("--split", choices=("test", "dev"), default="test")
    t.add_argument("--seeds", type=int, default=2)
    t.add_argument("--figure", default=None, help="also draw the figure grid at this path (relative to --md) and link it")
    t.add_argument("--readme", default=None, help="also replace the averaged and paired tables in this README's "
                   f"'{README_SECTION}' section")
    t.set_defaults(func=cmd_table)
    lf = sub.add_parser("left", help="jobs not finished yet, per variant")
    lf.add_argument("--jsonl", default="bench/results/quality.jsonl")
    lf.add_argument("--split", choices=("test", "dev"), default="test")
    lf.add_argument("--seeds", type=int, default=2)
    lf.add_argument("--rate", type=float, default=25.0, help="jobs per device-minute for the estimate "
                    "(2026-11-30: ~25 with 24 shards on nvidia-h200-x2)")
    lf.set_defaults(func=cmd_left)
    c = sub.add_parser("compare", help="the same jobs in two result files: means and mean per-job difference")
    c.add_argument("--a", required=True, help="results JSONL (its shard files are read too)")
    c.add_argument("--b", required=True)
    c.add_argument("--variant", default=None, help="only this variant (e.g. pnr)")
    c.set_defaults(func=cmd_compare)
    vs = sub.add_parser("versus", help="new runs against the committed baselines on the same edits (fail = 0 and over successes)")
    vs.add_argument("--new", required=True)
    vs.add_argument("--base", default="bench/results/quality.jsonl")
    vs.add_argument("--variants", default="pnr,pnr_norevise")
    vs.add_argument("--against", default="pnr,sds,pds,idu,regen")
    vs.set_defaults(func=cmd_versus)
    ab = sub.add_parser("ablation", help="every ablation tag against a reference tag on the same edits")
    ab.add_argument("--jsonl", required=True)
    ab.add_argument("--ref", default="pnr+ref")
    ab.add_argument("--seed", type=int, default=0)
    ab.add_argument("--types", default="shape,pose,object")
    ab.set_defaults(func=cmd_ablation)
    f = sub.add_parser("figure", help="PNG grid: source | each method | ground truth")
    f.add_argument("--jsonl", default="bench/results/quality.jsonl")
    f.add_argument("--thumbs", default=None)
    f.add_argument("--out", default="docs/quality_grid.png")
    f.add_argument("--per-type", type=int, default=2)
    f.add_argument("--views", type=int, default=1, choices=(1, 2, 3, 4))
    f.add_argument("--methods", default=None)
    f.add_argument("--split", choices=("test", "dev"), default="test")
    f.set_defaults(func=cmd_figure)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    return int(a.func(a) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
