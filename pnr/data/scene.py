"""Scene normalisation: the similarity transform from a dataset's world frame to the field's frame.

A field lives in the box [-bound, bound]^3 (or, unbounded, in the ball of radius bound plus its contracted
outside). Real captures come in any frame: COLMAP's arbitrary scale and origin, cameras ~4-6 units from the
object (instant-ngp's colmap2nerf), phone poses in metres. `normalize_scene` finds the region the cameras look
at and maps it onto the box:

* centre: the point closest to all optical axes in the least-squares sense (nerfstudio's "focus" centring,
  instant-ngp colmap2nerf's "centre of attention"); if the axes do not meet in front of the cameras (a
  forward-facing capture, cameras looking outwards) the mean camera position (nerfstudio's "poses").
* scale: the radius of the sphere around the centre that just fills the median camera's narrower field of
  view maps to `bound` (for the fallback centring: the farthest camera maps to `bound`, as nerfstudio's
  auto_scale_poses does); times the user's `scale`.
* orientation "up": rotate so the mean camera up vector is +z, the world up of renders and turntables
  (nerfstudio's orientation_method "up"); "none" keeps the dataset's axes.
* instant-ngp's `scale`/`offset`, when the file gives them, define the box instead: ngp's unit cube
  (ngp position = (y, z, x) * scale + offset, cube [0, 1]^3) is mapped onto [-bound, bound]^3.

"auto" leaves datasets that already fit the box untouched (the identity: NeRF-synthetic, `pnr data object`,
cameras ~3 units away looking at the origin), so their fits are unchanged. The transform is stored in the
checkpoint's meta ("scene_transform"); checkpoints without one are in the identity frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pnr.errors import PnrError

NORMALIZE_MODES = ("auto", "cameras", "none")
ORIENT_MODES = ("up", "none")


@dataclass
class SceneTransform:
    """x_field = matrix @ [x_world, 1] with matrix = [[s R, -s R c], [0, 1]] (a similarity)."""

    matrix: Tensor  # [4, 4] float64
    source: str = "identity"  # identity | cameras | poses | ngp

    @property
    def scale(self) -> float:
        return float(torch.linalg.det(self.matrix[:3, :3]).abs() ** (1 / 3))

    @property
    def rotation(self) -> Tensor:
        return self.matrix[:3, :3] / self.scale

    def is_identity(self) -> bool:
        return bool(torch.allclose(self.matrix, torch.eye(4, dtype=self.matrix.dtype), atol=1e-12))

    def apply_c2w(self, c2w: Tensor) -> Tensor:
        """Camera-to-world poses [B, 4, 4] in the field frame (rotation part stays orthonormal)."""
        m = self.matrix.to(c2w.device, torch.float64)
        out = c2w.double().clone()
        out[:, :3, :3] = self.rotation.to(c2w.device) @ c2w[:, :3, :3].double()
        out[:, :3, 3] = (m[:3, :3] @ c2w[:, :3, 3].double().T).T + m[:3, 3]
        return out.to(c2w.dtype)

    def apply_points(self, x: Tensor) -> Tensor:
        m = self.matrix.to(x.device, torch.float64)
        return ((m[:3, :3] @ x.double().T).T + m[:3, 3]).to(x.dtype)

    def to_meta(self) -> dict:
        return {"matrix": self.matrix.tolist(), "scale": self.scale, "source": self.source}

    @staticmethod
    def identity() -> "SceneTransform":
        return SceneTransform(torch.eye(4, dtype=torch.float64), "identity")

    @staticmethod
    def from_meta(meta: dict | None) -> "SceneTransform":
        """From a checkpoint's meta; the identity when it has none (checkpoints before scene normalisation)."""
        st = (meta or {}).get("scene_transform")
        if not st:
            return SceneTransform.identity()
        m = torch.tensor(st["matrix"], dtype=torch.float64)
        if m.shape != (4, 4) or not torch.isfinite(m).all():
            raise PnrError(f"checkpoint meta 'scene_transform' is not a finite 4x4 matrix: {st['matrix']!r}")
        return SceneTransform(m, str(st.get("source", "cameras")))


def _similarity(center: Tensor, scale: float, rot: Tensor, source: str) -> SceneTransform:
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = scale * rot
    m[:3, 3] = -scale * (rot @ center)
    return SceneTransform(m, source)


