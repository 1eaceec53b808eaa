"""pnr export (issue 18, item 1): marching cubes of the density, vertex colours, piece cleanup, the CLI."""

import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("mcubes")
pytest.importorskip("trimesh")

from pnr.cli import main  # noqa: E402
from pnr.errors import PnrError  # noqa: E402
from pnr.export.mesh import extract_mesh, keep_large_pieces, mesh_from_file, render_mesh, write_mesh  # noqa: E402
from pnr.render.cameras import from_fov, generate_rays, look_at, orbit_positions  # noqa: E402

SAMPLE = "pnr/assets/sample/red_mug"


class Spheres:
    """Field-like analytic scene: density 100 * 2^-(r/R)^2 around each centre (50 exactly at radius R),
    colour red on the +x half of the first sphere and blue elsewhere; records the view directions it is asked."""

    def __init__(self, spheres):
        self.spheres = [(torch.tensor(c), r) for c, r in spheres]
        self.cfg = SimpleNamespace(bound=1.0)
        self.device = torch.device("cpu")
        self.inward = []

    def density(self, x):
        return sum(100.0 * 2.0 ** (-(((x - c).norm(dim=-1) / r) ** 2)) for c, r in self.spheres)

    def query(self, x, d):
        c = self.spheres[0][0]
        self.inward.append((d * torch.nn.functional.normalize(x - c, dim=-1)).sum(-1))
        rgb = torch.where((x[:, :1] > c[0]), torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.2, 0.9]))
        return self.density(x), rgb


CENTRE, RADIUS = (0.1, -0.05, 0.02), 0.6


@pytest.mark.parametrize("smooth", [0, 10])
def test_sphere_mesh_has_the_right_radius_and_colours(smooth):
    f = Spheres([(CENTRE, RADIUS)])
    r = extract_mesh(f, None, res=64, threshold=50.0, progress=False, smooth=smooth)
    v = np.asarray(r.mesh.vertices)
    dist = np.linalg.norm(v - np.array(CENTRE), axis=1)
    assert abs(dist.mean() / RADIUS - 1) < 0.02 and np.abs(dist / RADIUS - 1).max() < 0.02
    assert r.mesh.is_watertight and r.mesh.volume > 0  # closed, normals out
    assert abs(r.mesh.volume / (4 / 3 * np.pi * RADIUS**3) - 1) < 0.03
    assert torch.cat(f.inward).max() < 0  # colours looked at from outside, into the surface
    rgb = np.asarray(r.mesh.visual.vertex_colors)[:, :3].astype(int)
    red = v[:, 0] > CENTRE[0] + 0.02
    blue = v[:, 0] < CENTRE[0] - 0.02
    assert (rgb[red, 0] > 200).all() and (rgb[blue, 2] > 200).all()


def _sphere_silhouettes(cams, c, r):
    o, d = generate_rays(cams)
    oc = o - torch.tensor(c)
    b = (oc * d).sum(-1)
    return b * b - ((oc * oc).sum(-1) - r * r) > 0


def test_rasteriser_matches_the_analytic_sphere_silhouette():
    f = Spheres([(CENTRE, RADIUS)])
    m = extract_mesh(f, None, res=48, threshold=50.0, progress=False).mesh
    cams = from_fov(look_at(orbit_positions(torch.tensor([0.0, 130.0, 250.0]), torch.tensor([10.0, 40.0, -20.0]),
                                            2.5)), 40.0, 64)
    got = render_mesh(m.vertices, m.faces, m.visual.vertex_colors, cams)
    want = _sphere_silhouettes(cams, CENTRE, RADIUS)
    iou = (got["alpha"] & want).sum((1, 2)) / (got["alpha"] | want).sum((1, 2))
    assert iou.min() > 0.97, iou
    assert torch.isfinite(got["depth"][got["alpha"]]).all() and (got["depth"][got["alpha"]] > 1.0).all()
    assert (got["rgb"][~got["alpha"]] == 1.0).all()  # white background


def test_small_pieces_are_dropped():
    big, small, tiny = ((-0.35, 0, 0), 0.45), ((0.55, 0.3, 0), 0.18), ((0.6, -0.5, 0.3), 0.06)
    f = Spheres([big, small, tiny])
    r = extract_mesh(f, None, res=64, threshold=50.0, progress=False, colors=False, min_fraction=0.05)
    assert r.pieces_dropped == 1  # the tiny one
    centre_x = np.asarray(r.mesh.vertices)[:, 0]
    assert (centre_x > 0.3).any() and (centre_x < -0.3).any()
    only = extract_mesh(f, None, res=64, threshold=50.0, progress=False, colors=False, min_fraction=1.0)
    assert only.pieces_dropped == 2 and (np.asarray(only.mesh.vertices)[:, 0] < 0.15).all()
    v, fc = np.asarray(r.mesh.vertices), np.asarray(r.mesh.faces)
    assert keep_large_pieces(v, fc, 0.0)[2] == 0


