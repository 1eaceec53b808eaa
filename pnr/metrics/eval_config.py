"""Settings of `pnr eval` (pnr.metrics.eval.evaluate_edit): one declaration each, with its help text.

Kept free of torch so that building the CLI stays fast; pnr.metrics.eval re-exports EvalConfig.
"""

from __future__ import annotations

from dataclasses import dataclass

from pnr.render.orbit import EVAL_ORBIT, OrbitConfig
from pnr.settings import ConfigError, setting


def _orbit_help(name: str) -> str:
    return OrbitConfig.__dataclass_fields__[name].metadata["help"]


@dataclass
class EvalConfig:
    # the turntable: pnr.render.orbit.EVAL_ORBIT (IN2N-style metrics average over a rendered camera path)
    views: int = setting(EVAL_ORBIT.frames, "turntable frames")
    res: int = setting(EVAL_ORBIT.res, "render side (the domain encoder resizes to its own 64)")
    elevation: float = setting(EVAL_ORBIT.elevation, _orbit_help("elevation"))
    radius: float = setting(EVAL_ORBIT.radius, _orbit_help("radius"))
    fov: float = setting(EVAL_ORBIT.fov, _orbit_help("fov"))
    num_samples: int = setting(128, "volume-rendering samples per ray", flag="--samples")
    net: str = setting("alex", "perceptual trunk: ST-LPIPS alex or vgg", choices=("alex", "vgg"))
    backbone: str = setting("domain", "'domain' (shipped encoder), 'domain:DIR', or 'clip:HUB_ID_OR_PATH'")
    device: str = setting("cpu", "cpu or cuda (the CLI's --device auto picks)", cli=False)
    gt: bool = setting(True, "ground-truth metrics when the target object is known (--no-gt: skip them)")

    def __post_init__(self):
        """Out-of-range settings fail here, named as on the CLI (pnr.settings.flag_of)."""
        if self.views < 2:
            raise ConfigError(EvalConfig, "views", f"{self.views}: need at least 2 turntable frames")
        if self.res < 32:
            raise ConfigError(EvalConfig, "res", f"{self.res}: the perceptual metrics (ST-LPIPS) need renders of "
                              "at least 32x32")
        if self.num_samples < 1:
            raise ConfigError(EvalConfig, "num_samples", f"{self.num_samples}: must be >= 1")

    @property
    def orbit(self) -> OrbitConfig:
        return OrbitConfig(frames=self.views, res=self.res, elevation=self.elevation, radius=self.radius,
                           fov=self.fov)
