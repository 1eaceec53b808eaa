"""Checkpoints round-trip bit-exactly; broken ones give CheckpointError; a failed save keeps the old one."""

import json

import pytest
import torch

from pnr.errors import CheckpointError
from pnr.field import checkpoint as ck
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.render.occupancy import OccupancyGrid


@pytest.fixture()
def saved(tmp_path):
    f = Field(FieldConfig.tiny(), seed=7)
    with torch.no_grad():
        f.encoding_tables.normal_()
    occ = OccupancyGrid(8, 1.0)
    occ.update(f, 0)
    d = ck.save_checkpoint(tmp_path / "ck", f, occ, {"step": 12, "note": "x"})
    return d, f, occ


def test_round_trip_is_bit_exact(saved):
    d, f, occ = saved
    g, occ2, meta = ck.load_checkpoint(d)
    assert meta == {"step": 12, "note": "x"} and g.cfg == f.cfg
    a, b = f.params_dict(), g.params_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(occ.density, occ2.density) and torch.equal(occ.occupied, occ2.occupied)


def test_accepts_run_folder_and_config_path(saved, tmp_path):
    d, f, occ = saved
    run = tmp_path / "run"
    ck.save_checkpoint(run / "checkpoint", f, occ, {"step": 1})
    assert ck.load_checkpoint(run)[2]["step"] == 1
    assert ck.load_checkpoint(d / "config.json")[2]["step"] == 12


@pytest.mark.parametrize("damage,needle", [
    (lambda d: (d / "model.safetensors").write_bytes(b"garbage"), "corrupt"),
    (lambda d: (d / "config.json").write_text("{not json"), "corrupt JSON"),
    (lambda d: (d / "model.safetensors").unlink(), "cannot read"),
    (lambda d: _cfg(d, lambda c: c.update(format_version=99)), "format_version 99"),
    (lambda d: _cfg(d, lambda c: c.pop("format_version")), "format_version"),
    (lambda d: _cfg(d, lambda c: c["field"].update(levels=3)), "does not match"),
    (lambda d: _cfg(d, lambda c: c["field"].update(bogus=1)), "unknown keys"),
])
def test_broken_checkpoints_raise(saved, damage, needle):
    d = saved[0]
    damage(d)
    with pytest.raises(CheckpointError, match=needle):
        ck.load_checkpoint(d)


def _cfg(d, fn):
    c = json.loads((d / "config.json").read_text())
    fn(c)
    (d / "config.json").write_text(json.dumps(c))


def test_flipped_byte_is_detected(saved):
    d = saved[0]
    blob = bytearray((d / "model.safetensors").read_bytes())
    blob[-5] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum"):
        ck.load_checkpoint(d)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        ck.load_checkpoint(tmp_path / "empty")


def test_failed_save_keeps_previous_checkpoint(saved, monkeypatch):
    d, f, occ = saved

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "atomic_write_text", boom)
    with torch.no_grad():
        f.encoding_tables.zero_()
    with pytest.raises(OSError):
        ck.save_checkpoint(d, f, occ, {"step": 99})
    monkeypatch.undo()
    g, _, meta = ck.load_checkpoint(d)
    assert meta["step"] == 12 and g.encoding_tables.abs().sum() > 0
    assert [p.name for p in d.parent.iterdir()] == ["ck"]  # no temp folders left behind
