"""Evaluation of edits: turntables of source and edit -> every metric of docs/metrics.md.

`evaluate_frames` works on image tensors (testable without fields); `resolve_edit` + `evaluate_edit` load an
edit folder written by `pnr edit` (edit.json + checkpoint/) or a pair of checkpoints, render both turntables
from the same cameras, and find the ground truth when the objects come from the built-in domain.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pnr.errors import CheckpointError, PnrError
from pnr.metrics.clip_metrics import (as_float_chw, directional_consistency_from_embeddings,
                                      directional_similarity_from_embeddings, embed_images)
from pnr.metrics.image_metrics import a_lpips, lpips_mean
from pnr.metrics.eval_config import EvalConfig  # noqa: F401  (the settings' home; re-exported)


# ------------------------------------------------------------------ backbones


def load_backbone(name: str = "domain", device: str = "cpu"):
    """An object with encode_image([B,3,H,W] in [0,1]) -> [B,D] and encode_text(list[str]) -> [B,D], unit norm."""
    if name == "domain":
        from pnr.metrics.encoder import get_encoder

        return get_encoder(None, device)
    if name.startswith("domain:"):
        from pnr.metrics.encoder import get_encoder

        return get_encoder(name.split(":", 1)[1], device)
    if name.startswith("clip:"):
        try:
            from pnr.priors.clip_hf import load_clip  # optional: transformers + the user's CLIP weights
        except ImportError as e:
            raise PnrError(f"backbone {name!r} needs transformers and pnr.priors.clip_hf ({e})") from e
        return load_clip(name.split(":", 1)[1], device=device)
    raise PnrError(f"unknown backbone {name!r}: use 'domain', 'domain:DIR' or 'clip:HUB_ID_OR_PATH'")


# ------------------------------------------------------------------ metrics on frames


@torch.no_grad()
def evaluate_frames(encoder, src: torch.Tensor, edit: torch.Tensor, src_caption: str | None, tgt_caption: str | None,
                    net: str = "alex", gt: torch.Tensor | None = None, source_spec=None, target_spec=None) -> dict:
    """All metrics of one edit from aligned turntable frames (float [V,3,H,W] in [0,1] or uint8 [V,H,W,3])."""
    src, edit = as_float_chw(src).float(), as_float_chw(edit).float()
    if src.shape != edit.shape:
        raise PnrError(f"source and edit turntables differ in shape: {tuple(src.shape)} vs {tuple(edit.shape)}")
    e_s, e_e = embed_images(encoder, src), embed_images(encoder, edit)
    out: dict = {"views": src.shape[0]}
    if src_caption and tgt_caption:
        t = encoder.encode_text([src_caption, tgt_caption])
        out["clip_dir_sim"] = directional_similarity_from_embeddings(e_s, e_e, t[0], t[1]).mean().item()
        out["clip_sim_target"] = (e_e @ t[1].to(e_e.dtype)).mean().item()
    out["clip_dir_consistency"] = directional_consistency_from_embeddings(e_s, e_e).mean().item()
    out["lpips_to_source"] = lpips_mean(src, edit, net)
    out["a_lpips"] = a_lpips(edit, net)
    out["a_lpips_source"] = a_lpips(src, net)
    if source_spec is not None and target_spec is not None and hasattr(encoder, "tokenizer"):
        from pnr.metrics.gt_metrics import gt_metrics

        out["gt"] = gt_metrics(encoder, src, edit, gt, source_spec, target_spec, net)
    else:
        from pnr.metrics.image_metrics import render_sanity

        out["gt"] = {"success": render_sanity(edit, src, background=_bg(src))["success"]}
    return out


def _bg(frames: torch.Tensor) -> torch.Tensor:
    from pnr.metrics.gt_metrics import estimate_background

    return estimate_background(frames)


# ------------------------------------------------------------------ edit folders


@dataclass
class EditTarget:
    """What to evaluate: an edited checkpoint, its source, the captions, and the ground truth if known."""

    name: str
    edited_ckpt: str
    source_ckpt: str
    source_caption: str | None = None
    target_caption: str | None = None
    prompt: str | None = None
    method: str | None = None
    source_spec: dict | None = None
    target_spec: dict | None = None
    gt_from: str | None = None  # "benchmark", "dataset spec", "caption", "given" or None
    record: dict = field(default_factory=dict)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read JSON ({e})") from None


def _dataset_spec(path: str | Path) -> dict | None:
    """The domain spec stored in a dataset's transforms.json (pnr data object), if any."""
    ds = Path(path)
    tj = ds / "transforms.json" if ds.is_dir() else ds
    return _read_json(tj).get("spec") if tj.is_file() else None