def test_threshold_outside_the_density_range_says_the_range():
    f = Spheres([(CENTRE, RADIUS)])
    msg = r"--threshold 150 gives no surface: the density of the field at --res 16 ranges over \[0\.\d+, 99\.\d+\]"
    with pytest.raises(PnrError, match=msg):
        extract_mesh(f, None, res=16, threshold=150.0, progress=False)
    with pytest.raises(PnrError, match="ranges over"):
        extract_mesh(f, None, res=16, threshold=0.0, progress=False)


@pytest.fixture(scope="module")
def sample_mesh():
    from pnr.field.checkpoint import load_checkpoint

    field, occ, meta = load_checkpoint(SAMPLE)
    return field, occ, meta, extract_mesh(field, occ, res=96, progress=False)


def test_fitted_object_mesh_silhouettes_match_the_renderers(sample_mesh):
    """The sample (a field fitted to 'a red mug'): mesh silhouettes vs the volume renderer's opacity and vs the
    exact domain renderer, 4 views at 64 px."""
    from pnr.data.domain.grammar import parse_caption
    from pnr.data.domain.render import dataset_cameras, render_specs
    from pnr.render.volume import render

    field, occ, meta, r = sample_mesh
    cams = dataset_cameras(4, 64, seed=7)
    with torch.no_grad():
        vol = render(field, cams, occ, num_samples=128)["opacity"] > 0.5
    exact = render_specs([parse_caption(meta["caption"])], cams, 4)[0][..., 3] > 0.5
    mesh = render_mesh(r.mesh.vertices, r.mesh.faces, None, cams)["alpha"]
    iou = lambda a, b: (a & b).sum((1, 2)) / (a | b).sum((1, 2))  # noqa: E731
    assert iou(mesh, vol).min() >= 0.9, iou(mesh, vol)
    assert iou(mesh, exact).min() >= 0.9, iou(mesh, exact)
    rgb = np.asarray(r.mesh.visual.vertex_colors)[:, :3].mean(0)
    assert rgb[0] > 2.5 * rgb[1] and rgb[0] > 2.5 * rgb[2]  # a red mug


def test_write_and_read_back_every_format(sample_mesh, tmp_path):
    m = sample_mesh[3].mesh
    for suffix in (".glb", ".obj", ".ply"):
        back = mesh_from_file(write_mesh(m, tmp_path / f"mug{suffix}"))
        assert len(back.faces) == len(m.faces), suffix
        np.testing.assert_allclose(np.asarray(back.visual.vertex_colors)[:, :3].mean(0),
                                   np.asarray(m.visual.vertex_colors)[:, :3].mean(0), atol=2.0)
    with pytest.raises(PnrError, match="unknown mesh format"):
        write_mesh(m, tmp_path / "mug.stl")


def test_cli_exports_a_run_folder_mesh_and_points(tmp_path, capsys):
    import trimesh

    shutil.copytree(SAMPLE, tmp_path / "run" / "checkpoint")  # an edit's output folder holds checkpoint/
    rc = main(["export", "mesh", str(tmp_path / "run"), "--out", str(tmp_path / "mug.glb"), "--res", "48", "--quiet",
               "--preview", str(tmp_path / "mug.png"), "--preview-res", "64"])
    assert rc == 0 and "faces ->" in capsys.readouterr().out
    m = mesh_from_file(tmp_path / "mug.glb")
    assert len(m.faces) > 1000 and np.asarray(m.visual.vertex_colors)[:, 0].mean() > 80
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "mug.png").convert("RGB")).astype(int)
    assert img.shape[1] > 2 * img.shape[0]  # 4 views side by side, cropped to the object
    red = (img[..., 0] > img[..., 1] + 40)
    assert 0.1 < red.mean() < 0.9
    rc = main(["export", "points", SAMPLE, "--out", str(tmp_path / "mug.ply"), "--res", "48", "--points", "3000",
               "--quiet"])
    assert rc == 0
    pc = trimesh.load(tmp_path / "mug.ply")
    assert len(pc.vertices) == 3000 and np.abs(pc.vertices).max() < 1.0
    assert pc.colors[:, 0].mean() > 2 * pc.colors[:, 1].mean()


@pytest.mark.parametrize("argv,msg", [
    (["mesh", SAMPLE, "--threshold", "5000"], r"--threshold 5000 gives no surface: the density of .* at --res 24 "
                                              r"ranges over \[0, [0-9.]+\]"),
    (["mesh", SAMPLE, "--threshold", "-1"], "ranges over"),
    (["mesh", SAMPLE, "--threshold", "nan"], "--threshold nan: must be a finite number"),
    (["mesh", SAMPLE, "--out", "x.stl"], "unknown mesh format '.stl'"),
    (["points", SAMPLE, "--out", "x.glb"], "point clouds are written as .ply"),
    (["mesh", SAMPLE, "--min-piece", "2"], r"--min-piece 2.0: must be in \[0, 1\]"),
    (["mesh", "nowhere"], "nowhere: checkpoint not found"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, msg):
    args = ["export", *argv, "--res", "24", "--quiet"]
    if "--out" not in argv:
        args += ["--out", str(tmp_path / "m.glb")]
    else:
        i = args.index("--out")
        args[i + 1] = str(tmp_path / args[i + 1])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("pnr export: error: ")
    assert re.search(msg, err), err
