"""Field hyper-parameters. Defaults follow instant-ngp (Müller et al. 2022, Table 1) as used by
threestudio's hash-grid NeRF, which Perturb-and-Revise builds on (paper Sec. 4, implementation details)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from pnr.errors import CheckpointError


@dataclass
class FieldConfig:
    levels: int = 16  # L, instant-ngp Table 1
    features_per_level: int = 2  # F, instant-ngp Table 1
    log2_table_size: int = 19  # T = 2^19, instant-ngp Table 1 (threestudio: 19)
    base_resolution: int = 16  # N_min, instant-ngp Table 1
    max_resolution: int = 2048  # N_max, threestudio's default for bounded objects
    hidden_dim: int = 64  # width of the density/colour MLPs, instant-ngp Sec. 5.4
    geo_feat_dim: int = 15  # density MLP outputs 1 + 15 features, instant-ngp Sec. 5.4
    bound: float = 1.0  # the field lives in the box [-bound, bound]^3
    background: Literal["learned", "fixed"] = "learned"
    background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # used when background="fixed"
    sh_degree: int = 4  # direction encoding of the colour head (instant-ngp: SH degree 4 = 16 coeffs)
    density_bias: float = -1.0  # shifts trunc_exp pre-activation; small empty-ish initial density
    # unbounded scenes: "mipnerf360" contracts space outside the ball of radius `bound` into radius 2*bound
    # (pnr/field/contraction.py); "none" = the bounded box (omitted from to_dict, so such configs are unchanged)
    contraction: str = "none"

    @property
    def table_size(self) -> int:
        return 1 << self.log2_table_size

    @staticmethod
    def tiny() -> "FieldConfig":
        """Small field for unit tests on CPU."""
        return FieldConfig(levels=8, features_per_level=2, log2_table_size=14, base_resolution=8,
                           max_resolution=256, hidden_dim=32)

    @staticmethod
    def small() -> "FieldConfig":
        """Fits a 64x64 object in ~1-2 min on a 2-core CPU (bundled sample, tests of the editing loop)."""
        return FieldConfig(levels=12, features_per_level=2, log2_table_size=16, base_resolution=16,
                           max_resolution=512, hidden_dim=64)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["background_color"] = list(self.background_color)
        if d.get("contraction") == "none":
            del d["contraction"]
        return d

    @staticmethod
    def from_dict(d: dict) -> "FieldConfig":
        known = {f.name for f in fields(FieldConfig)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"field config has unknown keys {sorted(unknown)}")
        d = dict(d)
        if "background_color" in d:
            d["background_color"] = tuple(float(v) for v in d["background_color"])
        cfg = FieldConfig(**d)
        if cfg.background not in ("learned", "fixed"):
            raise CheckpointError(f"field config background={cfg.background!r}: expected 'learned' or 'fixed'")
        if cfg.contraction not in ("none", "mipnerf360"):
            raise CheckpointError(f"field config contraction={cfg.contraction!r}: expected 'none' or 'mipnerf360'")
        return cfg


# the named field sizes (`pnr fit --field`, `pnr edit --field` for a dataset source, scripts' --field)
FIELD_PRESETS = {"default": FieldConfig, "small": FieldConfig.small, "tiny": FieldConfig.tiny}


def field_preset(name: str) -> FieldConfig:
    """The FieldConfig of a named size: default (instant-ngp), small (the sample, edit tests) or tiny (unit tests)."""
    if name not in FIELD_PRESETS:
        raise ValueError(f"unknown field preset {name!r}; expected one of {', '.join(FIELD_PRESETS)}")
    return FIELD_PRESETS[name]()
