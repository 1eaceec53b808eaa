"""Domain image–text encoder: a small CLIP-style dual encoder trained on the built-in object domain.

Used only for evaluation (directional similarity/consistency, zero-shot attribute reading), never as
guidance. Image tower: residual CNN on [B,3,res,res] in [0,1]; text tower: word-level tokens over the
domain vocabulary, a small Transformer, masked mean pooling. Both end in L2-normalised embeddings of
`embed_dim`, compared by cosine similarity with a learned temperature (Radford et al. 2021).

Weights ship as fp16 safetensors + a JSON config (vocabulary included, so the model is self-contained):
`pnr/assets/encoder/encoder.safetensors`, `pnr/assets/encoder/config.json`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pnr.errors import CheckpointError, PromptError

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "encoder"
WEIGHTS_NAME = "encoder.safetensors"
CONFIG_NAME = "config.json"
PAD, UNK = "<pad>", "<unk>"


@dataclass
class EncoderConfig:
    """Sizes chosen so fp16 weights stay well under the 20 MB budget (issue 5)."""

    res: int = 64  # image side fed to the CNN (inputs are resized)
    widths: tuple[int, ...] = (48, 96, 192, 320)  # CNN stage widths, each stage halves the resolution
    blocks_per_stage: int = 2
    embed_dim: int = 256
    text_width: int = 256
    text_layers: int = 3
    text_heads: int = 4
    max_tokens: int = 32
    vocab: list[str] = field(default_factory=list)  # word list; ids 0 and 1 are PAD and UNK

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def split_words(text: str) -> list[str]:
    """Lower-case words; punctuation and articles' commas are dropped."""
    return _WORD.findall(text.lower())


