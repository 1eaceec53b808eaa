"""CLIP-space edit metrics on turntable renders (Instruct-NeRF2NeRF, Haque et al. ICCV 2023, Sec. 5.2).

All functions take embeddings or images plus an encoder with `encode_image(img [B,3,H,W] in [0,1]) ->
[B,D]` and `encode_text(list[str]) -> [B,D]` (unit norm): the domain encoder by default, or a
transformers CLIP adapter. Image pairs are aligned frame by frame: src[i] and edit[i] are renders
from the same camera of a turntable.

- directional similarity: cos(E_I(edit_i) − E_I(src_i), E_T(target caption) − E_T(source caption)),
  averaged over views. Higher = the image changed in the direction the text changed.
- directional consistency: cos(E_I(edit_{i+1}) − E_I(edit_i), E_I(src_{i+1}) − E_I(src_i)), averaged
  over adjacent frame pairs (cyclic for a closed turntable). Higher = the edited object changes across
  views the way the source did, i.e. the edit is 3D-consistent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _cos(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return F.cosine_similarity(a, b, dim=-1, eps=eps)


def directional_similarity_from_embeddings(
    img_src: torch.Tensor, img_edit: torch.Tensor, txt_src: torch.Tensor, txt_tgt: torch.Tensor
) -> torch.Tensor:
    """img_*: [V,D], txt_*: [D] or [1,D] -> per-view similarity [V] (a zero image change gives 0)."""
    d_img = img_edit - img_src
    d_txt = (txt_tgt - txt_src).reshape(1, -1).expand_as(d_img)
    return _cos(d_img, d_txt)


def directional_consistency_from_embeddings(
    img_src: torch.Tensor, img_edit: torch.Tensor, cyclic: bool = True
) -> torch.Tensor:
    """img_*: [V,D] ordered around the turntable -> per-pair consistency [V] (cyclic) or [V-1]."""
    nxt = torch.roll(torch.arange(img_src.shape[0]), -1) if cyclic else torch.arange(1, img_src.shape[0])
    cur = torch.arange(img_src.shape[0]) if cyclic else torch.arange(img_src.shape[0] - 1)
    return _cos(img_edit[nxt] - img_edit[cur], img_src[nxt] - img_src[cur])


@torch.no_grad()
def embed_images(encoder, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """images: [V,3,H,W] float in [0,1] or uint8 [V,H,W,3] -> [V,D] unit-norm embeddings."""
    images = as_float_chw(images)
    return torch.cat([encoder.encode_image(images[i : i + batch]) for i in range(0, images.shape[0], batch)])


def as_float_chw(images: torch.Tensor) -> torch.Tensor:
    """Accept uint8 [V,H,W,3] (turntable output) or float [V,3,H,W] in [0,1]; return the latter."""
    if images.dtype == torch.uint8:
        images = images.permute(0, 3, 1, 2).float() / 255.0
    return images


@torch.no_grad()
def directional_similarity(encoder, src: torch.Tensor, edit: torch.Tensor, src_caption: str, tgt_caption: str) -> float:
    """Mean over views of the CLIP directional similarity (see module docstring)."""
    e_s, e_e = embed_images(encoder, src), embed_images(encoder, edit)
    t = encoder.encode_text([src_caption, tgt_caption])
    return directional_similarity_from_embeddings(e_s, e_e, t[0], t[1]).mean().item()


@torch.no_grad()
def directional_consistency(encoder, src: torch.Tensor, edit: torch.Tensor, cyclic: bool = True) -> float:
    """Mean over adjacent frame pairs of the CLIP directional consistency (see module docstring)."""
    e_s, e_e = embed_images(encoder, src), embed_images(encoder, edit)
    return directional_consistency_from_embeddings(e_s, e_e, cyclic).mean().item()


@torch.no_grad()
def text_image_similarity(encoder, images: torch.Tensor, caption: str) -> float:
    """Mean cosine between each view's embedding and the caption's (CLIP score / 1)."""
    e = embed_images(encoder, images)
    t = encoder.encode_text([caption])
    return (e @ t[0].to(e.dtype)).mean().item()
