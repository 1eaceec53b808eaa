"""Scene normalisation: cameras moved by a known similarity normalise back; instant-ngp's scale/offset; the
transform travels in the checkpoint (old checkpoints load as the identity)."""

import json
import math

import pytest
import torch

from pnr.data.scene import SceneTransform, normalize_scene
from pnr.data.transforms import load_transforms_dataset, write_transforms_dataset
from pnr.render.cameras import from_fov, look_at
from tests.field.spheres import sphere_cameras


def _rot(axis, deg):
    a = torch.nn.functional.normalize(torch.tensor(axis, dtype=torch.float64), dim=0)
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=torch.float64)
    t = math.radians(deg)
    return torch.eye(3, dtype=torch.float64) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


def _moved(cams, s, rot, t):
    """The same rig in another world frame: x' = s R x + t (a COLMAP-like arbitrary frame)."""
    c2w = cams.c2w.double().clone()
    c2w[:, :3, :3] = rot @ c2w[:, :3, :3]
    c2w[:, :3, 3] = s * (rot @ c2w[:, :3, 3].T).T + t
    return c2w.float()


def test_an_already_normalised_dataset_is_left_exactly_as_is():
    cams = sphere_cameras(20)  # 3 units from the origin, 40 degree views: the NeRF-synthetic frame
    st = normalize_scene(cams.c2w, cams.fx, cams.fy, 64, 64)
    assert st.is_identity() and st.source == "identity"


def test_moved_and_scaled_cameras_normalise_back():
    cams = sphere_cameras(24, seed=3)
    rot, t = _rot((0.3, -0.5, 0.8), 47.0), torch.tensor([4.0, -7.5, 2.25], dtype=torch.float64)
    c2w = _moved(cams, 6.5, rot, t)
    ref = normalize_scene(cams.c2w, cams.fx, cams.fy, 64, 64, mode="cameras", orient="none")
    st = normalize_scene(c2w, cams.fx, cams.fy, 64, 64, mode="auto", orient="none")
    assert st.source == "cameras" and not st.is_identity()
    p_ref = ref.apply_c2w(cams.c2w)[:, :3, 3].double()
    p = st.apply_c2w(c2w)[:, :3, 3].double()
    # the focus (the origin of the original frame) comes back to the origin and the scale is undone exactly:
    # normalised positions equal the reference's up to the rotation R that was applied
    assert float((p - (rot @ p_ref.T).T).abs().max()) < 1e-4
    assert st.scale == pytest.approx(ref.scale / 6.5, rel=1e-5)
    assert float(st.apply_points(t[None])[0].norm()) < 1e-4  # the moved origin maps to the box centre
    # and the region the cameras look at now fills the box: the median camera sees a sphere of radius 1
    half = math.radians(20.0)
    assert float(torch.median(p.norm(dim=-1))) * math.sin(half) == pytest.approx(1.0, rel=1e-3)
    # orientation "up": the mean camera up vector becomes +z again
    up = normalize_scene(c2w, cams.fx, cams.fy, 64, 64, mode="cameras", orient="up").apply_c2w(c2w)[:, :3, 1]
    mean_up = torch.nn.functional.normalize(up.double().mean(0), dim=0)
    assert float(mean_up[2]) > 1 - 1e-6
    # --scale shrinks (< 1) or enlarges the scene in the box
    half_st = normalize_scene(c2w, cams.fx, cams.fy, 64, 64, orient="none", scale=0.5)
    assert half_st.scale == pytest.approx(st.scale * 0.5, rel=1e-6)


def test_forward_facing_cameras_fall_back_to_the_camera_positions():
    eye = torch.stack([torch.linspace(-1, 1, 6), torch.full((6,), -5.0), torch.zeros(6)], -1) + torch.tensor([10.0, 0, 0])
    c2w = look_at(eye, torch.tensor([10.0, 100.0, 0.0]))  # parallel axes: they meet nowhere
    cams = from_fov(c2w, 50.0, 32)
    st = normalize_scene(cams.c2w, cams.fx, cams.fy, 32, 32, orient="none")
    p = st.apply_c2w(c2w)[:, :3, 3]
    assert st.source == "poses" and float(p.norm(dim=-1).max()) == pytest.approx(1.0, rel=1e-5)


def test_instant_ngp_scale_and_offset_define_the_box():
    cams = sphere_cameras(8)
    st = normalize_scene(cams.c2w, cams.fx, cams.fy, 64, 64, ngp={"scale": 0.25, "offset": [0.5, 0.75, 0.25]})
    assert st.source == "ngp" and st.scale == pytest.approx(0.5)
    # ngp position (x1, x2, x0) * 0.25 + offset = 0.5 at the cube centre -> x = (1, 0, -1); the cube corner
    # (ngp (0, 0, 0)) -> our box corner (-1, -1, -1)
    assert st.apply_points(torch.tensor([[1.0, 0.0, -1.0]])).abs().max() < 1e-6
    corner = torch.tensor([[(0 - 0.25) / 0.25, (0 - 0.5) / 0.25, (0 - 0.75) / 0.25]])  # nerf axes of ngp (0,0,0)
    assert torch.allclose(st.apply_points(corner), torch.tensor([[-1.0, -1.0, -1.0]]), atol=1e-6)


def test_fit_stores_the_transform_and_uses_it_for_heldout_views(tmp_path):
    from pnr.field.checkpoint import load_checkpoint
    from pnr.field.config import FieldConfig
    from pnr.fit import FitConfig, evaluate_checkpoint, fit
    from tests.field.spheres import render_spheres

    cams = sphere_cameras(9, res=12)
    rot, t = _rot((1.0, 0.2, 0.0), 30.0), torch.tensor([2.0, 1.0, -3.0], dtype=torch.float64)
    rgba = render_spheres(cams)
    d = write_transforms_dataset(tmp_path / "moved", rgba, _moved(cams, 3.0, rot, t), math.radians(40.0), test_every=3)
    for name in ("transforms_train.json", "transforms_test.json"):
        meta = json.loads((d / name).read_text())
        meta["aabb_scale"] = 2
        (d / name).write_text(json.dumps(meta))
    ds = load_transforms_dataset(d)
    assert ds.scene == {"aabb_scale": 2.0}
    cfg = FitConfig(steps=3, rays_per_batch=64, num_samples=16, occupancy_resolution=8)
    _, _, m = fit(ds, FieldConfig.tiny(), cfg, tmp_path / "run", progress=False)
    _, _, ck = load_checkpoint(tmp_path / "run")
    st = SceneTransform.from_meta(ck)
    assert st.source == "cameras" and st.scale == pytest.approx(1 / 3 / 1.0261, rel=2e-3)
    assert m["scene_transform"]["matrix"] == ck["scene_transform"]["matrix"]
    # evaluating the checkpoint on the dataset goes through the same transform as fit's own evaluation
    ev = evaluate_checkpoint(tmp_path / "run", ds, num_samples=16)
    assert ev["psnr"] == pytest.approx(m["heldout_psnr"], abs=1e-4)
    # a checkpoint from before scene normalisation (no scene_transform) is in the identity frame
    assert SceneTransform.from_meta({"step": 3}).is_identity()
