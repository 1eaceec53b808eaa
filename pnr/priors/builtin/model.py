"""Camera-conditioned multi-view UNet (MVDream-style) in pixel space, 64x64 RGB.

Why this shape: MVDream (Shi et al. 2023) turns a 2D UNet into a multi-view one by (1) letting the
self-attention at each attention level see the tokens of all V views of an object at once and (2)
adding an embedding of each view's flattened camera-to-world matrix to the timestep embedding. We do
the same on a small ADM-style UNet (Dhariwal & Nichol 2021): ResBlocks with scale-shift conditioning,
transformer blocks (joint multi-view self-attention + text cross-attention + MLP) at the 16x16 and
8x8 levels. V is free at run time (4 for the multi-view prior, 1 for the single-view prior).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class PriorConfig:
    """Sizes of the built-in prior. Defaults: ~18M parameters (about 36 MB in fp16), chosen so one
    short GPU training run makes visible progress (docs/prior-training.md) and the shipped weights stay under 40 MB."""

    image_size: int = 64  # pixels, RGB in [-1, 1]
    channels: tuple[int, ...] = (64, 128, 160, 192)  # per UNet level (64, 32, 16, 8 px)
    num_res_blocks: tuple[int, ...] = (1, 2, 2, 1)  # ResBlocks per level on the way down (+1 up)
    attn_levels: tuple[int, ...] = (2, 3)  # levels with multi-view self-attn + text cross-attn
    head_dim: int = 32
    groups: int = 32  # GroupNorm groups
    text_dim: int = 256  # text encoder width (cross-attention context dim)
    text_layers: int = 2
    text_heads: int = 4
    max_tokens: int = 24  # incl. the leading [CLS]; longer prompts raise PromptError
    cam_translation_scale: float = 1.0 / 3.0  # c2w translation scaled to ~unit size (orbit radius ~3)
    schedule: str = "cosine"  # NoiseSchedule constructor name (see pnr/priors/base.py)
    num_train_steps: int = 1000
    num_views: int = 4  # default V for the Denoiser interface
    vocab: list[str] = field(default_factory=list)  # words the text encoder knows (order = token ids)

    @staticmethod
    def tiny(vocab: list[str] | None = None) -> "PriorConfig":
        """For tests: a few hundred thousand parameters, 32x32."""
        return PriorConfig(image_size=32, channels=(16, 32, 32), num_res_blocks=(1, 1, 1), attn_levels=(1, 2),
                           head_dim=8, groups=8, text_dim=32, text_layers=1, text_heads=2, max_tokens=20,
                           vocab=list(vocab or []))

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("channels", "num_res_blocks", "attn_levels"):
            d[k] = list(d[k])
        return d

    @staticmethod
    def from_dict(d: dict) -> "PriorConfig":
        d = dict(d)
        for k in ("channels", "num_res_blocks", "attn_levels"):
            if k in d:
                d[k] = tuple(d[k])
        known = set(PriorConfig.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown prior config keys: {sorted(unknown)}")
        return PriorConfig(**d)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of t: [N] (any real scale) -> [N, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, c), c)


def _zero(m: nn.Module) -> nn.Module:
    """Zero-initialised output layers make every residual branch start as the identity."""
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.conv2 = _norm(cout, groups), _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Attention(nn.Module):
    """Multi-head attention over token sequences with torch's fused SDPA."""

    def __init__(self, dim: int, ctx_dim: int | None, head_dim: int):
        super().__init__()
        self.heads = max(1, dim // head_dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(ctx_dim or dim, 2 * dim, bias=False)
        self.out = _zero(nn.Linear(dim, dim))

    def forward(self, x: Tensor, ctx: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        ctx = x if ctx is None else ctx
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn_mask = None if mask is None else mask[:, None, None, :]  # [B, 1, 1, L] True = attend
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(o.transpose(1, 2).reshape(b, n, d))


class MultiViewTransformer(nn.Module):
    """Joint self-attention over all V views' tokens, cross-attention to text, MLP (pre-norm)."""

    def __init__(self, c: int, text_dim: int, head_dim: int, groups: int):
        super().__init__()
        self.norm_in = _norm(c, groups)
        self.proj_in = nn.Linear(c, c)
        self.ln1, self.self_attn = nn.LayerNorm(c), Attention(c, None, head_dim)
        self.ln2, self.cross_attn = nn.LayerNorm(c), Attention(c, text_dim, head_dim)
        self.ln3 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), _zero(nn.Linear(2 * c, c)))
        self.proj_out = _zero(nn.Linear(c, c))

    def forward(self, x: Tensor, views: int, ctx: Tensor, mask: Tensor) -> Tensor:
        bv, c, h, w = x.shape
        b = bv // views
        # [B*V, C, h, w] -> [B, V*h*w, C]: one sequence per object, every view's tokens together
        tok = self.proj_in(self.norm_in(x).view(b, views, c, h * w).permute(0, 1, 3, 2).reshape(b, views * h * w, c))
        tok = tok + self.self_attn(self.ln1(tok))
        tok = tok + self.cross_attn(self.ln2(tok), ctx, mask)
        tok = tok + self.mlp(self.ln3(tok))
        out = self.proj_out(tok).view(b, views, h * w, c).permute(0, 1, 3, 2).reshape(bv, c, h, w)
        return x + out


