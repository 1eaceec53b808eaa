"""Small file helpers: atomic writes (nothing half-written survives a kill), PNG/MP4 output, contact sheets."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


UMASK = _umask()  # mkstemp/mkdtemp create 0600/0700; finished files get the modes a plain open() would give


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _atomic(Path(path), lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def check_writable(out_dir: str | Path) -> None:
    """Create `out_dir` (and parents) and check it can be written, before any slow work (PnrError if not)."""
    from pnr.errors import PnrError

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PnrError(f"{out_dir}: cannot create output folder ({e.strerror})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PnrError(f"{out_dir}: output folder is not writable")


def to_uint8(img) -> np.ndarray:
    """float [0,1] tensor/array or uint8 -> uint8 HxWxC numpy."""
    if hasattr(img, "detach"):
        img = img.detach().float().cpu().numpy() if img.dtype.is_floating_point else img.detach().cpu().numpy()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return img


def save_png(path: str | Path, img) -> None:
    """Atomic PNG write of an HxW, HxWx3 or HxWx4 image (float in [0,1] or uint8)."""
    import io as _io

    buf = _io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def contact_sheet(frames, cols: int | None = None, pad: int = 2, bg: int = 255) -> np.ndarray:
    """Tile frames [N, H, W, C] into one uint8 image, `cols` per row (default ~sqrt(N))."""
    frames = [to_uint8(f) for f in frames]
    n, (h, w, c) = len(frames), frames[0].shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), bg, np.uint8)
    for k, f in enumerate(frames):
        r, q = divmod(k, cols)
        sheet[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = f
    return sheet


def save_video(path: str | Path, frames, fps: int = 24) -> Path:
    """MP4 (H.264 via the ffmpeg inside imageio-ffmpeg), written to a temp file then renamed. Without
    imageio-ffmpeg (a minimal install), the frames go to PATH.npz instead, with a warning.
    Returns the path actually written."""
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        import warnings

        arr = np.stack([to_uint8(f)[..., :3] for f in frames])
        buf = io.BytesIO()
        np.savez_compressed(buf, frames=arr, fps=fps)
        atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
        warnings.warn(f"imageio-ffmpeg is not installed: wrote the frames of {path.name} to {path.with_suffix('.npz').name}")
        return path.with_suffix(".npz")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    frames = [to_uint8(f)[..., :3] for f in frames]
    # H.264 wants even sizes
    h, w = frames[0].shape[:2]
    frames = [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") for f in frames]
    with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                            ffmpeg_log_level="error") as wr:
        for f in frames:
            wr.append_data(f)
    os.replace(tmp, path)
    return path
