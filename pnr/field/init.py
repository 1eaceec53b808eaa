"""The one seeded initialisation of a field: this *is* P(Θ0), the distribution Perturb-and-Revise
draws a fresh θ_0 from (paper Eq. 3, Alg. 1). Every parameter tensor of the field is created here."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pnr.field.config import FieldConfig

SH_DIR_DIM = 16  # SH degree 4 (bands 0..3) for the colour head, instant-ngp Sec. 5.4
BG_SH_DIM = 9  # SH bands 0..2 for the background model: smooth in direction
BG_HIDDEN = 32


def _linear(g: torch.Generator, fan_in: int, fan_out: int) -> tuple[Tensor, Tensor]:
    """W: [in, out], b: [out] ~ U(-1/sqrt(in), 1/sqrt(in)), as torch.nn.Linear initialises."""
    k = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * k
    b = (torch.rand(fan_out, generator=g) * 2 - 1) * k
    return w, b


def init_params(cfg: FieldConfig, seed: int, device="cpu") -> dict[str, Tensor]:
    """Fresh parameters for `cfg`, a deterministic function of `seed` (drawn on CPU, then moved, so the
    same seed gives the same field on every device)."""
    g = torch.Generator().manual_seed(int(seed))
    p: dict[str, Tensor] = {}
    # hash tables U(-1e-4, 1e-4), instant-ngp Sec. 4
    p["encoding_tables"] = (torch.rand(cfg.levels, cfg.table_size, cfg.features_per_level, generator=g) * 2 - 1) * 1e-4
    enc_dim = cfg.levels * cfg.features_per_level
    p["density_w0"], p["density_b0"] = _linear(g, enc_dim, cfg.hidden_dim)
    p["density_w1"], p["density_b1"] = _linear(g, cfg.hidden_dim, 1 + cfg.geo_feat_dim)
    p["color_w0"], p["color_b0"] = _linear(g, cfg.geo_feat_dim + SH_DIR_DIM, cfg.hidden_dim)
    p["color_w1"], p["color_b1"] = _linear(g, cfg.hidden_dim, cfg.hidden_dim)
    p["color_w2"], p["color_b2"] = _linear(g, cfg.hidden_dim, 3)
    if cfg.background == "learned":
        p["background_w0"], p["background_b0"] = _linear(g, BG_SH_DIM, BG_HIDDEN)
        p["background_w1"], p["background_b1"] = _linear(g, BG_HIDDEN, 3)
        # start near the configured colour so a fresh field does not invent a background
        c = torch.tensor(cfg.background_color, dtype=torch.float32).clamp(0.05, 0.95)
        p["background_b1"] = p["background_b1"] * 0.1 + torch.log(c / (1 - c))
    return {k: v.float().to(device) for k, v in p.items()}
