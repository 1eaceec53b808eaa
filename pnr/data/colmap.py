"""COLMAP sparse models -> `transforms.json` (`pnr data colmap SPARSE_DIR IMAGES --out DIR`).

Reads COLMAP's text (cameras.txt, images.txt, points3D.txt) or binary (.bin) model, as written by
`colmap mapper` / `model_converter` (formats: colmap.github.io/format.html). Camera models SIMPLE_PINHOLE,
PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV map onto fl_x/fl_y/cx/cy and OpenCV k1 k2 p1 p2; others (fisheye,
FULL_OPENCV, FOV, THIN_PRISM) are refused by name. Poses: COLMAP stores world-to-camera rotations as
quaternions (qw, qx, qy, qz) and translations in OpenCV camera axes; as nerfstudio's colmap_to_json does, the
camera-to-world matrix is inverted, its y and z camera axes flipped (OpenCV -> OpenGL), and the world turned
from COLMAP's y-down to z-up (rows x, z, y; then z negated: `applied_transform` in the file). Every problem
raises DataError naming the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pnr.errors import DataError

# COLMAP's camera model ids, names and parameter counts (src/colmap/sensor/models.h)
CAMERA_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
MODEL_IDS = {name: (i, n) for i, (name, n) in CAMERA_MODELS.items()}
SUPPORTED = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
# COLMAP world (y down, as its first camera) -> z-up world, as nerfstudio's applied_transform
APPLIED_TRANSFORM = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass
class ColmapImage:
    id: int
    qvec: tuple[float, float, float, float]  # qw, qx, qy, qz (world-to-camera)
    tvec: tuple[float, float, float]
    camera_id: int
    name: str


# ------------------------------------------------------------------------------------------ reading
def _find(sparse: Path, stem: str, required: bool = True) -> Path | None:
    for ext in (".bin", ".txt"):
        if (sparse / f"{stem}{ext}").exists():
            return sparse / f"{stem}{ext}"
    if required:
        raise DataError(f"{sparse / (stem + '.bin')}: COLMAP model file not found (nor {stem}.txt) in {sparse}")
    return None


class _Reader:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.buf = path.read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        self.pos = 0

    def read(self, fmt: str):
        n = struct.calcsize("<" + fmt)
        if self.pos + n > len(self.buf):
            raise DataError(f"{self.path}: truncated binary file (needs {self.pos + n} bytes, has {len(self.buf)})")
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += n
        return v

    def cstring(self) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise DataError(f"{self.path}: truncated binary file (unterminated image name)")
        s = self.buf[self.pos:end].decode("utf-8", "replace")
        self.pos = end + 1
        return s


def _text_lines(path: Path):
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (a binary model should be named .bin)") from None
    for k, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield k, line.split()


def _check_camera(path: Path, where: str, cam: ColmapCamera) -> ColmapCamera:
    if cam.model not in MODEL_IDS:
        raise DataError(f"{path}: {where}unknown camera model {cam.model!r}")
    if cam.model not in SUPPORTED:
        raise DataError(f"{path}: {where}camera model {cam.model} is not supported (supported: {', '.join(SUPPORTED)});"
                        " undistort the images with COLMAP's image_undistorter (it writes PINHOLE cameras)")
    n = MODEL_IDS[cam.model][1]
    if len(cam.params) != n:
        raise DataError(f"{path}: {where}camera model {cam.model} needs {n} parameters, got {len(cam.params)}")
    if cam.width <= 0 or cam.height <= 0:
        raise DataError(f"{path}: {where}camera {cam.id} has zero size ({cam.width}x{cam.height})")
    if not all(math.isfinite(v) for v in cam.params):
        raise DataError(f"{path}: {where}camera {cam.id} has NaN/Inf parameters")
    return cam


def read_cameras(path: Path) -> dict[int, ColmapCamera]:
    cams = {}
    if path.suffix == ".bin":
        r = _Reader(path)
        (n,) = r.read("Q")
        for _ in range(n):
            cid, mid, w, h = r.read("iiQQ")
            if mid not in CAMERA_MODELS:
                raise DataError(f"{path}: camera {cid} has unknown camera model id {mid}")
            name, k = CAMERA_MODELS[mid]
            cams[cid] = _check_camera(path, "", ColmapCamera(cid, name, w, h, r.read("d" * k)))
    else:
        for k, f in _text_lines(path):
            try:
                cam = ColmapCamera(int(f[0]), f[1], int(f[2]), int(f[3]), tuple(float(v) for v in f[4:]))
            except (ValueError, IndexError):
                raise DataError(f"{path}: line {k}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'") from None
            cams[cam.id] = _check_camera(path, f"line {k}: ", cam)
    if not cams:
        raise DataError(f"{path}: no cameras")
    return cams


def read_images(path: Path) -> dict[int, ColmapImage]:
    ims = {}
    if path.suffix == ".bin":
        r = _Reader(path)
        (n,) = r.read("Q")
        for _ in range(n):
            iid, qw, qx, qy, qz, tx, ty, tz, cid = r.read("idddddddi")
            name = r.cstring()
            (npts,) = r.read("Q")
            r.read("ddq" * npts)
            ims[iid] = ColmapImage(iid, (qw, qx, qy, qz), (tx, ty, tz), cid, name)
    else:
        try:
            raw = path.read_text().splitlines()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a text file (a binary model should be named .bin)") from None
        # two lines per image: the pose, then its 2D points (possibly an empty line); comments start with #
        lines = [(k, ln.split()) for k, ln in enumerate(raw, 1) if not ln.lstrip().startswith("#")]
        while lines and not lines[0][1]:
            lines.pop(0)
        for j in range(0, len(lines), 2):
            k, f = lines[j]
            if not f:
                continue
            try:
                im = ColmapImage(int(f[0]), tuple(float(v) for v in f[1:5]), tuple(float(v) for v in f[5:8]),
                                 int(f[8]), " ".join(f[9:]))
                if len(f) < 10:
                    raise ValueError
            except (ValueError, IndexError):
                raise DataError(f"{path}: line {k}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'") from None
            ims[im.id] = im
    if not ims:
        raise DataError(f"{path}: no registered images")
    return ims


def read_points(path: Path) -> np.ndarray:
    """[N, 6] xyz + rgb (0-255) of the sparse points."""
    pts = []
    if path.suffix == ".bin":
        r = _Reader(path)
        (n,) = r.read("Q")
        for _ in range(n):
            _, x, y, z, cr, cg, cb, _err, tl = r.read("QdddBBBdQ")
            r.read("ii" * tl)
            pts.append((x, y, z, cr, cg, cb))
    else:
        for k, f in _text_lines(path):
            try:
                pts.append(tuple(float(v) for v in f[1:7]))
            except (ValueError, IndexError):
                raise DataError(f"{path}: line {k}: expected 'POINT3D_ID X Y Z R G B ERROR TRACK...'") from None
    return np.asarray(pts, dtype=np.float64).reshape(-1, 6)


# ------------------------------------------------------------------------------------------ conversion
def qvec_to_rotmat(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def colmap_c2w(qvec, tvec) -> np.ndarray:
    """OpenGL camera-to-world (z-up world) from COLMAP's world-to-camera quaternion and translation."""
    w2c = np.eye(4)
    w2c[:3, :3] = qvec_to_rotmat(qvec)
    w2c[:3, 3] = tvec
    c2w = np.linalg.inv(w2c)
    c2w[0:3, 1:3] *= -1  # OpenCV camera axes (x right, y down, z forward) -> OpenGL (y up, z back)
    c2w = c2w[[0, 2, 1, 3], :]
    c2w[2, :] *= -1
    return c2w