class MultiViewUNet(nn.Module):
    """eps = net(x_t [B, V, 3, H, W], t [B] in [0,1], text tokens [B, L, D] + mask [B, L], c2w [B, V, 4, 4])."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        ch, g = cfg.channels, cfg.groups
        emb_dim = 4 * ch[0]
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cam_mlp = nn.Sequential(nn.Linear(16, emb_dim), nn.SiLU(), _zero(nn.Linear(emb_dim, emb_dim)))
        self.text_pool = nn.Linear(cfg.text_dim, emb_dim)  # pooled [CLS] token, added to the embedding too
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)

        def block(cin, cout, level):
            mods = nn.ModuleList([ResBlock(cin, cout, emb_dim, g)])
            if level in cfg.attn_levels:
                mods.append(MultiViewTransformer(cout, cfg.text_dim, cfg.head_dim, g))
            return mods

        self.down = nn.ModuleList()
        skips, c = [ch[0]], ch[0]
        for lvl, cl in enumerate(ch):
            for _ in range(cfg.num_res_blocks[lvl]):
                self.down.append(block(c, cl, lvl))
                c = cl
                skips.append(c)
            if lvl < len(ch) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, g), MultiViewTransformer(c, cfg.text_dim, cfg.head_dim, g),
                                  ResBlock(c, c, emb_dim, g)])
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            for i in range(cfg.num_res_blocks[lvl] + 1):
                self.up.append(block(c + skips.pop(), ch[lvl], lvl))
                c = ch[lvl]
            if lvl > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]))
        self.norm_out = _norm(c, g)
        self.conv_out = _zero(nn.Conv2d(c, 3, 3, padding=1))

    def _run(self, mods: nn.ModuleList, h: Tensor, emb: Tensor, views: int, ctx: Tensor, mask: Tensor) -> Tensor:
        for m in mods:
            if isinstance(m, ResBlock):
                h = m(h, emb)
            elif isinstance(m, MultiViewTransformer):
                h = m(h, views, ctx, mask)
            else:
                h = m(h)
        return h

    def forward(self, x_t: Tensor, t: Tensor, ctx: Tensor, mask: Tensor, c2w: Tensor) -> Tensor:
        b, v, _, hh, ww = x_t.shape
        cfg = self.cfg
        dt = self.conv_in.weight.dtype
        cam = c2w.float().clone()
        cam[..., :3, 3] *= cfg.cam_translation_scale
        t_emb = self.time_mlp(timestep_embedding(t * cfg.num_train_steps, cfg.channels[0]).to(dt))  # [B, E]
        emb = (t_emb + self.text_pool(ctx[:, 0]))[:, None] + self.cam_mlp(cam.reshape(b, v, 16).to(dt))  # [B, V, E]
        emb = emb.reshape(b * v, -1)
        h = self.conv_in(x_t.reshape(b * v, 3, hh, ww))
        hs = [h]
        for mods in self.down:
            h = self._run(mods, h, emb, v, ctx, mask)
            hs.append(h)
        h = self._run(self.mid, h, emb, v, ctx, mask)
        for mods in self.up:
            if isinstance(mods[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(mods, h, emb, v, ctx, mask)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out.reshape(b, v, 3, hh, ww)
