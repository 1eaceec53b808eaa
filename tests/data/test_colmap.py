"""COLMAP import: a generated model written as text and as binary imports back to the same poses and
intrinsics; bad models give one-line errors naming the file."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pnr.cli import main
from pnr.data.colmap import ColmapCamera, ColmapImage, colmap_to_transforms, write_colmap_model
from pnr.data.transforms import load_transforms_dataset
from tests.field.spheres import sphere_cameras


def _rotmat_to_qvec(r: np.ndarray) -> tuple[float, float, float, float]:
    """(qw, qx, qy, qz) of a rotation matrix (Shepperd's method), written independently of pnr.data.colmap."""
    t = np.trace(r)
    if t > 0:
        s = 2 * np.sqrt(1 + t)
        q = (s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * np.sqrt(1 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0] * 4
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i], q[1 + j], q[1 + k] = s / 4, (r[j, i] + r[i, j]) / s, (r[k, i] + r[i, k]) / s
    return tuple(float(v) for v in q)


def _to_colmap(c2w_gl: np.ndarray):
    """OpenGL c2w in the z-up world -> COLMAP world-to-camera (qvec, tvec): the world is y-down (x, -z, y) and the
    camera axes are OpenCV's."""
    w = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])  # z-up -> COLMAP world
    c2w = w @ c2w_gl
    c2w[:3, 1:3] *= -1
    w2c = np.linalg.inv(c2w)
    return _rotmat_to_qvec(w2c[:3, :3]), tuple(float(v) for v in w2c[:3, 3])


CAMS = [ColmapCamera(1, "OPENCV", 24, 18, (21.0, 22.5, 12.25, 8.75, -0.12, 0.03, 0.001, -0.002)),
        ColmapCamera(2, "SIMPLE_RADIAL", 24, 18, (19.0, 11.5, 9.5, -0.05)),
        ColmapCamera(3, "PINHOLE", 48, 36, (40.0, 41.0, 24.0, 18.0))]  # calibrated at 2x the image size


def _model(tmp_path, binary: bool, cams=CAMS, n=6):
    cam = sphere_cameras(n)
    want = cam.c2w.double().numpy()
    ims = []
    (tmp_path / "images").mkdir(exist_ok=True)
    for i in range(n):
        q, t = _to_colmap(want[i])
        ims.append(ColmapImage(i + 1, q, t, cams[i % len(cams)].id, f"img_{i:03d}.png"))
        Image.fromarray(np.full((18, 24, 3), 20 * i, np.uint8)).save(tmp_path / "images" / f"img_{i:03d}.png")
    pts = np.array([[0.1, 0.2, 0.3, 255, 0, 0], [-1.0, 0.5, 2.0, 0, 255, 10]])
    sparse = write_colmap_model(tmp_path / ("bin" if binary else "txt"), cams, ims, pts, binary=binary)
    return sparse, want


@pytest.mark.parametrize("binary", [False, True])
def test_text_and_binary_models_round_trip(tmp_path, binary):
    sparse, want = _model(tmp_path, binary)
    meta = colmap_to_transforms(sparse, tmp_path / "images", tmp_path / "out")
    assert meta["frames"][0]["camera_model"] == "OPENCV" and meta["frames"][1]["camera_model"] == "OPENCV"
    ply = (tmp_path / "out" / "sparse_pc.ply").read_text().splitlines()
    assert ply[2] == "element vertex 2" and ply[-2:] == ["0.1 0.3 -0.2 255 0 0", "-1 2 -0.5 0 255 10"]  # z-up world
    ds = load_transforms_dataset(tmp_path / "out", test_every=0)
    assert torch.allclose(ds.cams.c2w.double(), torch.from_numpy(want), atol=1e-5)
    # intrinsics per camera model; camera 3 was calibrated at 48x36 and is rescaled to the 24x18 image
    assert ds.cams.fx.tolist() == pytest.approx([21.0, 19.0, 20.0] * 2)
    assert ds.cams.fy.tolist() == pytest.approx([22.5, 19.0, 20.5] * 2)
    assert ds.cams.cx.tolist() == pytest.approx([12.25, 11.5, 12.0] * 2)
    assert ds.cams.cy.tolist() == pytest.approx([8.75, 9.5, 9.0] * 2)
    assert ds.cams.distortion[0].tolist() == pytest.approx([-0.12, 0.03, 0.001, -0.002, 0.0])
    assert ds.cams.distortion[1].tolist() == pytest.approx([-0.05, 0.0, 0.0, 0.0, 0.0])
    assert ds.cams.distortion[2].abs().max() == 0
    assert float(ds.images[3].mean()) == pytest.approx(60 / 255, abs=1e-6)


def test_one_camera_gives_global_intrinsics_and_the_cli_writes_it(tmp_path, capsys):
    sparse, want = _model(tmp_path, True, cams=[ColmapCamera(7, "SIMPLE_PINHOLE", 24, 18, (20.0, 12.0, 9.0))])
    assert main(["data", "colmap", str(sparse), str(tmp_path / "images"), "--out", str(tmp_path / "o")]) == 0
    assert "6 images (PINHOLE)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "o" / "transforms.json").read_text())
    assert meta["camera_model"] == "PINHOLE" and meta["fl_x"] == 20.0 and "fl_x" not in meta["frames"][0]
    ds = load_transforms_dataset(tmp_path / "o")
    assert ds.cams.distortion is None and torch.allclose(ds.cams.c2w.double(), torch.from_numpy(want), atol=1e-5)


@pytest.mark.parametrize("case,needle,names", [
    ("missing_image", "image file not found", "img_002.png"),
    ("missing_cameras", "COLMAP model file not found", "cameras.bin"),
    ("unsupported_model", "camera model OPENCV_FISHEYE is not supported", "cameras.txt"),
    ("nan_pose", "NaN/Inf pose", "images.txt"),
    ("zero_size_image", "image file is empty", "img_004.png"),
    ("missing_images_dir", "images folder not found", "nope"),
])
def test_bad_models_give_one_line_errors_naming_the_file(tmp_path, capsys, case, needle, names):
    sparse, _ = _model(tmp_path, False)
    images = tmp_path / "images"
    if case == "missing_image":
        (images / "img_002.png").unlink()
    elif case == "missing_cameras":
        (sparse / "cameras.txt").unlink()
    elif case == "unsupported_model":
        text = (sparse / "cameras.txt").read_text().replace("1 OPENCV ", "1 OPENCV_FISHEYE ")
        (sparse / "cameras.txt").write_text(text)
    elif case == "nan_pose":
        lines = (sparse / "images.txt").read_text().splitlines()
        f = lines[3].split()
        f[5] = "nan"
        lines[3] = " ".join(f)
        (sparse / "images.txt").write_text("\n".join(lines) + "\n")
    elif case == "zero_size_image":
        (images / "img_004.png").write_bytes(b"")
    elif case == "missing_images_dir":
        images = tmp_path / "nope"
    assert main(["data", "colmap", str(sparse), str(images), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and needle in err and names in err, err
