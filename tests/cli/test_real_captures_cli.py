"""`pnr fit` on real-capture-like data: clear limits (one-line error naming --unbounded / --scale), automatic
unbounded fields for opaque photos with a background, --downscale and the bounded held-out resolution."""

import json
import math

import torch

from pnr.cli import main
from pnr.data.transforms import write_transforms_dataset
from tests.field.spheres import render_spheres, sphere_cameras
from tests.field.unbounded_scene import make_unbounded_dataset

FAST = ["--steps", "3", "--rays", "64", "--samples", "16", "--field", "tiny", "--quiet", "--device", "cpu",
        "--occupancy-res", "8"]


def test_cameras_far_from_the_box_are_an_error_unless_normalised(tmp_path, capsys):
    cams = sphere_cameras(9, res=12)
    c2w = cams.c2w.clone()
    c2w[:, :3, 3] = c2w[:, :3, 3] * 4 + torch.tensor([40.0, -25.0, 10.0])  # a COLMAP-like frame
    d = write_transforms_dataset(tmp_path / "far", render_spheres(cams), c2w, math.radians(40.0), test_every=3)
    assert main(["fit", str(d), "--out", str(tmp_path / "r1"), *FAST, "--normalize", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "--unbounded" in err and "--scale" in err, err
    assert main(["fit", str(d), "--out", str(tmp_path / "r2"), *FAST]) == 0  # auto normalisation fixes it
    meta = json.loads((tmp_path / "r2" / "checkpoint" / "config.json").read_text())["meta"]
    assert meta["scene_transform"]["source"] == "cameras"
    assert abs(meta["scene_transform"]["scale"] - 1 / 4 / 1.026) < 0.01


def test_opaque_photos_with_a_background_get_an_unbounded_field(tmp_path, capsys):
    d = make_unbounded_dataset(tmp_path / "u", n=9, res=16)
    assert main(["fit", str(d), "--out", str(tmp_path / "r"), *FAST, "--downscale", "2",
                 "--eval-res", "4"]) == 0
    cfg = json.loads((tmp_path / "r" / "checkpoint" / "config.json").read_text())
    assert cfg["field"]["contraction"] == "mipnerf360"
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["heldout_res"] == [4, 4]
    assert main(["fit", str(d), "--out", str(tmp_path / "b"), *FAST, "--bounded"]) == 0
    assert "contraction" not in json.loads((tmp_path / "b" / "checkpoint" / "config.json").read_text())["field"]
    assert "--unbounded" in capsys.readouterr().err  # the forced bounded fit is warned about
