"""Hash-grid NeRF for a bounded object (instant-ngp, Müller et al. 2022): hash encoding -> density MLP
(sigma + geometry features) -> colour MLP with SH-encoded view direction; plus a background model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pnr.errors import CheckpointError
from pnr.field.config import FieldConfig
from pnr.field.encoding import hash_encode, level_resolutions
from pnr.field.init import BG_SH_DIM, SH_DIR_DIM, init_params


class _TruncExp(torch.autograd.Function):
    """exp with a clamped gradient: the density activation of instant-ngp / torch-ngp."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def sh_encode(d: Tensor, n_coeffs: int = 16) -> Tensor:
    """Real spherical harmonics of unit directions d: [N, 3] -> [N, n_coeffs] (bands 0..3: 1, 4, 9 or 16)."""
    x, y, z = d.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    out = [torch.full_like(x, 0.28209479177387814)]
    if n_coeffs > 1:
        out += [-0.4886025119029199 * y, 0.4886025119029199 * z, -0.4886025119029199 * x]
    if n_coeffs > 4:
        out += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.31539156525252005 * (2 * zz - xx - yy),
                -1.0925484305920792 * x * z, 0.5462742152960396 * (xx - yy)]
    if n_coeffs > 9:
        out += [-0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * x * y * z,
                -0.4570457994644658 * y * (4 * zz - xx - yy), 0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
                -0.4570457994644658 * x * (4 * zz - xx - yy), 1.445305721320277 * z * (xx - yy),
                -0.5900435899266435 * x * (xx - 3 * yy)]
    return torch.stack(out[:n_coeffs], dim=-1)


class Field(nn.Module):
    """Parameters are flat, named exactly as `init_params` names them (see `params_dict`)."""

    def __init__(self, cfg: FieldConfig | None = None, seed: int = 0, device="cpu"):
        super().__init__()
        self.cfg = cfg or FieldConfig()
        self.resolutions = level_resolutions(self.cfg)
        for name, t in init_params(self.cfg, seed, device).items():
            self.register_parameter(name, nn.Parameter(t))

    # --- geometry and colour -------------------------------------------------------------
    def _encode(self, x: Tensor) -> Tensor:
        b = self.cfg.bound
        x01 = (x + b) / (2 * b)
        return hash_encode(x01, self.encoding_tables, self.resolutions)

    def _density_head(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.relu(self._encode(x) @ self.density_w0 + self.density_b0)
        h = h @ self.density_w1 + self.density_b1  # [N, 1 + geo]
        return trunc_exp(h[:, 0] + self.cfg.density_bias), h[:, 1:]

    def density(self, x: Tensor) -> Tensor:
        """sigma: [N] at world points x: [N, 3] (0 outside the box)."""
        sigma, _ = self._density_head(x)
        inside = (x.abs() <= self.cfg.bound).all(-1)
        return sigma * inside

    def query(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """x: [N, 3] world points, d: [N, 3] unit view directions -> (sigma [N], rgb [N, 3])."""
        sigma, geo = self._density_head(x)
        h = torch.cat([geo, sh_encode(d, SH_DIR_DIM)], dim=-1)
        h = torch.relu(h @ self.color_w0 + self.color_b0)
        h = torch.relu(h @ self.color_w1 + self.color_b1)
        rgb = torch.sigmoid(h @ self.color_w2 + self.color_b2)
        inside = (x.abs() <= self.cfg.bound).all(-1)
        return sigma * inside, rgb

    def background(self, dirs: Tensor) -> Tensor:
        """rgb [..., 3] seen along unit directions dirs: [..., 3] where rays leave the scene."""
        if self.cfg.background == "fixed":
            c = torch.tensor(self.cfg.background_color, dtype=dirs.dtype, device=dirs.device)
            return c.expand(*dirs.shape[:-1], 3)
        flat = dirs.reshape(-1, 3)
        h = torch.relu(sh_encode(flat, BG_SH_DIM) @ self.background_w0 + self.background_b0)
        rgb = torch.sigmoid(h @ self.background_w1 + self.background_b1)
        return rgb.reshape(*dirs.shape[:-1], 3)

    # --- flat parameter access (perturbation, checkpoints) -------------------------------
    def params_dict(self) -> dict[str, Tensor]:
        """Detached clones of every parameter, keyed as in `init_params`."""
        return {k: v.detach().clone() for k, v in self.named_parameters()}

    @torch.no_grad()
    def load_params_dict(self, d: dict[str, Tensor], strict: bool = True) -> None:
        """Copy `d` into the parameters in place (optimizers holding them stay valid)."""
        own = dict(self.named_parameters())
        missing, unexpected = set(own) - set(d), set(d) - set(own)
        if strict and (missing or unexpected):
            raise CheckpointError(f"parameter names differ: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for k, v in d.items():
            if k not in own:
                continue
            if tuple(v.shape) != tuple(own[k].shape):
                raise CheckpointError(f"parameter {k!r} has shape {tuple(v.shape)}, field expects {tuple(own[k].shape)}")
            own[k].copy_(v.to(own[k].device, own[k].dtype))

    @property
    def device(self) -> torch.device:
        return self.encoding_tables.device