class Tokenizer:
    """Word-level tokenizer over a fixed vocabulary (ids: 0 = PAD, 1 = UNK, then the words)."""

    def __init__(self, vocab: list[str], max_tokens: int):
        self.words = [PAD, UNK] + [w for w in vocab if w not in (PAD, UNK)]
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.max_tokens = max_tokens

    def unknown(self, text: str) -> list[str]:
        return [w for w in split_words(text) if w not in self.ids]

    def __call__(self, texts: list[str], strict: bool = True) -> torch.Tensor:
        """texts -> ids [B, max_tokens] (PAD-filled). strict: unknown words raise PromptError."""
        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, t in enumerate(texts):
            words = split_words(t)
            if strict:
                bad = [w for w in words if w not in self.ids]
                if bad:
                    raise PromptError(
                        f"the domain encoder does not know the word(s) {bad} in {t!r}; "
                        "use the domain vocabulary (pnr.data.domain.grammar.vocabulary()) or --backbone clip"
                    )
            if not words:
                raise PromptError("empty caption given to the domain encoder")
            ids = [self.ids.get(w, 1) for w in words][: self.max_tokens]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.n1 = nn.GroupNorm(8, c_in)
        self.c1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.n2 = nn.GroupNorm(8, c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class ImageTower(nn.Module):
    """[B,3,res,res] in [0,1] -> [B, embed_dim] (not normalised).

    Pooling keeps a coarse spatial layout (a 4x4 grid of a 32-channel projection) beside the global mean,
    so "hat on the head" and "ball in the hand" stay distinguishable.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        w = cfg.widths
        self.stem = nn.Conv2d(3, w[0], 3, 1, 1)
        blocks, c = [], w[0]
        for i, wi in enumerate(w):
            for j in range(cfg.blocks_per_stage):
                blocks.append(_ResBlock(c, wi, 2 if (j == 0 and i > 0) else 1))
                c = wi
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.GroupNorm(8, c)
        self.grid = nn.Conv2d(c, 32, 1)
        self.head = nn.Sequential(nn.Linear(c + 32 * 16, 2 * cfg.embed_dim), nn.SiLU(), nn.Linear(2 * cfg.embed_dim, cfg.embed_dim))
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.res = cfg.res

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[-1] != self.res or img.shape[-2] != self.res:
            img = F.interpolate(img, size=(self.res, self.res), mode="bilinear", antialias=True, align_corners=False)
        h = self.blocks(self.stem((img - self.mean) * 2.0))
        h = F.silu(self.norm(h))
        g = F.adaptive_avg_pool2d(self.grid(h), 4).flatten(1)
        return self.head(torch.cat([h.mean((2, 3)), g], 1))


class TextTower(nn.Module):
    """ids [B,T] -> [B, embed_dim] (not normalised): Transformer encoder + masked mean pooling."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        n_vocab = len(cfg.vocab) + 2
        self.tok = nn.Embedding(n_vocab, cfg.text_width)
        self.pos = nn.Parameter(torch.randn(cfg.max_tokens, cfg.text_width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.text_width, cfg.text_heads, 2 * cfg.text_width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.tf = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)
        self.proj = nn.Linear(cfg.text_width, cfg.embed_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pad = ids == 0
        h = self.tok(ids) + self.pos[: ids.shape[1]]
        h = self.norm(self.tf(h, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return self.proj((h * keep).sum(1) / keep.sum(1).clamp_min(1.0))


class DomainEncoder(nn.Module):
    """CLIP-style dual encoder. `encode_image`/`encode_text` return unit-norm embeddings."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = Tokenizer(cfg.vocab, cfg.max_tokens)
        self.image = ImageTower(cfg)
        self.text = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_image(self, img: torch.Tensor) -> torch.Tensor:
        """img: [B,3,H,W] in [0,1] (any H, W; resized) -> [B, D] unit norm."""
        dt = self.logit_scale.dtype
        return F.normalize(self.image(img.to(self.device, dt)).float(), dim=-1)

    def encode_text(self, texts: list[str], strict: bool = True) -> torch.Tensor:
        """captions -> [B, D] unit norm."""
        ids = self.tokenizer(texts, strict=strict).to(self.device)
        return F.normalize(self.text(ids).float(), dim=-1)

    def forward(self, img: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training entry: unit-norm image and text embeddings [B, D] each."""
        return F.normalize(self.image(img), dim=-1), F.normalize(self.text(ids), dim=-1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_encoder(model: DomainEncoder, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write fp16 safetensors + config.json atomically into out_dir."""
    from safetensors.torch import save

    from pnr.io import atomic_write_bytes, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / WEIGHTS_NAME, save(state))
    meta = {"config": asdict(model.cfg), **(extra or {})}
    atomic_write_text(out / CONFIG_NAME, json.dumps(meta, indent=1))


def load_encoder(path: str | Path | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> DomainEncoder:
    """Load the shipped encoder (path=None) or one saved by `save_encoder` (a directory)."""
    from safetensors.torch import load_file

    d = Path(path) if path is not None else ASSET_DIR
    wpath, cpath = d / WEIGHTS_NAME, d / CONFIG_NAME
    if not wpath.is_file() or not cpath.is_file():
        raise CheckpointError(f"domain encoder not found: expected {wpath} and {cpath}")
    try:
        meta = json.loads(cpath.read_text())
        cfg = EncoderConfig.from_dict(meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{cpath}: not a domain-encoder config ({e})") from e
    model = DomainEncoder(cfg)
    try:
        state = load_file(str(wpath))
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except Exception as e:  # safetensors header errors, shape mismatches
        raise CheckpointError(f"{wpath}: cannot load domain-encoder weights ({e})") from e
    model.meta = meta
    return model.requires_grad_(False).eval().to(device, dtype)


_CACHE: dict[tuple[str, str], DomainEncoder] = {}


def get_encoder(path: str | Path | None = None, device: str | torch.device = "cpu") -> DomainEncoder:
    """Cached `load_encoder` per (path, device)."""
    key = (str(path), str(torch.device(device)))
    if key not in _CACHE:
        _CACHE[key] = load_encoder(path, device)
    return _CACHE[key]
