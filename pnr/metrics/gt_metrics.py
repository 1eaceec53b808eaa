"""Ground-truth edit metrics on the built-in domain (beyond the paper: every benchmark edit has a known target).

- edited-attribute accuracy: the attributes the edit changes (source spec vs target spec) read, from the
  edited renders, as their target values (domain encoder, zero-shot, target spec as context).
- preservation: the applicable attributes the edit does not change still read as their (unchanged) values.
- PSNR and perceptual distance between the edited renders and exact renders of the target object from the
  same cameras.
- success: finite, not empty, not exploded (see `image_metrics.render_sanity`).
"""

from __future__ import annotations

import torch

from pnr.data.domain import grammar as G
from pnr.data.domain.render import render_specs
from pnr.metrics.attributes import read_attributes
from pnr.metrics.clip_metrics import as_float_chw, embed_images
from pnr.metrics.domain_text import READ_ATTRS, applies
from pnr.metrics.image_metrics import lpips_mean, psnr, render_sanity
from pnr.metrics.encoder_data import composite
from pnr.render.cameras import orbit_cameras
from pnr.render.orbit import EVAL_ORBIT


@torch.no_grad()
def exact_turntable(spec: G.ObjectSpec, n: int, elevation: float = EVAL_ORBIT.elevation,
                    radius: float = EVAL_ORBIT.radius, res: int = EVAL_ORBIT.res, fov: float = EVAL_ORBIT.fov,
                    background: float | torch.Tensor = 1.0, supersample: int = 2,
                    device="cpu") -> torch.Tensor:
    """Exact renders of `spec` from the cameras `pnr.render.turntable.turntable` uses -> [n,3,res,res] in [0,1].

    background: a gray level or an RGB triple [3] (e.g. the NeRF turntable's background colour)."""
    cams = orbit_cameras(n, elevation_deg=elevation, radius=radius, fov_deg=fov, res=res, device=device)
    rgba, _ = render_specs([spec], cams, n, supersample=supersample)
    if torch.is_tensor(background) and background.numel() == 3:
        rgb, a = rgba[..., :3], rgba[..., 3:]
        return (rgb * a + background.to(rgba).view(1, 1, 1, 3) * (1 - a)).permute(0, 3, 1, 2).contiguous()
    return composite(rgba, float(background))


def estimate_background(frames: torch.Tensor) -> torch.Tensor:
    """Background colour [3] of turntable frames: median of the 4 corner pixels over all frames."""
    f = as_float_chw(frames).float()
    corners = torch.stack([f[:, :, 0, 0], f[:, :, 0, -1], f[:, :, -1, 0], f[:, :, -1, -1]], 1)  # [V,4,3]
    return corners.reshape(-1, 3).median(0).values


@torch.no_grad()
def gt_metrics(encoder, src: torch.Tensor, edit: torch.Tensor, gt: torch.Tensor | None,
               source_spec: G.ObjectSpec, target_spec: G.ObjectSpec, net: str = "alex") -> dict:
    """Ground-truth metrics of one edit. src/edit/gt: aligned turntable frames ([V,3,H,W] or uint8 [V,H,W,3])."""
    changed = G.differing_attrs(source_spec, target_spec)
    kept = [a for a in READ_ATTRS if a not in changed and applies(target_spec, a)]
    e_edit = embed_images(encoder, edit)
    read = read_attributes(encoder, None, target_spec, READ_ATTRS, img_emb=e_edit)
    edited_ok = {a: read.get(a) == getattr(target_spec, a) for a in changed if a in read}
    kept_ok = {a: read.get(a) == getattr(target_spec, a) for a in kept}
    # the same reading on the source renders against the source spec: how far to trust the reader here
    src_read = read_attributes(encoder, src, source_spec, READ_ATTRS)
    src_ok = [src_read[a] == getattr(source_spec, a) for a in src_read]
    out = {
        "changed_attributes": changed,
        "read_edit": read,
        "edited_attr_acc": (sum(edited_ok.values()) / len(edited_ok)) if edited_ok else None,
        "preservation": (sum(kept_ok.values()) / len(kept_ok)) if kept_ok else None,
        "preservation_failures": [a for a, ok in kept_ok.items() if not ok],
        "source_read_acc": sum(src_ok) / max(1, len(src_ok)),
        "sanity": render_sanity(edit, src, background=estimate_background(src)),
    }
    out["success"] = out["sanity"]["success"]
    if gt is not None:
        out["psnr_to_target"] = psnr(edit, gt)
        out["lpips_to_target"] = lpips_mean(edit, gt, net)
        out["psnr_source_to_target"] = psnr(src, gt)  # reference: what doing nothing scores
    return out
