"""NeRF-synthetic / nerfstudio `transforms.json` datasets: writing (here) and reading (loader below).

Layout written: DIR/transforms.json with {"camera_angle_x", "frames": [{"file_path": "train/r_000",
"transform_matrix": 4x4, "split": ...}]} and RGBA PNGs DIR/<file_path>.png. Also writes the
per-split files transforms_train.json / transforms_test.json that NeRF-synthetic loaders expect.
"""

from __future__ import annotations

import json
import os
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
