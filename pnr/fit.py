"""Fit a hash-grid field to a posed image dataset (dataset -> field, the first arrow of the pipeline).

Per step: sample random training rays, render them with jittered samples and a random background
colour (so opacity must match the images' alpha, as instant-ngp trains on NeRF-synthetic), MSE to
the targets re-composited on that colour, Adam step, occupancy-grid update. The learned background
model is taught the dataset's background colour. Checkpoints (with optimizer + RNG state) are written
atomically every `checkpoint_every` steps; `resume=True` continues from the last one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from pnr.data.scene import (SceneTransform, check_fitted_density, check_scene_fits, detect_unbounded,
                            normalize_scene)
from pnr.data.transforms import TransformsDataset
from pnr.errors import CheckpointError, NumericalError, PnrError
from pnr.field.checkpoint import load_checkpoint, load_extra_tensors, save_checkpoint
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.io import atomic_write_text, check_writable
from pnr.render.cameras import generate_rays
from pnr.field.contraction import random_points
from pnr.render.occupancy import OccupancyGrid
from pnr.render.occupancy_contracted import make_occupancy
from pnr.render.volume import render
from pnr.fit_config import FitConfig, fit_config_for  # noqa: F401  (the settings' home)


def psnr(a: Tensor, b: Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def eval_size(width: int, height: int, max_res: int | None) -> tuple[int, int]:
    """(w, h) with the longer side at most `max_res` (aspect kept; None or 0: unchanged)."""
    if not max_res or max(width, height) <= max_res:
        return width, height
    s = max_res / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def _area_resize(img: Tensor, w: int, h: int) -> Tensor:
    """[H, W, 3] -> [h, w, 3] by area averaging (what a lower-resolution photo of the scene would be)."""
    if img.shape[:2] == (h, w):
        return img
    x = img.permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(x, size=(h, w), mode="area")[0].permute(1, 2, 0)


@torch.no_grad()
def evaluate(field: Field, occupancy: OccupancyGrid | None, data: TransformsDataset, num_samples: int = 128,
             chunk: int = 1 << 14, max_res: int | None = None, progress: bool = False,
             views: int | None = None) -> dict:
    """Mean PSNR over `data`'s views (the first `views` of them, if given) rendered with the field's own
    background, at most `max_res` pixels a side (the images are area-averaged to the same size)."""
    w, h = eval_size(data.cams.width, data.cams.height, max_res)
    n = len(data) if views is None else min(views, len(data))
    vals = []
    for i in tqdm(range(n), disable=not progress, desc=f"held-out eval {w}x{h}", dynamic_ncols=True, leave=False):
        out = render(field, data.cams[i].resized(w, h), occupancy, num_samples=num_samples, chunk=chunk)
        vals.append(psnr(out["rgb"][0].cpu(), _area_resize(data.images[i], w, h)))
    return {"psnr": sum(vals) / len(vals), "psnr_per_view": vals, "res": [w, h]}


_check_writable = check_writable  # the one writability check lives in pnr.io


def _split(data: TransformsDataset, name: str) -> TransformsDataset | None:
    idx = data.splits.get(name)
    return data.subset(name) if idx is not None and idx.numel() else None


def fit(dataset: TransformsDataset, field_cfg: FieldConfig, fit_cfg: FitConfig, out_dir: str | Path,
        resume: bool = False, progress: bool = True) -> tuple[Field, OccupancyGrid, dict]:
    """Train a field on `dataset` ("train" split if present). Writes OUT/checkpoint/ and OUT/metrics.json.
    Returns (field, occupancy, metrics) where metrics holds held-out ("test"/"val") PSNR when available."""
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoint"
    check_writable(out_dir)
    c, dev = fit_cfg, torch.device(fit_cfg.device)

    gen = torch.Generator().manual_seed(c.seed)
    start = 0
    if resume:
        if not (ckpt_dir / "config.json").exists():
            raise CheckpointError(f"{ckpt_dir}: nothing to resume (no checkpoint)")
        field, occ, meta = load_checkpoint(ckpt_dir, device=dev)
        scene = SceneTransform.from_meta(meta)  # the frame the checkpoint was fitted in
        if occ is None:
            occ = make_occupancy(c.occupancy_resolution, field.cfg.bound, field.cfg.contraction, device=dev)
        start = int(meta.get("step", 0))
        if field.cfg != field_cfg:
            if progress:
                tqdm.write("fit: resuming with the checkpoint's own field config; the one asked for is ignored")
            field_cfg = field.cfg  # the checkpoint's own config wins
        if start >= fit_cfg.steps and progress:
            tqdm.write(f"fit: {ckpt_dir} is already at step {start} >= --steps {fit_cfg.steps}: nothing to train")
    else:
        if (ckpt_dir / "config.json").exists():
            raise PnrError(f"{out_dir}: already holds a checkpoint; pass --resume to continue or choose another --out")
        field = Field(field_cfg, seed=c.seed, device=dev)
        occ = make_occupancy(c.occupancy_resolution, field_cfg.bound, field_cfg.contraction, device=dev)
        cm = dataset.cams
        scene = normalize_scene(cm.c2w, cm.fx, cm.fy, cm.width, cm.height, field_cfg.bound, c.normalize, c.orient,
                                c.scale, dataset.scene)
    if not scene.is_identity():
        dataset = dataset.with_cameras(dataset.cams.transformed(scene.apply_c2w(dataset.cams.c2w)))
        if progress and not resume:
            tqdm.write(f"fit: scene normalised from its {scene.source} (scale {scene.scale:.4g}); "
                       "the transform is stored in the checkpoint")
    train = _split(dataset, "train") or dataset
    held = _split(dataset, "test") or _split(dataset, "val")
    warns: list[str] = []

    mlp = [p for n, p in field.named_parameters() if n != "encoding_tables"]
    opt = torch.optim.Adam([{"params": [field.encoding_tables], "weight_decay": 0.0},
                            {"params": mlp, "weight_decay": c.weight_decay}], lr=c.lr, betas=(0.9, 0.99), eps=1e-15)
    if resume:
        extra = load_extra_tensors(ckpt_dir)
        if "rng" in extra:
            gen.set_state(extra["rng"])
        params = [field.encoding_tables] + mlp
        for i, p in enumerate(params):
            if f"adam.{i}.exp_avg" in extra:
                opt.state[p] = {"step": extra[f"adam.{i}.step"].clone(), "exp_avg": extra[f"adam.{i}.exp_avg"].to(dev),
                                "exp_avg_sq": extra[f"adam.{i}.exp_avg_sq"].to(dev)}
    decay = c.lr_final_ratio ** (1.0 / max(c.steps, 1))

    # every training ray, precomputed once
    o, d = generate_rays(train.cams.to(dev))
    rays_o, rays_d = o.reshape(-1, 3), d.reshape(-1, 3)
    target = train.images.to(dev).reshape(-1, 3)
    alpha = train.alpha.to(dev).reshape(-1)
    data_bg = torch.tensor(dataset.background, device=dev)
    has_alpha = bool((alpha < 1).any())  # masked objects (NeRF-synthetic, pnr data object); real photos: False
    n_rays = rays_o.shape[0]
    if not resume:  # clear limits: say so when the cameras see mostly what this field cannot hold
        pick = torch.randint(0, n_rays, (65536,), generator=torch.Generator().manual_seed(0)).to(dev)
        hint = detect_unbounded(train.images, train.alpha, dataset.scene) if field.cfg.contraction == "none" else None
        warns += check_scene_fits(train.cams.c2w.to(dev), rays_o[pick], rays_d[pick], field.cfg.bound,
                                  field.cfg.contraction, hint)
        for w in warns:
            print(f"pnr fit: warning: {w}", file=sys.stderr)

    def checkpoint(step: int) -> None:
        extra = {"rng": gen.get_state()}
        for i, p in enumerate([field.encoding_tables] + mlp):
            st = opt.state.get(p)
            if st:
                extra[f"adam.{i}.step"] = torch.as_tensor(st["step"]).reshape(1).float().cpu() if not torch.is_tensor(st["step"]) else st["step"].cpu()
                extra[f"adam.{i}.exp_avg"], extra[f"adam.{i}.exp_avg_sq"] = st["exp_avg"], st["exp_avg_sq"]
        save_checkpoint(ckpt_dir, field, occ, {"step": step, "train_time_s": t_train, "fit_config": asdict(c),
                                             "scene_transform": scene.to_meta(),
                                             **({"caption": dataset.caption} if dataset.caption else {})}, extra)

    t_train = float(meta.get("train_time_s", 0.0)) if resume else 0.0  # time limits count across resumes
    t_session, samples_total, rays_total, loss_val = 0.0, 0.0, 0, float("nan")
    trace: list[list[float]] = []  # [step, held-out PSNR] every eval_every steps
    step = start
    end = c.steps if c.stop_after is None else min(c.steps, c.stop_after)
    bar = tqdm(range(start, end), disable=not progress, desc="fit", dynamic_ncols=True, initial=start, total=end)
    for step in bar:
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = c.lr * decay**step
        idx = torch.randint(0, n_rays, (c.rays_per_batch,), generator=gen).to(dev)
        a = alpha[idx, None]
        if c.random_background and has_alpha:  # opaque photos: the field's own background learns what is far
            bg = torch.rand(c.rays_per_batch, 3, generator=gen).to(dev)
            tgt = target[idx] + (1 - a) * (bg - data_bg)
        else:
            bg, tgt = None, target[idx]
        out = render_rays_train(field, rays_o[idx], rays_d[idx], occ, c, gen, bg)
        loss = torch.mean((out["rgb"] - tgt) ** 2)
        if field.cfg.background == "learned" and has_alpha:  # opaque photos say nothing about a background colour
            loss = loss + torch.mean((field.background(rays_d[idx]) - data_bg) ** 2)
        if c.empty_space_weight > 0 and c.empty_space_points > 0:
            x = random_points(c.empty_space_points, field.cfg.bound, field.cfg.contraction, gen, dev)
            x = x[~occ.query(x)]
            if x.shape[0]:
                loss = loss + c.empty_space_weight * field.density(x).mean()
        if not torch.isfinite(loss):
            raise NumericalError(f"loss became {float(loss)} at step {step}; last good checkpoint kept in {ckpt_dir}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        occ.update(field, step, generator=gen)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        t_train += dt
        t_session += dt
        samples_total += float(out["samples_per_ray"]) * c.rays_per_batch
        rays_total += c.rays_per_batch
        loss_val = float(loss.detach())
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{loss_val:.4f}", psnr=f"{-10 * math.log10(max(loss_val, 1e-10)):.1f}",
                            spr=f"{float(out['samples_per_ray']):.0f}")
        if c.eval_every > 0 and held is not None and (step + 1) % c.eval_every == 0 and step + 1 < end:
            ev = evaluate(field, occ, held, c.num_samples, c.eval_chunk, c.eval_max_res, views=c.eval_views)
            trace.append([step + 1, ev["psnr"]])
            if progress:
                tqdm.write(f"fit: step {step + 1}: held-out PSNR {ev['psnr']:.2f} dB ({len(ev['psnr_per_view'])} views "
                           f"at {ev['res'][0]}x{ev['res'][1]})")
        if (step + 1) % c.checkpoint_every == 0 and step + 1 < end:
            checkpoint(step + 1)
        if c.time_limit_s is not None and t_train >= c.time_limit_s:
            end = step + 1
            break
    bar.close()
    final_step = max(end, start)
    checkpoint(final_step)
    if final_step > start:
        for w in check_fitted_density(occ, field.cfg.bound, field.cfg.contraction):
            print(f"pnr fit: warning: {w}", file=sys.stderr)
            warns.append(w)

    metrics = {"step": final_step, "train_time_s": t_train, "train_loss": loss_val,
               "rays_per_s": rays_total / t_session if t_session else None,
               "samples_per_s": samples_total / t_session if t_session else None,
               "samples_per_ray": samples_total / rays_total if rays_total else None,
               "occupied_fraction": occ.occupied_fraction(), "field_config": field.cfg.to_dict(),
               "fit_config": asdict(c), "scene_transform": scene.to_meta(), "warnings": warns}
    if held is not None:
        ev = evaluate(field, occ, held, c.num_samples, c.eval_chunk, c.eval_max_res, progress=progress)
        metrics["heldout_psnr"] = ev["psnr"]
        metrics["heldout_views"] = len(held)
        metrics["heldout_res"] = ev["res"]
        if trace:
            metrics["heldout_psnr_trace"] = trace
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=1))
    return field, occ, metrics


def render_rays_train(field, o, d, occ, c: FitConfig, gen, bg):
    from pnr.render.volume import render_rays

    return render_rays(field, o, d, occ, num_samples=c.num_samples, perturb=True, generator=gen, bg_color=bg)


def evaluate_checkpoint(checkpoint: str | Path, dataset: TransformsDataset, split: str = "test",
                        max_res: int | None = 256, num_samples: int = 128, device: str = "cpu",
                        progress: bool = False) -> dict:
    """Held-out PSNR of a checkpoint on `dataset`'s `split` views, in the frame the checkpoint was fitted in
    (its meta's scene_transform; the identity for checkpoints without one)."""
    field, occ, meta = load_checkpoint(checkpoint, device=device)
    scene = SceneTransform.from_meta(meta)
    held = dataset.subset(split)
    held = held.with_cameras(held.cams.transformed(scene.apply_c2w(held.cams.c2w)))
    return evaluate(field, occ, held, num_samples, max_res=max_res, progress=progress)
