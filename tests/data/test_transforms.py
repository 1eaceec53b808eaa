"""transforms.json loading: round trip with the writer, nerfstudio layout, and every bad input."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from pnr.data.transforms import load_transforms_dataset, write_transforms_dataset
from pnr.errors import DataError
from pnr.render.cameras import orbit_cameras


def _dataset(tmp_path, n=4, res=8):
    cams = orbit_cameras(n, res=res)
    g = torch.Generator().manual_seed(0)
    rgba = torch.rand(n, res, res, 4, generator=g)
    rgba[..., 3] = (rgba[..., 3] > 0.5).float()
    d = write_transforms_dataset(tmp_path / "ds", rgba, cams.c2w, math.radians(40.0), test_every=4)
    return d, cams, rgba


def test_round_trip_nerf_synthetic_layout(tmp_path):
    d, cams, rgba = _dataset(tmp_path)
    ds = load_transforms_dataset(d)
    assert ds.images.shape == (4, 8, 8, 3) and ds.alpha.shape == (4, 8, 8)
    assert ds.splits["train"].tolist() == [0, 1, 2] and ds.splits["test"].tolist() == [3]
    q = (rgba * 255 + 0.5).floor() / 255  # what the uint8 PNG holds
    want = q[..., :3] * q[..., 3:] + (1 - q[..., 3:])  # composited on white
    assert torch.allclose(ds.images, want, atol=1e-5)
    assert torch.allclose(ds.cams.c2w, cams.c2w, atol=1e-6)
    assert torch.allclose(ds.cams.fx, cams.fx, atol=1e-4)
    assert load_transforms_dataset(d, split="test").images.shape[0] == 1
    # a black background composites differently
    black = load_transforms_dataset(d, background=(0.0, 0.0, 0.0))
    assert torch.allclose(black.images, q[..., :3] * q[..., 3:], atol=1e-5)


def test_single_nerfstudio_file_with_pixel_intrinsics(tmp_path):
    d, cams, _ = _dataset(tmp_path)
    meta = json.loads((d / "transforms.json").read_text())
    del meta["camera_angle_x"]
    meta.update(fl_x=30.0, fl_y=31.0, cx=4.5, cy=3.5, w=8, h=8)
    for fr in meta["frames"]:
        fr["file_path"] += ".png"
        fr.pop("split")
    (d / "ns.json").write_text(json.dumps(meta))
    ds = load_transforms_dataset(d / "ns.json", test_every=2)
    assert ds.cams.fx[0].item() == 30.0 and ds.cams.fy[0].item() == 31.0 and ds.cams.cx[0].item() == 4.5
    assert ds.splits["test"].tolist() == [1, 3]


def _edit(d, fn, name="transforms.json"):
    meta = json.loads((d / name).read_text())
    fn(meta)
    (d / name).write_text(json.dumps(meta))
    return d / name


@pytest.mark.parametrize("case,needle", [
    ("missing_path", "not found"),
    ("empty_dir", "no transforms.json"),
    ("malformed_json", "malformed JSON"),
    ("no_frames_key", "missing 'frames'"),
    ("empty_frames", "empty"),
    ("missing_image", "image file not found"),
    ("mixed_sizes", "mixed image sizes"),
    ("nan_pose", "NaN/Inf"),
    ("inf_pose", "NaN/Inf"),
    ("bad_matrix", "4x4"),
    ("no_intrinsics", "intrinsics"),
    ("corrupt_image", "cannot read image"),
])
def test_bad_inputs_raise_data_error_naming_the_file(tmp_path, case, needle):
    d, _, _ = _dataset(tmp_path)
    target = d / "transforms.json"
    if case == "missing_path":
        target = tmp_path / "nope"
    elif case == "empty_dir":
        target = tmp_path / "empty"
        target.mkdir()
    elif case == "malformed_json":
        target.write_text('{"frames": [')
    elif case == "no_frames_key":
        _edit(d, lambda m: m.pop("frames"))
    elif case == "empty_frames":
        _edit(d, lambda m: m.update(frames=[]))
    elif case == "missing_image":
        (d / "train" / "r_001.png").unlink()
        needle_file = "r_001.png"
    elif case == "mixed_sizes":
        Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(d / "train" / "r_002.png")
    elif case == "nan_pose":
        _edit(d, lambda m: m["frames"][1]["transform_matrix"][0].__setitem__(3, float("nan")))
    elif case == "inf_pose":
        _edit(d, lambda m: m["frames"][2]["transform_matrix"][1].__setitem__(1, float("inf")))
    elif case == "bad_matrix":
        _edit(d, lambda m: m["frames"][0].update(transform_matrix=[[1, 0], [0, 1]]))
    elif case == "no_intrinsics":
        _edit(d, lambda m: m.pop("camera_angle_x"))
    elif case == "corrupt_image":
        (d / "train" / "r_000.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as e:
        load_transforms_dataset(target)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    if case == "missing_image":
        assert needle_file in msg
    elif case in ("mixed_sizes", "corrupt_image"):
        assert "train/r_00" in msg
    else:
        assert str(target) in msg


def test_missing_split_is_an_error(tmp_path):
    d, _, _ = _dataset(tmp_path)
    with pytest.raises(DataError, match="no frames in split 'val'"):
        load_transforms_dataset(d / "transforms.json", split="val")


def test_skip_missing_drops_frames_without_an_image_and_says_so(tmp_path, capsys):
    """A capture whose transforms.json lists more frames than it ships photos (instant-ngp's fox: 67 for 50):
    strict by default (the error names the flag), `skip_missing` keeps the frames that have their image."""
    d, cams, _ = _dataset(tmp_path)
    (d / "train" / "r_001.png").unlink()
    with pytest.raises(DataError, match="skip-missing-images"):
        load_transforms_dataset(d)
    ds = load_transforms_dataset(d, skip_missing=True)
    assert len(ds) == 3
    assert "1 of 4 frames" in capsys.readouterr().err
    kept = torch.cat([ds.cams.c2w[ds.splits[s]] for s in ("train", "test") if s in ds.splits])
    for want in (cams.c2w[0], cams.c2w[2], cams.c2w[3]):  # frame 1 is the one dropped
        assert any(torch.allclose(want, k, atol=1e-6) for k in kept)
    for f in d.rglob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match="none of the 4 frames"):
        load_transforms_dataset(d, skip_missing=True)
