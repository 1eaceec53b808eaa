"""pnr.io: video output reports the file it really wrote (an MP4, or .npz frames without imageio-ffmpeg)."""

import builtins

import numpy as np
import pytest

from pnr.io import save_video


def _frames():
    return np.random.default_rng(0).integers(0, 255, (3, 10, 12, 3), dtype=np.uint8)


def test_save_video_writes_mp4_and_returns_it(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    p = save_video(tmp_path / "t.mp4", _frames(), fps=4)
    assert p == tmp_path / "t.mp4" and p.stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp*"))  # the temp file was renamed, not left behind


def test_save_video_without_ffmpeg_writes_npz_and_says_so(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_ffmpeg(name, *a, **k):
        if name == "imageio_ffmpeg":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ffmpeg)
    frames = _frames()
    with pytest.warns(UserWarning, match="imageio-ffmpeg"):
        p = save_video(tmp_path / "t.mp4", frames, fps=4)
    assert p == tmp_path / "t.npz" and not (tmp_path / "t.mp4").exists()
    with np.load(p) as z:
        assert np.array_equal(z["frames"], frames) and int(z["fps"]) == 4


def test_atomic_writes_get_the_usual_file_modes(tmp_path):
    """mkstemp/mkdtemp create private files (0600/0700); what we finish writing must have the modes a plain
    open()/mkdir() gives under the umask, or other users of a shared results folder cannot read it."""
    import os
    import stat

    from pnr.field.checkpoint import save_checkpoint
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field
    from pnr.io import UMASK, atomic_write_text

    atomic_write_text(tmp_path / "a.json", "{}")
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o666 & ~UMASK
    save_checkpoint(tmp_path / "ck", Field(FieldConfig.tiny(), seed=0))
    assert stat.S_IMODE(os.stat(tmp_path / "ck").st_mode) == 0o777 & ~UMASK
    assert stat.S_IMODE(os.stat(tmp_path / "ck" / "config.json").st_mode) == 0o666 & ~UMASK