def _source_from_record(d: Path, rec: dict) -> tuple[str | None, dict | None]:
    """Source checkpoint path and (if the source was a domain dataset) its spec, from edit.json's `source`: its
    fields (pnr.edit.prepare.EditSource), or the one-line description older edit.json files hold."""
    src = rec.get("source")
    fitted = d / "source" / "checkpoint"
    if isinstance(src, dict):
        spec = _dataset_spec(src["path"]) if src.get("kind") == "dataset" and src.get("path") else None
        return (str(fitted) if fitted.is_dir() else src.get("checkpoint")), spec
    desc = str(src or "")  # older records: "checkpoint PATH" / "dataset PATH (fitted into DIR)"
    spec = _dataset_spec(desc[len("dataset "):].split(" (fitted into ")[0]) if desc.startswith("dataset ") else None
    if fitted.is_dir():
        return str(fitted), spec
    if desc.startswith("checkpoint "):
        return desc[len("checkpoint "):], spec
    return None, spec


def resolve_edit(path: str | Path, source: str | None = None, benchmark: str | None = None,
                 source_caption: str | None = None, target_caption: str | None = None,
                 target_spec: str | None = None) -> EditTarget:
    """Interpret one `pnr eval` argument: an edit folder (edit.json + checkpoint/) or an edited checkpoint."""
    d = Path(path)
    if not d.exists():
        raise PnrError(f"{d}: no such edit folder or checkpoint")
    rec = _read_json(d / "edit.json") if (d / "edit.json").is_file() else {}
    edited = d / "checkpoint" if (d / "checkpoint").is_dir() else d
    if not rec and not (edited / "config.json").is_file():
        what = ("a dataset" if any((d / n).is_file() for n in ("transforms.json", "transforms_train.json"))
                else "not a pnr edit folder or checkpoint")
        raise PnrError(f"{d}: {what}; pnr eval takes the --out folder of `pnr edit` (or an edited checkpoint "
                       f"with --source)")
    src, src_spec = _source_from_record(d, rec) if rec else (None, None)
    src = source or src
    if src is None:
        raise PnrError(f"{d}: cannot tell which checkpoint is the source; pass --source CKPT")
    meta = {}
    if (edited / "config.json").is_file():
        meta = (_read_json(edited / "config.json").get("meta") or {})
    t = EditTarget(
        name=d.name, edited_ckpt=str(edited), source_ckpt=str(src),
        source_caption=source_caption or rec.get("source_conditioning_text") or meta.get("source_caption") or rec.get("source_prompt"),
        target_caption=target_caption or rec.get("conditioning_text") or meta.get("caption"),
        prompt=rec.get("prompt") or (meta.get("edit") or {}).get("prompt"), method=rec.get("method"), record=rec,
    )
    if t.source_caption is None and (Path(src) / "config.json").is_file():
        t.source_caption = (_read_json(Path(src) / "config.json").get("meta") or {}).get("caption")
    _attach_ground_truth(t, src_spec, benchmark, target_spec)
    return t


def _attach_ground_truth(t: EditTarget, dataset_spec: dict | None, benchmark: str | None, target_spec: str | None) -> None:
    """Fill source/target specs: benchmark entry > given spec > source dataset spec + prompt > captions."""
    from pnr.data.domain import grammar as G

    if benchmark:
        from pnr.data.domain.benchmark import load_benchmark

        bid = t.record.get("benchmark_id") or t.record.get("edit_id") or t.name
        hits = [e for e in load_benchmark(benchmark) if e.id == bid]
        if hits:
            e = hits[0]
            t.source_spec, t.target_spec, t.gt_from = e.source.to_dict(), e.target.to_dict(), "benchmark"
            t.source_caption = t.source_caption or e.source_caption
            t.target_caption = t.target_caption or e.target_caption
            return
    if target_spec:  # asked for explicitly: a spec or caption it cannot read is the user's error, said plainly
        try:
            tgt = G.spec_from_text(target_spec)
        except PnrError as e:
            raise type(e)(f"--target-spec {target_spec!r}: {e}") from None
        if not t.source_caption:
            raise PnrError(f"--target-spec needs the source's caption, and {t.name} has none stored; pass "
                           f"--source-caption")
        try:
            src = G.spec_from_text(t.source_caption)
        except PnrError as e:
            raise type(e)(f"--target-spec needs a source caption in the built-in domain; {t.source_caption!r}: {e}") from None
        t.source_spec, t.target_spec, t.gt_from = src.to_dict(), tgt.to_dict(), "given"
        return
    try:
        if dataset_spec and t.prompt:
            src = G.ObjectSpec.from_dict(dataset_spec)
            tgt = G.apply_edit(src, t.prompt)
            t.source_spec, t.target_spec, t.gt_from = src.to_dict(), tgt.to_dict(), "dataset spec"
        elif t.source_caption and t.target_caption:
            src, tgt = G.parse_caption(t.source_caption), G.parse_caption(t.target_caption)
            t.source_spec, t.target_spec, t.gt_from = src.to_dict(), tgt.to_dict(), "caption"
    except PnrError:  # PromptError/DataError: captions outside the built-in domain, so no ground truth
        pass


