"""Hash-grid NeRF for a bounded object (instant-ngp, Müller et al. 2022): hash encoding -> density MLP
(sigma + geometry features) -> colour MLP with SH-encoded view direction; plus a background model."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pnr.errors import CheckpointError
from pnr.field.config import FieldConfig
from pnr.field.contraction import inside as field_inside
from pnr.field.contraction import unit_coords
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


def density_blob(x: Tensor, cfg: FieldConfig) -> Tensor:
    """threestudio's `blob_magic3d` pre-activation bias, scale * (1 - r / std) with r = |x| / bound: [N, 3] -> [N].
    +scale at the centre, 0 at r = std, -scale at r = 2 std (= the box's face at std 0.5)."""
    r = x.norm(dim=-1) / cfg.bound
    return cfg.density_blob_scale * (1.0 - r / cfg.density_blob_std)


# Real spherical harmonics, bands 0..3, as polynomials in the unit direction (x, y, z):
# basis k = sum of coef * monomial, monomials named by their axes ("" = 1, "xy" = x*y, ...)
_SH_POLY: list[dict[str, float]] = [
    {"": 0.28209479177387814},
    {"y": -0.4886025119029199}, {"z": 0.4886025119029199}, {"x": -0.4886025119029199},
    {"xy": 1.0925484305920792}, {"yz": -1.0925484305920792},
    {"zz": 2 * 0.31539156525252005, "xx": -0.31539156525252005, "yy": -0.31539156525252005},
    {"xz": -1.0925484305920792}, {"xx": 0.5462742152960396, "yy": -0.5462742152960396},
    {"xxy": -3 * 0.5900435899266435, "yyy": 0.5900435899266435},
    {"xyz": 2.890611442640554},
    {"yzz": -4 * 0.4570457994644658, "xxy": 0.4570457994644658, "yyy": 0.4570457994644658},
    {"zzz": 2 * 0.3731763325901154, "xxz": -3 * 0.3731763325901154, "yyz": -3 * 0.3731763325901154},
    {"xzz": -4 * 0.4570457994644658, "xxx": 0.4570457994644658, "xyy": 0.4570457994644658},
    {"xxz": 1.445305721320277, "yyz": -1.445305721320277},
    {"xxx": -0.5900435899266435, "xyy": 3 * 0.5900435899266435},
]
_SH_MATRIX: dict[tuple, Tensor] = {}


def _sh_matrix(n_coeffs: int, device, dtype) -> Tensor:
    """[40, n_coeffs]: rows = monomials [1, d_i (3), d_i d_j (9), d_i d_j d_l (27)], i, j, l in x, y, z order."""
    key = (n_coeffs, str(device), dtype)
    if key not in _SH_MATRIX:
        m = torch.zeros(40, n_coeffs, dtype=torch.float64)
        for k, poly in enumerate(_SH_POLY[:n_coeffs]):
            for mono, c in poly.items():
                ax = ["xyz".index(a) for a in mono]
                row = {0: 0, 1: 1 + ax[0] if ax else 0, 2: 4 + 3 * ax[0] + ax[1] if len(ax) == 2 else 0,
                       3: 13 + 9 * ax[0] + 3 * ax[1] + ax[2] if len(ax) == 3 else 0}[len(ax)]
                m[row, k] += c
        _SH_MATRIX[key] = m.to(device=device, dtype=dtype)
    return _SH_MATRIX[key]


def sh_encode(d: Tensor, n_coeffs: int = 16) -> Tensor:
    """Real spherical harmonics of unit directions d: [N, 3] -> [N, n_coeffs] (bands 0..3: 1, 4, 9 or 16).
    Evaluated as monomials @ coefficient matrix: 5 kernels instead of ~45 elementwise ones (the render is
    launch-bound on a GPU, docs/speed.md)."""
    n = d.shape[0]
    d2 = (d[:, :, None] * d[:, None, :]).reshape(n, 9)
    d3 = (d2[:, :, None] * d[:, None, :]).reshape(n, 27)
    mono = torch.cat([torch.ones_like(d[:, :1]), d, d2, d3], dim=-1)  # [N, 40]
    return mono @ _sh_matrix(n_coeffs, d.device, d.dtype)


class Field(nn.Module):
    """Parameters are flat, named exactly as `init_params` names them (see `params_dict`)."""

    def __init__(self, cfg: FieldConfig | None = None, seed: int = 0, device="cpu"):
        super().__init__()
        self.cfg = (cfg or FieldConfig()).validate()
        self.resolutions = level_resolutions(self.cfg)
        for name, t in init_params(self.cfg, seed, device).items():
            self.register_parameter(name, nn.Parameter(t))

    # --- geometry and colour -------------------------------------------------------------
    def _encode(self, x: Tensor) -> Tensor:
        x01 = unit_coords(x, self.cfg.bound, self.cfg.contraction)  # contraction "none": (x + b) / (2b)
        return hash_encode(x01, self.encoding_tables, self.resolutions)

    def _density_head(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(sigma [N], geometry features [N, geo]) at world points x: [N, 3], before the inside-the-box mask.

        sigma = act(h_0 + density_bias + blob(x)), act = trunc_exp (default) or softplus. blob is a fixed function of
        x, not a parameter (FieldConfig.density_blob, threestudio's blob_magic3d): perturbing θ toward a fresh θ_0
        moves h_0 toward ~0, so the perturbed field fades toward a central blob instead of a box of uniform fog."""
        h = torch.relu(self._encode(x) @ self.density_w0 + self.density_b0)
        h = h @ self.density_w1 + self.density_b1  # [N, 1 + geo]
        raw = h[:, 0] + self.cfg.density_bias
        if self.cfg.density_blob == "magic3d":
            raw = raw + density_blob(x, self.cfg)
        sigma = F.softplus(raw) if self.cfg.density_activation == "softplus" else trunc_exp(raw)
        return sigma, h[:, 1:]

    def density(self, x: Tensor) -> Tensor:
        """sigma: [N] at world points x: [N, 3] (0 outside the box)."""
        sigma, _ = self._density_head(x)
        inside = field_inside(x, self.cfg.bound, self.cfg.contraction)
        return sigma * inside

    def query(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """x: [N, 3] world points, d: [N, 3] unit view directions -> (sigma [N], rgb [N, 3])."""
        sigma, geo = self._density_head(x)
        h = torch.cat([geo, sh_encode(d, SH_DIR_DIM)], dim=-1)
        h = torch.relu(h @ self.color_w0 + self.color_b0)
        h = torch.relu(h @ self.color_w1 + self.color_b1)
        rgb = torch.sigmoid(h @ self.color_w2 + self.color_b2)
        inside = field_inside(x, self.cfg.bound, self.cfg.contraction)
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
