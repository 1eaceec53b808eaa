"""Real-capture camera models: OpenCV distortion, per-frame intrinsics, nerfstudio camera_model, --downscale,
held-out evaluation at a bounded resolution."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pnr.data.transforms import load_transforms_dataset, write_transforms_dataset
from pnr.errors import DataError
from pnr.render.cameras import Cameras, distort, generate_rays, orbit_cameras, undistort

K = torch.tensor([-0.28, 0.09, 1.2e-3, -2.1e-3, -0.015])  # k1 k2 p1 p2 k3: a strong phone-lens barrel


def test_distortion_round_trip_on_a_grid():
    x, y = torch.meshgrid(torch.linspace(-0.7, 0.7, 41, dtype=torch.float64),
                          torch.linspace(-0.55, 0.55, 33, dtype=torch.float64), indexing="xy")
    xd, yd = distort(x, y, K.double())
    assert (xd - x).abs().max() > 0.05  # the model really moves points at the edges
    xu, yu = undistort(xd, yd, K.double())
    assert float(torch.maximum((xu - x).abs(), (yu - y).abs()).max()) < 1e-5
    # in float32, too (what generate_rays passes)
    xu, yu = undistort(xd.float(), yd.float(), K)
    assert float(torch.maximum((xu.double() - x).abs(), (yu.double() - y).abs()).max()) < 1e-5


def test_distorted_rays_project_back_onto_their_pixels():
    """A ray of pixel (i, j), projected by the pinhole + OpenCV distortion model, lands on the pixel centre."""
    cams = orbit_cameras(2, res=24)
    cams = Cameras(cams.c2w, cams.fx, cams.fy * 1.1, cams.cx + 1.5, cams.cy - 2.0, 24, 24, K.expand(2, 5).clone())
    o, d = generate_rays(cams)
    plain, _ = generate_rays(orbit_cameras(2, res=24))
    rot = cams.c2w[:, None, None, :3, :3]
    dc = (rot.transpose(-1, -2) @ d[..., None])[..., 0]  # camera frame (OpenGL: -z forward, +y up)
    xn, yn = dc[..., 0] / -dc[..., 2], -dc[..., 1] / -dc[..., 2]  # OpenCV normalised coords, y down
    xd, yd = distort(xn, yn, K)
    u = xd * cams.fx[:, None, None] + cams.cx[:, None, None]
    v = yd * cams.fy[:, None, None] + cams.cy[:, None, None]
    j, i = torch.meshgrid(torch.arange(24) + 0.5, torch.arange(24) + 0.5, indexing="xy")
    assert float((u - j).abs().max()) < 1e-3 and float((v - i).abs().max()) < 1e-3
    assert float((d - plain).abs().max()) > 0.05  # and they differ from undistorted pinhole rays


def _ns_dataset(tmp_path, n=4, res=16):
    """A nerfstudio-style capture: opaque JPEG-like RGB PNGs under images/, pixel intrinsics."""
    cams = orbit_cameras(n, res=res)
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(n, res, res, 3, generator=g)
    out = tmp_path / "cap"
    (out / "images").mkdir(parents=True)
    frames = []
    for i in range(n):
        Image.fromarray((rgb[i].numpy() * 255 + 0.5).astype(np.uint8)).save(out / "images" / f"frame_{i:05d}.png")
        frames.append({"file_path": f"images/frame_{i:05d}.png", "transform_matrix": cams.c2w[i].tolist()})
    meta = {"camera_model": "OPENCV", "fl_x": 20.0, "fl_y": 21.0, "cx": 8.5, "cy": 7.5, "w": res, "h": res,
            "k1": -0.1, "k2": 0.01, "p1": 0.001, "p2": -0.002, "frames": frames}
    (out / "transforms.json").write_text(json.dumps(meta))
    return out, meta, rgb


def test_per_frame_intrinsics_distortion_and_rescaled_w_h(tmp_path):
    d, meta, _ = _ns_dataset(tmp_path)
    # frame 1 has its own camera, calibrated at twice the image's resolution (w/h differ from the file)
    meta["frames"][1].update(fl_x=50.0, fl_y=52.0, cx=17.0, cy=15.0, w=32, h=32, k1=-0.2, camera_model="OPENCV")
    # frame 2 gives only its own focal length: the global cx/cy/distortion apply
    meta["frames"][2].update(fl_x=18.0, fl_y=18.0)
    (d / "transforms.json").write_text(json.dumps(meta))
    ds = load_transforms_dataset(d)
    assert ds.cams.fx.tolist() == pytest.approx([20.0, 25.0, 18.0, 20.0])
    assert ds.cams.fy.tolist() == pytest.approx([21.0, 26.0, 18.0, 21.0])
    assert ds.cams.cx.tolist() == pytest.approx([8.5, 8.5, 8.5, 8.5])
    assert ds.cams.cy.tolist() == pytest.approx([7.5, 7.5, 7.5, 7.5])
    assert ds.cams.distortion is not None
    assert ds.cams.distortion[:, 0].tolist() == pytest.approx([-0.1, -0.2, -0.1, -0.1])
    assert ds.cams.distortion[0].tolist() == pytest.approx([-0.1, 0.01, 0.001, -0.002, 0.0])
    # the camera_angle_x fallback (per frame, too) and a PINHOLE file without distortion
    m2 = {k: v for k, v in meta.items() if k not in ("fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2")}
    m2.update(camera_model="PINHOLE", camera_angle_x=math.radians(60.0))
    m2["frames"] = [{k: v for k, v in f.items() if k in ("file_path", "transform_matrix")} for f in meta["frames"]]
    m2["frames"][3]["camera_angle_x"] = math.radians(90.0)
    (d / "pinhole.json").write_text(json.dumps(m2))
    ds2 = load_transforms_dataset(d / "pinhole.json")
    assert ds2.cams.distortion is None
    assert ds2.cams.fx.tolist() == pytest.approx([8 / math.tan(math.radians(30))] * 3 + [8.0], rel=1e-5)


@pytest.mark.parametrize("model,needle", [("OPENCV_FISHEYE", "'OPENCV_FISHEYE' is not supported"),
                                          ("EQUIRECTANGULAR", "'EQUIRECTANGULAR' is not supported")])
def test_unsupported_camera_model_is_named(tmp_path, model, needle):
    d, meta, _ = _ns_dataset(tmp_path)
    meta["camera_model"] = model
    (d / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as e:
        load_transforms_dataset(d)
    assert needle in str(e.value) and str(d / "transforms.json") in str(e.value) and "\n" not in str(e.value)


def test_downscale_uses_images_n_folders_or_resizes_on_load(tmp_path):
    d, meta, rgb = _ns_dataset(tmp_path)
    full = load_transforms_dataset(d)
    # no images_2/: box-filtered on load, intrinsics halved
    half = load_transforms_dataset(d, downscale=2)
    assert half.images.shape == (4, 8, 8, 3) and half.cams.width == 8
    q = full.images.reshape(4, 8, 2, 8, 2, 3).mean((2, 4))
    assert float((half.images - q).abs().max()) < 2.5 / 255
    assert half.cams.fx.tolist() == pytest.approx([10.0] * 4) and half.cams.cx.tolist() == pytest.approx([4.25] * 4)
    assert torch.equal(half.cams.distortion, full.cams.distortion)
    # images_2/ present (nerfstudio's reduced copies): used as they are, marked so we can tell
    (d / "images_2").mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(d / "images_2" / f"frame_{i:05d}.png")
    pre = load_transforms_dataset(d, downscale=2)
    assert pre.images.shape == (4, 8, 8, 3) and pre.files[0].endswith("images_2/frame_00000.png")
    assert float(pre.images[3].mean()) == pytest.approx(30 / 255, abs=1e-6)
    assert pre.cams.fx.tolist() == pytest.approx([10.0] * 4)
    # without w/h in the file the intrinsics refer to the full-size images (2x the images_2 copies)
    m = dict(meta)
    m.pop("w"), m.pop("h")
    (d / "transforms.json").write_text(json.dumps(m))
    assert load_transforms_dataset(d, downscale=2).cams.cx.tolist() == pytest.approx([4.25] * 4)
    with pytest.raises(DataError, match="downscale"):
        load_transforms_dataset(d, downscale=0)


def test_zero_size_image_is_named(tmp_path):
    d, _, _ = _ns_dataset(tmp_path)
    (d / "images" / "frame_00002.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"frame_00002.png: image file is empty"):
        load_transforms_dataset(d)


def test_heldout_evaluation_is_bounded_in_resolution(tmp_path):
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field
    from pnr.fit import evaluate

    cams = orbit_cameras(2, res=40)
    rgba = torch.rand(2, 40, 40, 4)
    rgba[..., 3] = 1
    ds = load_transforms_dataset(write_transforms_dataset(tmp_path / "e", rgba, cams.c2w, math.radians(40.0),
                                                          test_every=0))
    f = Field(FieldConfig.tiny())
    small = evaluate(f, None, ds, num_samples=8, max_res=10)
    assert small["res"] == [10, 10] and len(small["psnr_per_view"]) == 2
    assert evaluate(f, None, ds, num_samples=8, max_res=None)["res"] == [40, 40]
