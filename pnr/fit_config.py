"""Settings of `pnr fit` (pnr.fit.fit): one declaration each, with its help text (pnr.settings.setting).

Kept free of torch so that building the CLI stays fast; pnr.fit re-exports FitConfig.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pnr.settings import bad, setting


@dataclass
class FitConfig:
    steps: int = setting(2000, "optimisation steps")
    rays_per_batch: int = setting(4096, "rays per batch", flag="--rays")
    num_samples: int = setting(128, "samples per ray across the box", flag="--samples")
    lr: float = setting(1e-2, "Adam learning rate (instant-ngp Sec. 4: 1e-2, betas (0.9, 0.99), eps 1e-15)")
    lr_final_ratio: float = setting(0.1, "exponential decay to lr * ratio at the last step")
    weight_decay: float = setting(1e-6, "L2 on MLP weights, instant-ngp Sec. 4")
    checkpoint_every: int = setting(500, "steps between checkpoints (resumable with --resume)")
    occupancy_resolution: int = setting(
        64, "occupancy grid cells per axis (the CLI's default: 64 on CUDA, 32 on CPU where its updates cost more; "
        "fit_config_for)", flag="--occupancy-res")
    random_background: bool = setting(True, "composite each batch on a random background colour (so opacity must "
                                      "match the images' alpha)")
    # our addition, not from the paper: skipped cells never get gradients from rendering, so leftover "fog" there
    # would make renders with and without skipping differ
    empty_space_weight: float = setting(1e-3, "density penalty (per mean sigma) at random points in cells the "
                                        "occupancy grid skips")
    empty_space_points: int = setting(1024, "points per step of that penalty")
    seed: int = setting(0, "initialisation, ray sampling and backgrounds")
    device: str = setting("cpu", "cpu or cuda (the CLI's --device auto picks)", cli=False)
    eval_chunk: int = setting(1 << 14, "rays per chunk of held-out renders")
    eval_max_res: int = setting(256, "held-out views are evaluated at most PX pixels a side (their images "
                                "area-averaged to the same size; 0: full size)", flag="--eval-res", metavar="PX")
    eval_every: int = setting(0, "also report held-out PSNR (eval_views views) every STEPS steps (0: only at "
                              "the end)", metavar="STEPS")
    eval_views: int = setting(4, "held-out views of the periodic report")
    # scene normalisation (pnr/data/scene.py)
    normalize: str = setting(
        "auto", "scene frame: 'cameras' centres and scales the region the cameras look at into the field's box "
        "(instant-ngp's scale/offset when the file has them); 'auto' does so unless the scene already fits the "
        "box; 'none' keeps the dataset's frame", choices=("auto", "cameras", "none"))
    orient: str = setting("up", "when normalising: turn the mean camera up vector to +z ('up') or keep the axes",
                          choices=("up", "none"))
    scale: float = setting(1.0, "extra factor on the scene scale: < 1 shrinks the scene into the box (if it is "
                           "cut off), > 1 enlarges it")
    stop_after: int | None = setting(None, "stop (with a checkpoint) at this step, as if interrupted")
    time_limit_s: float | None = setting(None, "stop (with a checkpoint) after this much training time")

    def __post_init__(self):
        """Out-of-range settings fail here, named as on the CLI (pnr.settings.flag_of)."""
        for name in ("steps", "rays_per_batch", "num_samples", "checkpoint_every"):
            if getattr(self, name) <= 0:
                bad(FitConfig, name, "must be positive", getattr(self, name))
        for name in ("eval_max_res", "eval_every"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                bad(FitConfig, name, "must be >= 0", getattr(self, name))
        if not (self.scale > 0 and math.isfinite(self.scale)):
            bad(FitConfig, "scale", "must be a positive number", self.scale)

    @staticmethod
    def from_dict(d: dict) -> "FitConfig":
        return FitConfig(**{k: v for k, v in d.items() if k in FitConfig.__dataclass_fields__})


def fit_config_for(device: str, **settings) -> FitConfig:
    """`pnr fit`'s FitConfig on `device`: the occupancy grid defaults to 64 cells per axis on CUDA and 32 on the
    CPU (where its updates cost more) unless `occupancy_resolution` is given."""
    if settings.get("occupancy_resolution") is None:
        settings["occupancy_resolution"] = 64 if device.startswith("cuda") else 32
    return FitConfig(device=device, **settings)