def focus_point(c2w: Tensor) -> tuple[Tensor, bool]:
    """(point closest to all optical axes, whether it is a real focus: well conditioned and in front of most
    cameras)."""
    o = c2w[:, :3, 3].double()
    d = torch.nn.functional.normalize(-c2w[:, :3, 2].double(), dim=-1)  # cameras look down -z
    proj = torch.eye(3, dtype=torch.float64) - d[:, :, None] * d[:, None, :]  # [N, 3, 3]
    a = proj.sum(0)
    b = (proj @ o[:, :, None]).sum(0)[:, 0]
    ev = torch.linalg.eigvalsh(a / len(o))
    if len(o) < 2 or float(ev[0]) < 0.02:  # axes (nearly) parallel: no point where they meet
        return o.mean(0), False
    p = torch.linalg.solve(a, b)
    in_front = float((((p - o) * d).sum(-1) > 0).double().mean())
    return p, in_front >= 0.75


def up_rotation(c2w: Tensor) -> Tensor:
    """Rotation taking the mean camera up vector (+y of each camera) to +z; the identity if they disagree."""
    u = c2w[:, :3, 1].double().mean(0)
    if float(u.norm()) < 0.3:
        return torch.eye(3, dtype=torch.float64)
    u = u / u.norm()
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    v = torch.linalg.cross(u, z)
    c = float(u @ z)
    if float(v.norm()) < 1e-12:
        return torch.eye(3, dtype=torch.float64) if c > 0 else torch.diag(torch.tensor([1.0, -1.0, -1.0],
                                                                                       dtype=torch.float64))
    vx = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + vx + vx @ vx / (1 + c)


def ngp_transform(scale: float, offset, bound: float) -> SceneTransform:
    """instant-ngp's scale/offset: ngp position (x1, x2, x0) * scale + offset; its unit cube -> our box."""
    off = torch.tensor([float(v) for v in offset], dtype=torch.float64)
    n = (0.5 - off) / scale  # the cube's centre in ngp axes, unscaled
    center = torch.stack([n[2], n[0], n[1]])
    return _similarity(center, 2 * bound * scale, torch.eye(3, dtype=torch.float64), "ngp")


def normalize_scene(c2w: Tensor, fx: Tensor, fy: Tensor, width: int, height: int, bound: float = 1.0,
                    mode: str = "auto", orient: str = "up", scale: float = 1.0,
                    ngp: dict | None = None) -> SceneTransform:
    """The transform mapping the region these cameras look at onto [-bound, bound]^3 (module doc).
    `ngp`: the file's instant-ngp keys ({"scale": s, "offset": [x, y, z]}), used when it has either."""
    if mode not in NORMALIZE_MODES:
        raise PnrError(f"--normalize {mode!r}: expected one of {', '.join(NORMALIZE_MODES)}")
    if orient not in ORIENT_MODES:
        raise PnrError(f"--orient {orient!r}: expected one of {', '.join(ORIENT_MODES)}")
    if not (scale > 0 and math.isfinite(scale)):
        raise PnrError(f"--scale {scale}: must be a positive number")
    if mode == "none":
        t = SceneTransform.identity()
        if scale != 1.0:
            t = _similarity(torch.zeros(3, dtype=torch.float64), scale, torch.eye(3, dtype=torch.float64), "scale")
        return t
    ngp = ngp or {}
    if "scale" in ngp or "offset" in ngp:
        t = ngp_transform(float(ngp.get("scale", 0.33)), ngp.get("offset", (0.5, 0.5, 0.5)), bound)
        if scale != 1.0:
            t = SceneTransform(torch.diag(torch.tensor([scale, scale, scale, 1.0], dtype=torch.float64)) @ t.matrix,
                               "ngp")
        return t
    center, focused = focus_point(c2w)
    o = c2w[:, :3, 3].double()
    dist = (o - center).norm(dim=-1)
    if focused:
        half = torch.atan(torch.minimum(width / (2 * fx.double()), height / (2 * fy.double())))
        radius = float(torch.median(dist * torch.sin(half)))
        source = "cameras"
    else:
        radius = float(dist.max())
        source = "poses"
    radius = max(radius, 1e-6)
    if (mode == "auto" and focused and scale == 1.0 and float(center.norm()) < 0.25 * bound
            and 0.5 * bound <= radius <= 2.0 * bound):
        return SceneTransform.identity()  # already in the field's frame: keep it exactly
    rot = up_rotation(c2w) if orient == "up" else torch.eye(3, dtype=torch.float64)
    return _similarity(center, bound / radius * scale, rot, source)


