"""Text-to-3D smoke test (issue 4): multi-view SDS with the built-in prior from a fresh random field.

    python scripts/text_to_3d.py "a green striped vase" --out runs/t2i_vase [--steps 1500] [--device cuda]
        [--seed 0] [--prior builtin|PATH] [--schedule anneal|fixed] [--max-seconds S]

No loop of its own: it calls the edit loop (`pnr.edit.loop.edit`) with η = 1, i.e. the field the loop
optimises is exactly a fresh `init_params` draw (pnr/field/init.py; the loop's perturbation at η = 1 *is* a
fresh field), no η search and no revise phase, and the full caption as c_edit. Camera sampling (one random
orbit of the prior's 4 views per step), the render-resolution milestone (32 px -> 64 px at half the steps)
and the timestep schedule are the loop's own:
  --schedule anneal (default): the loop's annealed Σ(τ), set to MVDream's text-to-3D schedule, t_min 0.02
                               and t_max 0.98 -> 0.50 over the first half of the steps;
  --schedule fixed:            U(0.02, 0.98) throughout (DreamFusion; the loop's `regen` baseline).

Writes DIR/turntable.mp4 (without imageio-ffmpeg: DIR/turntable_frames.npz + DIR/turntable.png),
DIR/contact.png (8 views of the result; second row: the domain renderer's exact object for the caption,
when the caption is a domain caption), DIR/checkpoint/ (the field, for `pnr render` / `pnr eval`) and
DIR/t2i.json: settings, seconds per phase, steps/s, the loss trace, a render sanity check, and the domain
encoder's zero-shot reading of the turntable (each attribute of the caption read against its alternatives;
pnr.metrics.attributes), with the same reading of the exact object as a check on the reader.

--max-seconds caps the optimisation loop's wall time: past it the run stops at the next multiple of 100
steps (the loop's own checkpointed state) and t2i.json records `stopped_early_at`.

Speed: 32 samples per ray (one 32-sample segment of the renderer instead of the edit presets' two) and no
revise phase make a step cheaper than the edit loop's (~15 steps/s on the H100 with IPG). For the < 90 s
H100 run of issue 4, 1500 steps with the loop capped at 70 s (so at most ~75 s of loop plus start-up,
turntable and reading); the t max annealing ends at step 750, so a capped run only loses low-noise steps:

    PYTHONUNBUFFERED=1 python scripts/text_to_3d.py "a green striped vase" --out $OUT/t2i_vase --device cuda \
        --steps 1500 --max-seconds 70
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

SCHEDULES = {
    # MVDream's threestudio config: min_step_percent 0.02, max_step_percent 0.98 -> 0.50 at half the steps
    "anneal": dict(method="pnr", t_start=(0.02, 0.98), t_end=(0.02, 0.50), t_anneal=0.5),
    # DreamFusion: U(0.02, 0.98); the loop's regeneration baseline (η = 1, fixed schedule)
    "fixed": dict(method="regen", t_baseline=(0.02, 0.98)),
}
STATE_EVERY = 100  # with --max-seconds: the loop writes its state this often; a stop lands on one of these


def _t2i_config():
    from pnr.edit.config import EditConfig

    # η = 1 (a fresh field), no search, no revise; 32 samples per ray (one segment of the renderer); the state is
    # written every STATE_EVERY steps (set again by edit_config)
    return EditConfig(eta=1.0, search_steps=0, edit_steps=1500, revise_steps=0, num_samples=32,
                      checkpoint_every=STATE_EVERY)


T2I_CONFIG = _t2i_config()  # the loop's settings here; --steps/--seed/--frames/--frame-res and T2I_OPTIONS change them
T2I_OPTIONS = ("res_low", "res_high", "num_samples", "guidance_scale")  # EditConfig settings offered as options


class _OutOfTime(Exception):
    pass


def _sync(dev: str) -> None:
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def parse_args(argv=None) -> argparse.Namespace:
    from pnr.edit.config import EditConfig
    from pnr.field.config import FIELD_PRESETS
    from pnr.settings import add_device_option, add_options

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("caption", help='the full caption, e.g. "a green striped vase"')
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--steps", type=int, default=T2I_CONFIG.edit_steps, help="edit-loop steps")
    add_device_option(ap)
    ap.add_argument("--seed", type=int, default=T2I_CONFIG.seed)
    ap.add_argument("--prior", default="builtin", help="builtin | PATH (any --prior of `pnr edit`)")
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="anneal")
    ap.add_argument("--field", choices=tuple(FIELD_PRESETS), default="small")
    ap.add_argument("--frames", type=int, default=T2I_CONFIG.turntable_frames, help="turntable frames")
    ap.add_argument("--frame-res", type=int, default=T2I_CONFIG.turntable_res, help="turntable resolution")
    add_options(ap.add_argument_group("loop settings (EditConfig)"), EditConfig, T2I_CONFIG, only=T2I_OPTIONS)
    ap.add_argument("--encoder", default="domain", help="backbone for the attribute reading "
                    "(domain | domain:DIR | none)")
    ap.add_argument("--max-seconds", type=float, default=None, help="cap on the optimisation loop's wall time")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if a.steps < 1:
        ap.error("--steps must be >= 1")
    return a


def edit_config(a: argparse.Namespace):
    from dataclasses import replace

    from pnr.edit.config import EditConfig
    from pnr.settings import overrides

    return replace(T2I_CONFIG, edit_steps=a.steps, seed=a.seed, turntable_frames=a.frames, turntable_res=a.frame_res,
                   checkpoint_every=STATE_EVERY, **SCHEDULES[a.schedule], **overrides(a, EditConfig, only=T2I_OPTIONS))


def optimise(a: argparse.Namespace, prior, dev: str, out: Path) -> dict:
    """The field from the caption through the edit loop -> {field, occ, losses, seconds, stopped_early_at, cfg}."""
    from pnr.edit.loop import STATE_FILE, edit, load_state
    from pnr.edit.prepare import prepare_guide
    from pnr.field.config import field_preset
    from pnr.field.field import Field
    from pnr.render.occupancy import OccupancyGrid

    cfg = edit_config(a)
    fcfg = field_preset(a.field)
    # the loop starts from init_params(fcfg, seed + 1) (η = 1); the "source" is that same fresh field
    source = Field(fcfg, seed=cfg.seed + 1, device=dev)
    occ = OccupancyGrid(64, fcfg.bound, device=dev)
    prep = prepare_guide(prior, source, occ, a.caption, None, cfg)  # unknown words -> PromptError
    guide, text = prep.guide, prep.edit_text
    (out / STATE_FILE).unlink(missing_ok=True)
    budget = a.max_seconds
    _sync(dev)
    ts = time.time()

    def on_step(phase: str, step: int, loss: float) -> None:
        # at step s > 0, a multiple of STATE_EVERY, DIR/state.pt holds the state after s steps
        if budget is not None and step > 0 and step % STATE_EVERY == 0 and time.time() - ts > budget:
            raise _OutOfTime

    stopped = None
    try:
        res = edit(source, occ, guide, cfg, out_dir=out if budget is not None else None, resume=False,
                   progress=not a.quiet, on_step=on_step)
        field, occ_out, losses = res.field, res.occupancy, res.losses
    except _OutOfTime:
        st = load_state(out)
        field = Field(fcfg, device=dev)
        field.load_params_dict({k: v.to(dev) for k, v in st["params"].items()})
        occ_out = OccupancyGrid(64, fcfg.bound, device=dev)
        occ_out.load_state_dict(st["occupancy"])
        losses, stopped = st["losses"], st["step"]
        print(f"text_to_3d: --max-seconds {budget} reached; stopped at step {stopped} of {cfg.edit_steps}",
              file=sys.stderr)
    _sync(dev)
    loop_s = time.time() - ts
    (out / STATE_FILE).unlink(missing_ok=True)
    return {"field": field.eval(), "occ": occ_out, "losses": losses, "loop_s": loop_s, "stopped_early_at": stopped,
            "cfg": cfg, "conditioning_text": text, "field_cfg": fcfg}


def write_turntable(out: Path, frames: np.ndarray) -> dict:
    """DIR/turntable.mp4, or (no imageio-ffmpeg, or the writer fails) DIR/turntable_frames.npz + turntable.png."""
    from pnr.io import contact_sheet, save_png, save_video

    n = len(frames)
    err = None
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        try:
            save_video(out / "turntable.mp4", frames, fps=max(4, n // 3))
            return {"turntable": "turntable.mp4"}
        except Exception as e:  # the writer's errors depend on the imageio/ffmpeg versions
            err = f"{type(e).__name__}: {e}"
    else:
        err = "imageio-ffmpeg is not installed"
    np.savez_compressed(out / "turntable_frames.npz", frames=frames)
    save_png(out / "turntable.png", contact_sheet(frames, cols=min(n, 8)))
    print(f"text_to_3d: no MP4 ({err}); wrote turntable_frames.npz and turntable.png instead", file=sys.stderr)
    return {"turntable": "turntable_frames.npz", "turntable_sheet": "turntable.png", "video_error": err}


def read_result(caption: str, frames: np.ndarray, backbone: str, dev: str, elevation: float, res: int) -> dict:
    """The domain encoder's zero-shot reading of the turntable against the caption's attributes, and the same
    reading of the exact object (how far to trust the reader). {} parts when the caption is not a domain one."""
    from pnr.data.domain import grammar as G
    from pnr.errors import PnrError
    from pnr.metrics.attributes import read_attributes
    from pnr.metrics.eval import load_backbone
    from pnr.metrics.gt_metrics import estimate_background, exact_turntable

    try:
        spec = G.parse_caption(caption)
    except PnrError as e:
        return {"skipped": f"not a caption of the built-in domain ({e})"}
    out: dict = {"spec": spec.to_dict(), "backbone": backbone}
    try:
        enc = load_backbone(backbone, dev)
    except (PnrError, OSError) as e:
        return {**out, "skipped": f"no encoder ({e})"}
    n = len(frames)
    bg = estimate_background(torch.from_numpy(frames))
    exact = exact_turntable(spec, n, elevation=elevation, res=res, background=bg, device="cpu")
    for name, imgs in (("result", torch.from_numpy(frames)), ("exact", exact)):
        read = read_attributes(enc, imgs, spec)
        per_view = read_attributes(enc, imgs, spec, per_view=True)
        ok = {k: v == getattr(spec, k) for k, v in read.items()}
        out[name] = {"read": read, "match": ok, "accuracy": sum(ok.values()) / max(1, len(ok)),
                     "per_view_accuracy": {k: sum(x == getattr(spec, k) for x in vs) / len(vs)
                                           for k, vs in per_view.items()}}
    out["category_ok"] = out["result"]["match"].get("category")
    out["_exact_frames"] = exact
    return out


def main(argv=None) -> int:
    from pnr.errors import PnrError

    a = parse_args(argv)
    try:
        return run(a, argv)
    except PnrError as e:
        print(f"text_to_3d: error: {e}", file=sys.stderr)
        return 2


def run(a: argparse.Namespace, argv=None) -> int:
    from pnr.settings import resolve_device
    from pnr.edit.loop import write_record
    from pnr.field.checkpoint import save_checkpoint
    from pnr.io import contact_sheet, save_png
    from pnr.metrics.gt_metrics import estimate_background
    from pnr.metrics.image_metrics import render_sanity
    from pnr.priors.load import load_prior
    from pnr.render.orbit import EVAL_ORBIT
    from pnr.render.turntable import orbit_turntable

    t_all = time.time()
    dev = resolve_device(a.device)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ts = time.time()
    prior = load_prior(a.prior, device=dev)
    load_s = time.time() - ts

    r = optimise(a, prior, dev, out)
    field, occ, cfg = r["field"], r["occ"], r["cfg"]
    del prior
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()

    ts = time.time()
    orbit = EVAL_ORBIT.with_(frames=a.frames, res=a.frame_res)  # pnr eval's orbit (inside the prior's 0-30°)
    frames = orbit_turntable(field, occ, orbit).numpy()
    files = write_turntable(out, frames)
    pick = np.linspace(0, a.frames, min(8, a.frames), endpoint=False).astype(int)
    save_checkpoint(out / "checkpoint", field, occ, {"caption": a.caption, "t2i": {
        "prior": a.prior, "schedule": a.schedule, "steps": a.steps, "seed": a.seed}})
    outputs_s = time.time() - ts

    ts = time.time()
    reading = {"skipped": "--encoder none"} if a.encoder == "none" else read_result(
        a.caption, frames, a.encoder, dev, orbit.elevation, a.frame_res)
    exact = reading.pop("_exact_frames", None)
    rows = [frames[pick]]
    if exact is not None:
        rows.append((exact[pick].permute(0, 2, 3, 1).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())
    save_png(out / "contact.png", contact_sheet(np.concatenate(rows), cols=len(pick)))
    read_s = time.time() - ts

    n_done = r["stopped_early_at"] or a.steps
    sanity = render_sanity(torch.from_numpy(frames), background=estimate_background(torch.from_numpy(frames)))
    record = {
        "caption": a.caption, "conditioning_text": r["conditioning_text"], "prior": a.prior, "seed": a.seed,
        "steps": a.steps, "steps_done": n_done, "stopped_early_at": r["stopped_early_at"],
        "schedule": a.schedule, "max_seconds": a.max_seconds,
        "loop": f"pnr.edit.loop.edit, method={cfg.method}, eta=1 (a fresh init_params field), no search/revise",
        "edit_config": cfg.to_dict(), "field_config": r["field_cfg"].to_dict(),
        "seconds": {"prior_load": load_s, "loop": r["loop_s"], "turntable_and_checkpoint": outputs_s,
                    "reading": read_s, "total": time.time() - t_all},
        "steps_per_second": n_done / max(r["loop_s"], 1e-9),
        "losses": r["losses"], "sanity": sanity, "reading": reading,
        "files": {**files, "contact": "contact.png", "contact_rows": ["result", "exact object"][:len(rows)],
                  "contact_azimuths_deg": [float(i * 360.0 / a.frames) for i in pick], "checkpoint": "checkpoint"},
        "device": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu", "torch": torch.__version__,
        "machine": platform.machine(), "argv": sys.argv if argv is None else list(argv),
    }
    write_record(out / "t2i.json", record)
    res = reading.get("result")
    said = (f"; reads as {json.dumps(res['read'])} (accuracy {res['accuracy']:.2f}, exact object "
            f"{reading['exact']['accuracy']:.2f})" if res else f"; no reading ({reading.get('skipped')})")
    print(f"text_to_3d: {a.caption!r}: {n_done} steps in {r['loop_s']:.1f} s "
          f"({record['steps_per_second']:.1f} steps/s), total {record['seconds']['total']:.1f} s on {dev}{said}; "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
