"""Parameter perturbation (paper Eq. 3, Alg. 1): θ ← (1 - η) θ_src + η θ_0, θ_0 ~ P(Θ0).

P(Θ0) is the field's own initialisation, `pnr.field.init.init_params`, so a perturbed field at η = 1
is exactly a fresh field drawn with that seed. The geometry is interpolated (hash tables, density and colour
MLP weights and biases); the background model is kept: the authors' `perturb_eta` zips over
`geometry.parameters()` only (threestudio's background is a separate module).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pnr.errors import CheckpointError
from pnr.field.config import FieldConfig
from pnr.field.init import init_params


def lerp_params(src: dict[str, Tensor], new: dict[str, Tensor], eta: float) -> dict[str, Tensor]:
    """(1 - η) src + η new for every key; keys and shapes must match."""
    if set(src) != set(new):
        raise CheckpointError(f"source parameters do not match the field config: missing "
                              f"{sorted(set(new) - set(src))}, unexpected {sorted(set(src) - set(new))}")
    out = {}
    for k, a in src.items():
        b = new[k]
        if tuple(a.shape) != tuple(b.shape):
            raise CheckpointError(f"source parameter {k!r} has shape {tuple(a.shape)}, the field config "
                                  f"gives {tuple(b.shape)}: the checkpoint is from a different field config")
        b = b.to(a.device, a.dtype)
        out[k] = a.clone() if eta == 0 else (b.clone() if eta == 1 else torch.lerp(a, b, float(eta)))
    return out


def is_geometry(name: str) -> bool:
    """Parameters that perturbation touches: everything but the background model."""
    return not name.startswith("background")


def perturb(params_src: dict[str, Tensor], cfg: FieldConfig, eta: float, seed: int,
            density_shift: float = 0.0) -> dict[str, Tensor]:
    """Perturbed parameters: the geometry lerped from `params_src` toward a fresh `init_params(cfg, seed)` by η in
    [0, 1]; the background parameters copied unchanged.

    `density_shift` is added to θ_0's density output bias before the lerp (EditConfig.fresh_density_shift). Why:
    threestudio's θ_0 renders as a compact central blob (its `blob_magic3d` density bias is a fixed function, not a
    parameter, so the perturbation keeps it); our θ_0 renders as a box of uniform fog (density e^(density_bias)
    everywhere), so lerping toward it fills the box with fog before the first SDS step (docs/edit.md). A shift of
    -4 makes θ_0 render empty: the perturbed field fades instead of fogging."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    device = next(iter(params_src.values())).device
    fresh = init_params(cfg, seed, device)
    if density_shift:
        b = fresh["density_b1"].clone()  # [1 + geo_feat_dim]; channel 0 is the density pre-activation
        b[0] += float(density_shift)
        fresh["density_b1"] = b
    fresh = {k: v if is_geometry(k) or k not in params_src else params_src[k] for k, v in fresh.items()}
    return lerp_params(params_src, fresh, eta)
