"""OpenAI CLIP through `transformers`, for the paper's CLIP-directional metrics (Table 1: ViT-B/32, ViT-B/16,
ViT-L/14). Same surface as the domain encoder (pnr.metrics.encoder): `encode_image(s)` and `encode_text`
return unit-norm [B, D] embeddings, so the metrics can swap one for the other.

Images are preprocessed in torch (differentiable, any size): bicubic resize of the short side to the
model's input size, centre crop, CLIP's mean/std normalisation: the steps of CLIPImageProcessor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnr.priors.sd import _require_hub, checked_tokenizer, from_pretrained

CLIP_MODELS = {  # the paper's three backbones (Sec. 5, Table 1) -> hub ids of OpenAI's releases
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "ViT-B/16": "openai/clip-vit-base-patch16",
    "ViT-L/14": "openai/clip-vit-large-patch14",
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIPImageProcessor defaults (OpenAI CLIP's preprocessing)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipEncoder(nn.Module):
    def __init__(self, model: nn.Module, tokenizer: Any, image_size: int | None = None,
                 mean: tuple[float, ...] = OPENAI_MEAN, std: tuple[float, ...] = OPENAI_STD):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_size = image_size or int(model.config.vision_config.image_size)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def preprocess(self, rgb: Tensor) -> Tensor:
        """[B, 3, H, W] in [0, 1] -> [B, 3, S, S] normalised (short side to S, centre crop)."""
        s = self.image_size
        h, w = rgb.shape[-2:]
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        x = F.interpolate(rgb.float(), size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        top, left = (nh - s) // 2, (nw - s) // 2
        x = x[..., top:top + s, left:left + s].clamp(0, 1)
        return (x - self.mean) / self.std

    def encode_images(self, rgb: Tensor) -> Tensor:
        """rgb [B, 3, H, W] in [0, 1] -> [B, D] unit norm (float32)."""
        x = self.preprocess(rgb.to(self.device)).to(self.dtype)
        feats = self.model.get_image_features(pixel_values=x)
        return F.normalize(_as_tensor(feats).float(), dim=-1)

    encode_image = encode_images  # the domain encoder's name (pnr.metrics.encoder.DomainEncoder)

    def encode_text(self, texts: list[str], strict: bool = True) -> Tensor:
        """captions -> [B, D] unit norm (float32). `strict` is accepted for interface parity (CLIP's BPE
        represents any text)."""
        tok = self.tokenizer(list(texts), padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length, return_tensors="pt")
        feats = self.model.get_text_features(input_ids=tok.input_ids.to(self.device),
                                             attention_mask=tok.attention_mask.to(self.device))
        return F.normalize(_as_tensor(feats).float(), dim=-1)


def _as_tensor(out: Any) -> Tensor:
    """transformers 4 returns a tensor from get_*_features; 5 may return a model output with pooler_output."""
    if isinstance(out, Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        v = getattr(out, name, None)
        if isinstance(v, Tensor):
            return v
    raise TypeError(f"unexpected CLIP feature output {type(out).__name__}")


def load_clip(name_or_path: str = "ViT-B/32", device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
              offline: bool | None = None, min_vocab: int = 10) -> ClipEncoder:
    """CLIP by the paper's name ("ViT-B/32", "ViT-B/16", "ViT-L/14"), a hub id, or a local transformers folder."""
    _require_hub()
    from transformers import CLIPModel, CLIPTokenizer

    src = CLIP_MODELS.get(name_or_path, name_or_path)
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    hint = "clip (a transformers folder with config.json, model weights, vocab.json, merges.txt)"
    flag = "load_clip(PATH), PATH ="
    model = from_pretrained(CLIPModel, src, None, f"CLIP {name_or_path}", hint, offline, flag).to(dtype)
    tok = checked_tokenizer(from_pretrained(CLIPTokenizer, src, None, f"CLIP tokenizer {name_or_path}", hint, offline,
                                            flag), src, f"the CLIP tokenizer {name_or_path}", hint, offline, flag,
                            min_vocab=min_vocab)
    mean, std, size = OPENAI_MEAN, OPENAI_STD, None
    pp = Path(src).expanduser() / "preprocessor_config.json"
    if pp.is_file():
        import json

        cfg = json.loads(pp.read_text())
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        crop = cfg.get("crop_size")
        size = crop.get("height") if isinstance(crop, dict) else crop
    return ClipEncoder(model, tok, size, mean, std).to(device)