def camera_intrinsics(cam: ColmapCamera) -> dict:
    """transforms.json keys for one camera (nerfstudio's parse_colmap_camera_params)."""
    p = cam.params
    out = {"w": cam.width, "h": cam.height}
    if cam.model == "SIMPLE_PINHOLE":
        out.update(fl_x=p[0], fl_y=p[0], cx=p[1], cy=p[2], camera_model="PINHOLE")
    elif cam.model == "PINHOLE":
        out.update(fl_x=p[0], fl_y=p[1], cx=p[2], cy=p[3], camera_model="PINHOLE")
    elif cam.model == "SIMPLE_RADIAL":
        out.update(fl_x=p[0], fl_y=p[0], cx=p[1], cy=p[2], k1=p[3], k2=0.0, p1=0.0, p2=0.0, camera_model="OPENCV")
    elif cam.model == "RADIAL":
        out.update(fl_x=p[0], fl_y=p[0], cx=p[1], cy=p[2], k1=p[3], k2=p[4], p1=0.0, p2=0.0, camera_model="OPENCV")
    elif cam.model == "OPENCV":
        out.update(fl_x=p[0], fl_y=p[1], cx=p[2], cy=p[3], k1=p[4], k2=p[5], p1=p[6], p2=p[7], camera_model="OPENCV")
    return out


def _check_image_file(path: Path, images_file: Path) -> None:
    from PIL import Image

    if not path.exists():
        raise DataError(f"{path}: image file not found (listed in {images_file})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes)")
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:
        raise DataError(f"{path}: cannot read image ({e})") from None
    if w == 0 or h == 0:
        raise DataError(f"{path}: image has zero size ({w}x{h})")