def turntable_of(ckpt: str, cfg: EvalConfig) -> torch.Tensor:
    """uint8 [V,H,W,3] turntable of a checkpoint with the evaluation cameras."""
    from pnr.field.checkpoint import load_checkpoint
    from pnr.render.turntable import turntable

    fld, occ, _ = load_checkpoint(ckpt, device=cfg.device)
    return turntable(fld, occ, n=cfg.views, elevation=cfg.elevation, radius=cfg.radius, res=cfg.res, fov=cfg.fov,
                     num_samples=cfg.num_samples)


def evaluate_edit(t: EditTarget, cfg: EvalConfig, encoder=None, frames_cache: dict | None = None) -> dict:
    """Render source and edit turntables and compute every metric (GT ones when the target is known)."""
    from pnr.data.domain import grammar as G

    encoder = encoder or load_backbone(cfg.backbone, cfg.device)
    cache = frames_cache if frames_cache is not None else {}
    if t.source_ckpt not in cache:
        cache[t.source_ckpt] = turntable_of(t.source_ckpt, cfg)
    src = cache[t.source_ckpt]
    edit = turntable_of(t.edited_ckpt, cfg)
    gt = src_spec = tgt_spec = None
    if cfg.gt and t.target_spec is not None:
        from pnr.metrics.gt_metrics import estimate_background, exact_turntable

        src_spec, tgt_spec = G.ObjectSpec.from_dict(t.source_spec), G.ObjectSpec.from_dict(t.target_spec)
        gt = exact_turntable(tgt_spec, cfg.views, cfg.elevation, cfg.radius, cfg.res, cfg.fov,
                             background=estimate_background(src), device=cfg.device)
    m = evaluate_frames(encoder, src, edit, t.source_caption, t.target_caption, cfg.net, gt, src_spec, tgt_spec)
    return {"name": t.name, "method": t.method, "prompt": t.prompt, "source_caption": t.source_caption,
            "target_caption": t.target_caption, "gt_from": t.gt_from, "edited_ckpt": t.edited_ckpt,
            "source_ckpt": t.source_ckpt, "metrics": m, "eval_config": asdict(cfg)}


# ------------------------------------------------------------------ table

COLUMNS = (  # (header, getter, format)
    ("CLIP dir sim ↑", lambda m: m.get("clip_dir_sim"), "{:.3f}"),
    ("CLIP dir cons ↑", lambda m: m.get("clip_dir_consistency"), "{:.3f}"),
    ("LPIPS src ↓", lambda m: m.get("lpips_to_source"), "{:.4f}"),
    ("A-LPIPS ↓", lambda m: m.get("a_lpips"), "{:.4f}"),
    ("edit acc ↑", lambda m: m["gt"].get("edited_attr_acc"), "{:.2f}"),
    ("preserve ↑", lambda m: m["gt"].get("preservation"), "{:.2f}"),
    ("PSNR tgt ↑", lambda m: m["gt"].get("psnr_to_target"), "{:.2f}"),
    ("LPIPS tgt ↓", lambda m: m["gt"].get("lpips_to_target"), "{:.4f}"),
    ("success", lambda m: m["gt"].get("success"), "{}"),
)


def _fmt(v, f: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f.format(v)


def format_table(results: list[dict]) -> str:
    """Markdown table, one row per edit, plus a mean row when there are several."""
    head = ["edit", *[c[0] for c in COLUMNS]]
    rows = [[r["name"], *[_fmt(g(r["metrics"]), f) for _, g, f in COLUMNS]] for r in results]
    if len(results) > 1:
        mean = ["mean"]
        for _, g, f in COLUMNS:
            vals = [g(r["metrics"]) for r in results]
            vals = [float(v) for v in vals if v is not None and not (isinstance(v, float) and math.isinf(v))]
            mean.append(_fmt(sum(vals) / len(vals), "{:.3f}" if f == "{}" else f) if vals else "–")
        rows.append(mean)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
