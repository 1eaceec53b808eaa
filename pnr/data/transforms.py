"""NeRF-synthetic / nerfstudio `transforms.json` datasets: writing (here) and reading (loader below).

Layout written: DIR/transforms.json with {"camera_angle_x", "frames": [{"file_path": "train/r_000",
"transform_matrix": 4x4, "split": ...}]} and RGBA PNGs DIR/<file_path>.png. Also writes the
per-split files transforms_train.json / transforms_test.json that NeRF-synthetic loaders expect.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pnr.io import atomic_write_text, save_png


def write_transforms_dataset(out_dir: str | Path, rgba: Tensor, c2w: Tensor, camera_angle_x: float,
                             test_every: int = 8, extra: dict | None = None) -> Path:
    """rgba: [N, H, W, 4] float in [0, 1] (or uint8); c2w: [N, 4, 4]. Every `test_every`-th view is held out."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rgba.dtype != torch.uint8:
        rgba = (rgba.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    frames = {"train": [], "test": []}
    for i in range(rgba.shape[0]):
        split = "test" if test_every and i % test_every == test_every - 1 else "train"
        rel = f"{split}/r_{i:03d}"
        (out / split).mkdir(exist_ok=True)
        save_png(out / f"{rel}.png", rgba[i].cpu().numpy())
        frames[split].append({"file_path": f"./{rel}", "transform_matrix": c2w[i].tolist(), "split": split})
    meta = {"camera_angle_x": float(camera_angle_x), **(extra or {})}
    for split in ("train", "test"):
        atomic_write_text(out / f"transforms_{split}.json", json.dumps({**meta, "frames": frames[split]}, indent=1))
    all_frames = frames["train"] + frames["test"]
    atomic_write_text(out / "transforms.json", json.dumps({**meta, "frames": all_frames}, indent=1))
    return out


# ----------------------------------------------------------------------------------------------
# Loading. Every problem with the input raises DataError naming the file and what is wrong.

import dataclasses  # noqa: E402
import math  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from pnr.errors import DataError  # noqa: E402
from pnr.render.cameras import Cameras  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG")


@dataclass
class TransformsDataset:
    images: Tensor  # [N, H, W, 3] float in [0, 1], alpha-composited onto `background`
    alpha: Tensor  # [N, H, W]
    cams: Cameras  # N cameras
    splits: dict[str, Tensor]  # split name -> frame indices (int64)
    files: list[str]
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    caption: str | None = None  # a top-level "caption" string (`pnr data object` writes one); fit keeps it
    scene: dict = dataclasses.field(default_factory=dict)  # instant-ngp's aabb_scale / scale / offset, if given

    def __len__(self) -> int:
        return self.images.shape[0]

    def with_cameras(self, cams: Cameras) -> "TransformsDataset":
        """The same images with other cameras (e.g. moved into the normalised scene frame)."""
        return dataclasses.replace(self, cams=cams)

    def subset(self, split: str) -> "TransformsDataset":
        idx = self.splits.get(split)
        if idx is None or idx.numel() == 0:
            raise DataError(f"dataset has no '{split}' views (splits: {sorted(k for k, v in self.splits.items() if len(v))})")
        return TransformsDataset(self.images[idx], self.alpha[idx], self.cams[idx], {split: torch.arange(len(idx))},
                                 [self.files[i] for i in idx.tolist()], self.background, self.caption, self.scene)


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object at the top level, got {type(meta).__name__}")
    frames = meta.get("frames")
    if frames is None:
        raise DataError(f"{path}: missing 'frames' list")
    if not isinstance(frames, list):
        raise DataError(f"{path}: 'frames' must be a list, got {type(frames).__name__}")
    return meta


def _number(path: Path, where: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DataError(f"{path}: {where} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise DataError(f"{path}: {where} is {v} (NaN/Inf)")
    return float(v)


def _pose(path: Path, i: int, frame) -> Tensor:
    if not isinstance(frame, dict):
        raise DataError(f"{path}: frame {i} must be an object, got {type(frame).__name__}")
    m = frame.get("transform_matrix")
    if m is None:
        raise DataError(f"{path}: frame {i} has no 'transform_matrix'")
    ok = isinstance(m, list) and len(m) in (3, 4) and all(isinstance(r, list) and len(r) == 4 for r in m)
    if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for r in m for v in r):
        raise DataError(f"{path}: frame {i} 'transform_matrix' must be a 4x4 (or 3x4) list of numbers")
    t = torch.tensor(m, dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise DataError(f"{path}: frame {i} ({frame.get('file_path')}) 'transform_matrix' contains NaN/Inf")
    if t.shape[0] == 3:
        t = torch.cat([t, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    return t.float()


def _image_path(path: Path, i: int, frame: dict) -> Path:
    fp = frame.get("file_path")
    if not isinstance(fp, str) or not fp:
        raise DataError(f"{path}: frame {i} has no 'file_path' string")
    p = (path.parent / fp)
    if p.suffix in IMAGE_SUFFIXES:
        return p
    for s in IMAGE_SUFFIXES[:3]:  # NeRF-synthetic writes file_path without the extension
        if p.with_name(p.name + s).exists():
            return p.with_name(p.name + s)
    return p.with_name(p.name + ".png")


def _load_image(img_path: Path, json_path: Path, downscale: int = 1) -> tuple[np.ndarray, tuple[int, int]]:
    """-> (pixels [H, W, 3|4] uint8, the file's own (w, h)). downscale > 1 reduces by box filtering."""
    from PIL import Image

    if not img_path.exists():
        raise DataError(f"{img_path}: image file not found (referenced by {json_path}; --skip-missing-images drops "
                        f"such frames)")
    if img_path.stat().st_size == 0:
        raise DataError(f"{img_path}: image file is empty (0 bytes)")
    try:
        with Image.open(img_path) as im:
            size = im.size
            if size[0] == 0 or size[1] == 0:
                raise DataError(f"{img_path}: image has zero size ({size[0]}x{size[1]})")
            im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("RGB")
            if downscale > 1:
                w, h = max(1, size[0] // downscale), max(1, size[1] // downscale)
                im = im.resize((w, h), Image.BOX)
            arr = np.asarray(im)
    except DataError:
        raise
    except Exception as e:  # PIL raises many kinds for broken files
        raise DataError(f"{img_path}: cannot read image ({e})") from None
    return arr, size


def _drop_missing(path: Path, entries: list, downscale: int) -> list:
    """Entries whose image (or its images_N copy) exists; a warning says how many were dropped."""
    import sys

    def has_image(e) -> bool:
        ip = _image_path(e[1], e[3], e[4])
        return ip.exists() or _downscaled_path(ip, downscale) is not None

    kept = [e for e in entries if has_image(e)]
    if not kept:
        raise DataError(f"{path}: none of the {len(entries)} frames has its image file "
                        f"(first: {_image_path(entries[0][1], entries[0][3], entries[0][4])})")
    if len(kept) < len(entries):
        first = next(e for e in entries if not has_image(e))
        print(f"pnr: warning: {len(entries) - len(kept)} of {len(entries)} frames in {path} have no image file "
              f"(first: {_image_path(first[1], first[3], first[4])}); fitting the other {len(kept)}", file=sys.stderr)
    return kept


def _downscaled_path(p: Path, n: int) -> Path | None:
    """nerfstudio's reduced copies: images/x.png -> images_2/x.png (None when that file is absent)."""
    if n <= 1:
        return None
    q = p.parent.with_name(f"{p.parent.name}_{n}") / p.name
    return q if q.exists() else None


# camera models whose parameters are pinhole + OpenCV k1 k2 p1 p2 (k3): what the ray generator undistorts
SUPPORTED_CAMERA_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "camera_model",
                  "camera_angle_x", "camera_angle_y")


def _distortion(path: Path, meta: dict, where: str) -> tuple[float, float, float, float, float]:
    """(k1, k2, p1, p2, k3) from nerfstudio / instant-ngp keys; unsupported camera models are an error."""
    model = meta.get("camera_model")
    if model is not None:
        if not isinstance(model, str) or model.upper() not in SUPPORTED_CAMERA_MODELS:
            raise DataError(f"{path}: {where}camera_model {model!r} is not supported (supported: "
                            f"{', '.join(SUPPORTED_CAMERA_MODELS)}); undistort the images first, e.g. with "
                            "COLMAP's image_undistorter, and use PINHOLE")
    if "k4" in meta and _number(path, f"{where}'k4'", meta["k4"]) != 0:
        raise DataError(f"{path}: {where}'k4' is set: fisheye/thin-prism distortion is not supported "
                        f"(supported: {', '.join(SUPPORTED_CAMERA_MODELS)})")
    k = [_number(path, f"{where}'{n}'", meta.get(n, 0.0)) for n in ("k1", "k2", "p1", "p2", "k3")]
    if model is not None and model.upper() in ("PINHOLE", "SIMPLE_PINHOLE") and any(k):
        raise DataError(f"{path}: {where}camera_model {model} has distortion coefficients {k}")
    return tuple(k)


def _intrinsics(path: Path, meta: dict, w: int, h: int, file_wh: tuple[float, float] | None = None,
                where: str = "") -> tuple[float, float, float, float]:
    """fx, fy, cx, cy for an image of w x h (scaled if fl_x/w/h describe another resolution). `file_wh`: the
    full-resolution size the intrinsics refer to when the file gives no w/h (default: w x h)."""
    fw, fh = file_wh or (w, h)
    if "fl_x" in meta or "fl_y" in meta:
        fx = _number(path, f"{where}'fl_x'", meta.get("fl_x", meta.get("fl_y")))
        fy = _number(path, f"{where}'fl_y'", meta.get("fl_y", fx))
        w0 = _number(path, f"{where}'w'", meta.get("w", fw))
        h0 = _number(path, f"{where}'h'", meta.get("h", fh))
        if w0 <= 0 or h0 <= 0:
            raise DataError(f"{path}: {where}image size w={w0:g} h={h0:g} must be positive")
        if fx <= 0 or fy <= 0:
            raise DataError(f"{path}: {where}focal lengths fl_x={fx:g} fl_y={fy:g} must be positive")
        cx = _number(path, f"{where}'cx'", meta.get("cx", w0 / 2))
        cy = _number(path, f"{where}'cy'", meta.get("cy", h0 / 2))
        sx, sy = w / w0, h / h0
        return fx * sx, fy * sy, cx * sx, cy * sy
    if "camera_angle_x" in meta:
        ax = _number(path, "'camera_angle_x'", meta["camera_angle_x"])
        if not 0 < ax < math.pi:
            raise DataError(f"{path}: 'camera_angle_x' = {ax} is not an angle in (0, pi) radians")
        f = 0.5 * w / math.tan(0.5 * ax)
        fy = f
        if "camera_angle_y" in meta:
            ay = _number(path, "'camera_angle_y'", meta["camera_angle_y"])
            if not 0 < ay < math.pi:
                raise DataError(f"{path}: 'camera_angle_y' = {ay} is not an angle in (0, pi) radians")
            fy = 0.5 * h / math.tan(0.5 * ay)
        return f, fy, w / 2, h / 2
    raise DataError(f"{path}: no camera intrinsics (need 'camera_angle_x' or 'fl_x'/'fl_y')")


def _find_sources(path: Path) -> list[tuple[str | None, Path]]:
    """[(split or None, json file)]: per-split NeRF-synthetic files, or one transforms.json."""
    if not path.exists():
        raise DataError(f"{path}: dataset not found (no such file or directory)")
    if path.is_file():
        stem = path.stem
        split = stem[len("transforms_"):] if stem.startswith("transforms_") else None
        return [(split, path)]
    per_split = [(s, path / f"transforms_{s}.json") for s in ("train", "val", "test")]
    per_split = [(s, p) for s, p in per_split if p.exists()]
    if per_split:
        return per_split
    if (path / "transforms.json").exists():
        return [(None, path / "transforms.json")]
    raise DataError(f"{path}: no transforms.json or transforms_train.json in this folder")


def load_transforms_dataset(path: str | Path, split: str | None = None,
                            background: tuple[float, float, float] = (1.0, 1.0, 1.0),
                            test_every: int = 8, downscale: int = 1,
                            skip_missing: bool = False) -> TransformsDataset:
    """Read a NeRF-synthetic folder (transforms_{train,val,test}.json), a folder with one nerfstudio-style
    transforms.json (frames may carry "split"; otherwise every `test_every`-th frame is held out as
    "test"), or a path to one such JSON file. RGBA images are composited onto `background`.
    `split` keeps only that split's frames.

    Intrinsics: fl_x/fl_y/cx/cy/w/h (and k1 k2 k3 p1 p2, camera_model) at the top level or per frame (a
    frame's own keys win), else camera_angle_x (and camera_angle_y); scaled to the image actually loaded when
    w/h describe another size. `downscale` N > 1 loads images reduced N times: from nerfstudio's
    `images_N/` folder next to each image's folder when present, else box-filtered on load.
    `skip_missing` drops frames whose image file does not exist, with a warning on stderr (instant-ngp's fox
    capture lists 67 frames for its 50 photos); otherwise a missing image is an error naming it."""
    path = Path(path)
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise DataError(f"downscale must be a positive integer, got {downscale!r}")
    entries = []  # (split, json_path, meta, frame_index, frame)
    for src_split, jp in _find_sources(path):
        meta = _read_json(jp)
        for i, fr in enumerate(meta["frames"]):
            s = src_split
            if s is None:
                s = fr.get("split") if isinstance(fr, dict) and isinstance(fr.get("split"), str) else None
            entries.append([s, jp, meta, i, fr])
    if not entries:
        raise DataError(f"{path}: dataset is empty (no frames)")
    if skip_missing:
        entries = _drop_missing(path, entries, downscale)
    if all(e[0] is None for e in entries):
        for k, e in enumerate(entries):
            e[0] = "test" if test_every and k % test_every == test_every - 1 and len(entries) > 1 else "train"
    else:
        for e in entries:
            e[0] = e[0] or "train"
    if split is not None:
        entries = [e for e in entries if e[0] == split]
        if not entries:
            raise DataError(f"{path}: no frames in split '{split}'")
    imgs, alphas, poses, intr, dists, files, splits = [], [], [], [], [], [], {}
    first = None
    bg = np.asarray(background, dtype=np.float32)
    for k, (s, jp, meta, i, fr) in enumerate(entries):
        pose = _pose(jp, i, fr)
        ip = _image_path(jp, i, fr)
        small = _downscaled_path(ip, downscale)
        if small is not None:  # a reduced copy: the intrinsics refer to N times its size
            arr, _ = _load_image(small, jp)
            file_wh = (arr.shape[1] * downscale, arr.shape[0] * downscale)
            ip = small
        else:
            arr, file_wh = _load_image(ip, jp, downscale)
        h, w = arr.shape[:2]
        if first is None:
            first = (w, h, ip)
        elif (w, h) != first[:2]:
            raise DataError(f"{ip}: image is {w}x{h} but {first[2]} is {first[0]}x{first[1]} (mixed image sizes)")
        x = arr.astype(np.float32) / 255.0
        a = x[..., 3] if x.shape[-1] == 4 else np.ones(x.shape[:2], np.float32)
        rgb = x[..., :3] * a[..., None] + bg * (1 - a[..., None])
        imgs.append(torch.from_numpy(np.ascontiguousarray(rgb)))
        alphas.append(torch.from_numpy(np.ascontiguousarray(a)))
        poses.append(pose)
        f_meta = {**meta, **{key: fr[key] for key in INTRINSIC_KEYS if key in fr}}
        where = f"frame {i} " if any(key in fr for key in INTRINSIC_KEYS) else ""
        intr.append(_intrinsics(jp, f_meta, w, h, file_wh, where))
        dists.append(_distortion(jp, f_meta, where))
        files.append(str(ip))
        splits.setdefault(s, []).append(k)
    it = torch.tensor(intr, dtype=torch.float32)
    w, h = first[:2]
    captions = {m.get("caption") for _, _, m, _, _ in entries if isinstance(m.get("caption"), str) and m["caption"].strip()}
    caption = captions.pop().strip() if len(captions) == 1 else None  # none, or files that disagree: no caption
    dist = torch.tensor(dists, dtype=torch.float32)
    cams = Cameras(torch.stack(poses), it[:, 0], it[:, 1], it[:, 2], it[:, 3], w, h,
                   dist if bool((dist != 0).any()) else None)
    return TransformsDataset(torch.stack(imgs), torch.stack(alphas), cams,
                             {s: torch.tensor(v, dtype=torch.int64) for s, v in splits.items()}, files,
                             tuple(float(c) for c in background), caption, _scene_keys(entries[0][1], entries[0][2]))


def _scene_keys(path: Path, meta: dict) -> dict:
    """instant-ngp's scene keys: aabb_scale (scene extent in unit cubes), scale and offset (its unit cube)."""
    out = {}
    if "aabb_scale" in meta:
        out["aabb_scale"] = _number(path, "'aabb_scale'", meta["aabb_scale"])
        if out["aabb_scale"] <= 0:
            raise DataError(f"{path}: 'aabb_scale' = {out['aabb_scale']:g} must be positive")
    if "scale" in meta:
        out["scale"] = _number(path, "'scale'", meta["scale"])
        if out["scale"] <= 0:
            raise DataError(f"{path}: 'scale' = {out['scale']:g} must be positive")
    if "offset" in meta:
        off = meta["offset"]
        if not (isinstance(off, list) and len(off) == 3):
            raise DataError(f"{path}: 'offset' must be a list of 3 numbers, got {off!r}")
        out["offset"] = [_number(path, "'offset'", v) for v in off]
    return out