def colmap_to_transforms(sparse_dir: str | Path, images_dir: str | Path, out_dir: str | Path,
                         check_images: bool = True) -> dict:
    """Write OUT/transforms.json (nerfstudio layout; file paths relative to OUT) and OUT/sparse_pc.ply when the
    model has points. Returns the JSON written."""
    sparse, images, out = Path(sparse_dir), Path(images_dir), Path(out_dir)
    if not sparse.is_dir():
        raise DataError(f"{sparse}: COLMAP sparse model folder not found")
    if not images.is_dir():
        raise DataError(f"{images}: images folder not found")
    cam_file, im_file = _find(sparse, "cameras"), _find(sparse, "images")
    pts_file = _find(sparse, "points3D", required=False)
    cams, ims = read_cameras(cam_file), read_images(im_file)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out}: cannot create output folder ({e.strerror})") from None
    frames = []
    for iid in sorted(ims, key=lambda i: ims[i].name):
        im = ims[iid]
        if im.camera_id not in cams:
            raise DataError(f"{im_file}: image {im.name!r} uses camera {im.camera_id}, which {cam_file} does not have")
        if not all(math.isfinite(v) for v in (*im.qvec, *im.tvec)):
            raise DataError(f"{im_file}: image {im.name!r} has a NaN/Inf pose")
        if np.linalg.norm(im.qvec) < 1e-8:
            raise DataError(f"{im_file}: image {im.name!r} has a zero quaternion")
        path = images / im.name
        if check_images:
            _check_image_file(path, im_file)
        fr = {"file_path": Path(os.path.relpath(path.resolve(), out.resolve())).as_posix(),
              "transform_matrix": colmap_c2w(im.qvec, im.tvec).tolist(), "colmap_im_id": iid}
        if len(cams) > 1:
            fr.update(camera_intrinsics(cams[im.camera_id]))
        frames.append(fr)
    meta: dict = {}
    if len(cams) == 1:
        meta.update(camera_intrinsics(next(iter(cams.values()))))
    meta["applied_transform"] = APPLIED_TRANSFORM[:3].tolist()
    if pts_file is not None:
        pts = read_points(pts_file)
        if len(pts):
            xyz = (APPLIED_TRANSFORM[:3, :3] @ pts[:, :3].T).T
            _write_ply(out / "sparse_pc.ply", xyz, pts[:, 3:6])
            meta["ply_file_path"] = "sparse_pc.ply"
    meta["frames"] = frames
    from pnr.io import atomic_write_text

    atomic_write_text(out / "transforms.json", json.dumps(meta, indent=1))
    return meta


def _write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    from pnr.io import atomic_write_text

    head = (f"ply\nformat ascii 1.0\nelement vertex {len(xyz)}\nproperty float x\nproperty float y\n"
            "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    body = "".join(f"{p[0]:.6g} {p[1]:.6g} {p[2]:.6g} {int(c[0])} {int(c[1])} {int(c[2])}\n" for p, c in zip(xyz, rgb))
    atomic_write_text(path, head + body)


# ------------------------------------------------------------------------------------------ writing (tests)
def write_colmap_model(sparse_dir: str | Path, cams: list[ColmapCamera], ims: list[ColmapImage],
                       points: np.ndarray | None = None, binary: bool = False) -> Path:
    """Write a COLMAP model (text or binary), as `colmap model_converter` would: for tests and tools."""
    d = Path(sparse_dir)
    d.mkdir(parents=True, exist_ok=True)
    points = np.zeros((0, 6)) if points is None else points
    if binary:
        b = struct.pack("<Q", len(cams))
        for c in cams:
            b += struct.pack("<iiQQ", c.id, MODEL_IDS[c.model][0], c.width, c.height)
            b += struct.pack("<" + "d" * len(c.params), *c.params)
        (d / "cameras.bin").write_bytes(b)
        b = struct.pack("<Q", len(ims))
        for im in ims:
            b += struct.pack("<idddddddi", im.id, *im.qvec, *im.tvec, im.camera_id)
            b += im.name.encode() + b"\0" + struct.pack("<Q", 1) + struct.pack("<ddq", 1.0, 2.0, -1)
        (d / "images.bin").write_bytes(b)
        b = struct.pack("<Q", len(points))
        for k, p in enumerate(points):
            b += struct.pack("<QdddBBBdQ", k + 1, *p[:3], *[int(v) for v in p[3:6]], 0.5, 1) + struct.pack("<ii", 1, 0)
        (d / "points3D.bin").write_bytes(b)
    else:
        (d / "cameras.txt").write_text("# Camera list\n" + "".join(
            f"{c.id} {c.model} {c.width} {c.height} {' '.join(repr(float(v)) for v in c.params)}\n" for c in cams))
        (d / "images.txt").write_text("# Image list with two lines of data per image\n" + "".join(
            f"{im.id} {' '.join(repr(float(v)) for v in (*im.qvec, *im.tvec))} {im.camera_id} {im.name}\n"
            f"1.0 2.0 -1\n" for im in ims))
        (d / "points3D.txt").write_text("# 3D point list\n" + "".join(
            f"{k + 1} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} {int(p[3])} {int(p[4])} {int(p[5])} 0.5 1 0\n"
            for k, p in enumerate(points)))
    return d