def detect_unbounded(images: Tensor, alpha: Tensor, scene: dict | None = None) -> tuple[bool, str]:
    """Does a dataset show a scene with a background a bounded object field cannot hold? -> (yes, why).
    Masked images (any alpha < 1: NeRF-synthetic, `pnr data object`) are objects; instant-ngp's aabb_scale > 1
    says the scene extends past its unit cube; otherwise opaque photos whose borders are not one uniform
    colour (a room, a street) have a background."""
    if bool((alpha < 1).any()):
        return False, "the images have alpha masks (an object on a background colour)"
    aabb = float((scene or {}).get("aabb_scale", 1.0))
    if aabb > 1:
        return True, f"the file's aabb_scale is {aabb:g} (the scene extends past its unit cube)"
    ring = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)  # [N, 2W+2H, 3]
    spread = float(ring.std(dim=1).mean(-1).median())
    if spread > 0.05:
        return True, f"the images are opaque and their borders are not a uniform background (spread {spread:.2f})"
    return False, f"the images' borders are a uniform background (spread {spread:.2f})"


def box_coverage(origins: Tensor, dirs: Tensor, bound: float) -> float:
    """Fraction of rays that cross the box [-bound, bound]^3."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-bound - origins) * inv, (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(-1)
    return float((far > near).float().mean())


def check_scene_fits(c2w: Tensor, origins: Tensor, dirs: Tensor, bound: float, contraction: str,
                     unbounded_hint: tuple[bool, str] | None = None) -> list[str]:
    """Before a fit, in the field's frame: one-line warnings when what the cameras see falls mostly outside what
    the field can represent; PnrError when almost nothing is inside (the fit could only be garbage)."""
    if contraction != "none":
        return []
    out = []
    cov = box_coverage(origins, dirs, bound)
    fix = "pass --unbounded if the scene has a background, or --scale 0.5 (or smaller) to shrink it into the box"
    if cov < 0.05:
        raise PnrError(f"only {100 * cov:.1f}% of the training rays cross the field's box [-{bound:g}, {bound:g}]^3: "
                       f"the scene lies outside it; {fix}")
    if cov < 0.5:
        out.append(f"only {100 * cov:.0f}% of the training rays cross the field's box: most of what the cameras see "
                   f"is outside it; {fix}")
    inside = float((c2w[:, :3, 3].abs() < bound).all(-1).float().mean())
    if inside > 0.5:
        out.append(f"{100 * inside:.0f}% of the cameras are inside the field's box (a scene around the cameras): "
                   "pass --unbounded, or --scale 0.5 (or smaller) if it is an object")
    if unbounded_hint is not None and unbounded_hint[0]:
        out.append(f"{unbounded_hint[1]}, which a bounded field cannot model (it paints the background onto "
                   "the box): pass --unbounded")
    return out


def check_fitted_density(occupancy, bound: float, contraction: str) -> list[str]:
    """After a bounded fit: density piled on the box's faces (the outermost layer of occupancy cells far more
    occupied than the inside) means the scene was cut off by the box."""
    if contraction != "none" or occupancy is None:
        return []
    r = occupancy.resolution
    occ = occupancy.occupied.view(r, r, r).float()
    if r < 4:
        return []
    inner = occ[1:-1, 1:-1, 1:-1]
    n_in = inner.numel()
    shell = (occ.sum() - inner.sum()) / (occ.numel() - n_in)
    inner_frac = inner.mean()
    if float(shell) > 0.25 and float(shell) > 2 * float(inner_frac):
        return [f"the fitted density fills the box's faces ({100 * float(shell):.0f}% of the outermost cells occupied, "
                f"{100 * float(inner_frac):.0f}% inside): the scene is cut off by the box; refit with --unbounded (a "
                "scene with background) or --scale 0.5 (or smaller)"]
    return []
