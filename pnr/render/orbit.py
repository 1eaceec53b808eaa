"""The turntable orbit: where a turntable's cameras are, declared once, with one named instance per use.

The orbits in use differ in elevation (and where the first frame is): the evaluation / `pnr render` orbit
(20°, azimuth from +x; also the mesh preview and the domain contact sheet, from other azimuths) and the edit
outputs' orbit (15°: an edit's turntable.mp4 / contact.png, and the showcase figures, which start at azimuth
-90° so the first view faces the object's front). All use radius 3 and a 40° field of view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pnr.settings import ConfigError, bad, setting


@dataclass(frozen=True)
class OrbitConfig:
    frames: int = setting(60, "turntable frames, evenly spaced in azimuth")
    res: int = setting(128, "render side in pixels")
    elevation: float = setting(20.0, "camera elevation in degrees (the built-in prior saw 0-30)")
    radius: float = setting(3.0, "camera distance from the centre")
    fov: float = setting(40.0, "vertical field of view in degrees")
    azimuth0: float = setting(0.0, "azimuth of the first frame in degrees (0 = +x, counter-clockwise)", cli=False)

    def __post_init__(self):
        if self.frames <= 0:
            bad(OrbitConfig, "frames", "must be positive", self.frames)
        if self.res <= 0:
            bad(OrbitConfig, "res", "must be positive", self.res)
        if not (math.isfinite(self.fov) and 0 < self.fov < 180):
            raise ConfigError(OrbitConfig, "fov", f"{self.fov}: must be in (0, 180) degrees")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ConfigError(OrbitConfig, "radius", f"{self.radius}: must be positive")

    def with_(self, **kw) -> "OrbitConfig":
        return replace(self, **kw)

    def cameras(self, device="cpu"):
        from pnr.render.cameras import orbit_cameras

        return orbit_cameras(self.frames, elevation_deg=self.elevation, radius=self.radius, fov_deg=self.fov,
                             res=self.res, azimuth0_deg=self.azimuth0, device=device)


# `pnr render` (and pnr.render.turntable.turntable's defaults)
RENDER_ORBIT = OrbitConfig()
# `pnr eval` / EvalConfig: the same orbit, 24 frames (IN2N-style metrics average over a rendered camera path)
EVAL_ORBIT = OrbitConfig(frames=24)
# an edit's source | edit turntable.mp4 and contact.png (EditConfig.turntable_frames / turntable_res, paper preset)
EDIT_ORBIT = OrbitConfig(frames=24, res=96, elevation=15.0)
# pnr.edit.showcase's before/after figures: the edit orbit, 4 views from the front (azimuth -90°)
SHOWCASE_ORBIT = OrbitConfig(frames=4, res=96, elevation=15.0, azimuth0=-90.0)
# `pnr export mesh --preview`: the render orbit, 4 views from azimuth -60°, 256 px
MESH_PREVIEW_ORBIT = OrbitConfig(frames=4, res=256, azimuth0=-60.0)
# docs/domain_contact_sheet.png (pnr.data.domain.sheet): the render orbit, 4 views from the front-left
DOMAIN_SHEET_ORBIT = OrbitConfig(frames=4, res=96, azimuth0=-135.0)


@dataclass(frozen=True)
class TurntableOutputConfig:
    """What `pnr render` writes besides the orbit (OrbitConfig): samples per ray, video rate, contact sheet."""

    num_samples: int = setting(128, "samples per ray", flag="--samples")
    fps: int = setting(24, "frames per second of turntable.mp4")
    sheet_frames: int = setting(12, "frames on the contact sheet")

    def __post_init__(self):
        for name in ("num_samples", "fps", "sheet_frames"):
            if getattr(self, name) <= 0:
                bad(TurntableOutputConfig, name, "must be positive", getattr(self, name))
