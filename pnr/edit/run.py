"""One edit from a loaded source and prior to files in DIR: prompts -> Guide -> `edit` -> outputs.

Loading, fitting and checking what an edit needs is pnr.edit.prepare (`prepare_edit`); this module runs it.

DIR/checkpoint/      edited field (pnr.field.checkpoint format; meta holds the edited caption)
DIR/edit.json        every setting, seed, prompts, η and its loss trace, losses, timings
DIR/turntable.mp4    source | edit side by side, one orbit
DIR/contact.png      contact sheet of the same frames
DIR/state.pt         partial-run state while running (removed when the edit is complete)
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

from pnr.edit.config import EditConfig
from pnr.edit.loop import STATE_FILE, EditResult, Guide, edit, write_record
from pnr.edit.prompts import prompt_words
from pnr.errors import DeviceMemoryError
from pnr.field.field import Field
from pnr.render.occupancy import OccupancyGrid
from pnr.render.orbit import EDIT_ORBIT


def make_guide(prior, source: Field, source_occ: OccupancyGrid | None, edit_text: str,
               source_text: str | None) -> Guide:
    """Encodes the prompts once (PromptError for words the prior cannot represent)."""
    with torch.no_grad():
        cond = prior.encode_text([edit_text])
        uncond = prior.null_text(1)
        cond_src = prior.encode_text([source_text]) if source_text else None
    return Guide(prior, cond, uncond, cond_src, source.eval(), source_occ, getattr(prior, "x0_range", None))


@torch.no_grad()
def turntable_frames(field: Field, occ, n: int, res: int, elevation: float = EDIT_ORBIT.elevation,
                     radius: float = EDIT_ORBIT.radius, fov: float = EDIT_ORBIT.fov, num_samples: int = 128):
    """uint8 [n, res, res, 3] around the object on the edit outputs' orbit (pnr.render.orbit.EDIT_ORBIT)."""
    from pnr.render.turntable import orbit_turntable

    orbit = EDIT_ORBIT.with_(frames=n, res=res, elevation=elevation, radius=radius, fov=fov)
    return np.asarray(orbit_turntable(field, occ, orbit, num_samples=num_samples))


def edit_to_dir(source: Field, source_occ: OccupancyGrid | None, prior, edit_prompt: str,
                source_prompt: str | None, cfg: EditConfig, out_dir: str | Path, resume: bool = True,
                progress: bool = True, extra_record: dict | None = None, on_step=None,
                turntable_samples: int = 128, editor=None,
                started_at: float | None = None, scene_transform: dict | None = None) -> tuple[EditResult, dict]:
    """Runs the edit and writes DIR (see module doc). Returns (result, the edit.json record).
    `editor` (method idu only): an image editor with `edit_images(images, instruction, cond_images, generator)`
    (pnr.priors.ip2p.IP2PEditor) that edits the dataset views instead of SDEdit with `prior` (which may then be
    None); it gets the prompt as written, and views per group default to 4. `started_at` (a time.time()):
    edit.json also records `wall_seconds_incl_loading` since then (pnr.edit.prepare.PreparedEdit.run).
    `scene_transform` (the source checkpoint's meta entry) is copied into the edited checkpoint, which lives in the
    same frame. edit.json is written once, here, when the edit is complete."""
    from pnr.field.checkpoint import save_checkpoint
    from pnr.io import contact_sheet, save_png, save_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from pnr.edit.prepare import prepare_guide

    prep = prepare_guide(prior, source, source_occ, edit_prompt, source_prompt, cfg, editor)
    guide, cfg, edit_text, source_text = prep.guide, prep.cfg, prep.edit_text, prep.source_text
    task = {"edit text": edit_text, "source text": source_text,
            "editor": type(editor).__name__ if editor is not None else None}
    res = edit(source, source_occ, guide, cfg, out_dir=out_dir, resume=resume, progress=progress, on_step=on_step,
               task=task)

    ts = time.time()
    meta = {"caption": edit_text if source_text and editor is None else None, "source_caption": source_text,
            "edit": {"method": cfg.method, "prompt": edit_prompt, "eta": res.eta, "seed": cfg.seed}}
    if scene_transform is not None:
        meta["scene_transform"] = scene_transform
    save_checkpoint(out_dir / "checkpoint", res.field, res.occupancy, meta)
    outputs = ["checkpoint", "edit.json"]
    n = cfg.turntable_frames
    if n > 0:
        try:
            a = turntable_frames(source, source_occ, n, cfg.turntable_res, num_samples=turntable_samples)
            b = turntable_frames(res.field, res.occupancy, n, cfg.turntable_res, num_samples=turntable_samples)
        except torch.OutOfMemoryError as e:  # the edit itself is done and saved: say so, and how to get the video
            raise DeviceMemoryError(
                f"out of GPU memory rendering the turntable ({n} frames at {cfg.turntable_res} px, "
                f"{turntable_samples} samples per ray) after the edit finished: its checkpoint is in "
                f"{out_dir / 'checkpoint'} and rerunning the same command writes the outputs without editing again; "
                f"lower --turntable-res or pass --turntable-frames 0, or free the GPU of other processes. "
                f"({str(e).splitlines()[0] if str(e) else 'CUDA out of memory'})") from e
        pairs = np.concatenate([a, np.full_like(a[:, :, :4], 255), b], axis=2)  # source | edit
        outputs.append(save_video(out_dir / "turntable.mp4", pairs, fps=max(4, n // 3)).name)
        save_png(out_dir / "contact.png", contact_sheet(pairs[:: max(1, n // 8)], cols=2))
        outputs.append("contact.png")
    record = {
        "method": cfg.method, "prompt": edit_prompt, "source_prompt": source_prompt,
        "conditioning_text": edit_text, "source_conditioning_text": source_text,
        "prompt_words": prompt_words(prior if editor is None else None, edit_prompt),  # used / ignored words
        "eta": res.eta, "eta_auto": cfg.method == "pnr" and cfg.eta is None, "eta_trace": res.eta_trace,
        "losses": res.losses, "config": cfg.to_dict(), "seed": cfg.seed,
        "seconds": {"total": res.seconds, **res.phase_seconds, "outputs": time.time() - ts},
        "device": str(source.device), "torch": torch.__version__, "machine": platform.machine(),
        "field_config": source.cfg.to_dict(), "outputs": outputs, "finished": True, **(extra_record or {}),
    }
    if res.render:
        record["render"] = res.render
    if started_at is not None:
        record["wall_seconds_incl_loading"] = time.time() - started_at
    write_record(out_dir / "edit.json", record)
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    return res, record
