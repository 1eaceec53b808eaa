"""Checkpoints: DIR/model.safetensors (field parameters + occupancy grid), DIR/config.json (format
version, field config, occupancy settings, metadata, sha256 of the tensors), optional
DIR/extra.safetensors (optimizer/RNG state for --resume).

A checkpoint is written into a fresh sibling folder and swapped in with renames, so an interrupted
save never damages the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from pnr.errors import CheckpointError
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.io import UMASK, atomic_write_bytes, atomic_write_text
from pnr.render.occupancy import OccupancyGrid
from pnr.render.occupancy_contracted import make_occupancy

FORMAT_VERSION = 1
OCC_KEY = "occupancy.density"


def _write_dir(tmp: Path, field: Field, occupancy: OccupancyGrid | None, meta: dict,
               extra_tensors: dict[str, Tensor] | None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in field.params_dict().items()}
    if occupancy is not None:
        tensors[OCC_KEY] = occupancy.density.detach().cpu().contiguous()
    blob = st_save(tensors)
    atomic_write_bytes(tmp / "model.safetensors", blob)
    cfg = {"format_version": FORMAT_VERSION, "field": field.cfg.to_dict(),
           "occupancy": None if occupancy is None else {"resolution": occupancy.resolution, "bound": occupancy.bound},
           "meta": meta, "model_sha256": hashlib.sha256(blob).hexdigest()}
    if extra_tensors:
        eblob = st_save({k: v.detach().cpu().contiguous() for k, v in extra_tensors.items()})
        atomic_write_bytes(tmp / "extra.safetensors", eblob)
        cfg["extra_sha256"] = hashlib.sha256(eblob).hexdigest()
    atomic_write_text(tmp / "config.json", json.dumps(cfg, indent=1))


def save_checkpoint(dir: str | Path, field: Field, occupancy: OccupancyGrid | None = None, meta: dict | None = None,
                    extra_tensors: dict[str, Tensor] | None = None) -> Path:
    """Write a checkpoint folder atomically (old one kept until the new one is complete)."""
    dir = Path(dir)
    try:
        dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dir.name}.new-", dir=dir.parent))
    except OSError as e:
        raise CheckpointError(f"{dir}: cannot write checkpoint ({e.strerror})") from None
    try:
        _write_dir(tmp, field, occupancy, dict(meta or {}), extra_tensors)
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp made it 0700
        old = None
        if dir.exists():
            old = dir.parent / f".{dir.name}.old-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(dir, old)
        os.replace(tmp, dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dir


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept the checkpoint folder, its config.json, or a run folder holding checkpoint/."""
    p = Path(path)
    if p.is_file() and p.name in ("config.json", "model.safetensors"):
        p = p.parent
    if (p / "config.json").exists():
        return p
    if (p / "checkpoint" / "config.json").exists():
        return p / "checkpoint"
    # a save interrupted between its two renames leaves only the .old copy: recover it
    olds = sorted(p.parent.glob(f".{p.name}.old-*")) if p.parent.exists() else []
    if not p.exists() and olds and (olds[-1] / "config.json").exists():
        os.replace(olds[-1], p)
        return p
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    raise CheckpointError(f"{p}: not a checkpoint (no config.json here or in {p / 'checkpoint'})")


def _read_config(d: Path) -> dict:
    try:
        cfg = json.loads((d / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{d / 'config.json'}: corrupt JSON ({e.msg} at line {e.lineno})") from None
    except OSError as e:
        raise CheckpointError(f"{d / 'config.json'}: cannot read ({e.strerror})") from None
    if not isinstance(cfg, dict) or "format_version" not in cfg:
        raise CheckpointError(f"{d / 'config.json'}: no 'format_version' (not a pnr checkpoint)")
    if cfg["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{d / 'config.json'}: format_version {cfg['format_version']!r} is not supported "
                              f"(this pnr reads version {FORMAT_VERSION})")
    return cfg


def _read_tensors(path: Path, sha: str | None) -> dict[str, Tensor]:
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror})") from None
    if sha is not None and hashlib.sha256(blob).hexdigest() != sha:
        raise CheckpointError(f"{path}: corrupt (checksum does not match config.json)")
    try:
        return st_load(blob)
    except Exception as e:
        raise CheckpointError(f"{path}: corrupt safetensors file ({e})") from None


def load_checkpoint(dir: str | Path, device="cpu") -> tuple[Field, OccupancyGrid | None, dict]:
    """-> (field, occupancy grid or None, meta). CheckpointError on anything missing/corrupt/incompatible."""
    d = resolve_checkpoint_dir(dir)
    cfg = _read_config(d)
    try:
        fcfg = FieldConfig.from_dict(cfg["field"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{d / 'config.json'}: bad field config ({e})") from None
    tensors = _read_tensors(d / "model.safetensors", cfg.get("model_sha256"))
    occ_t = tensors.pop(OCC_KEY, None)
    field = Field(fcfg, seed=0, device=device)
    try:
        field.load_params_dict(tensors, strict=True)
    except CheckpointError as e:
        raise CheckpointError(f"{d / 'model.safetensors'}: does not match its config.json ({e})") from None
    occ = None
    if cfg.get("occupancy") is not None:
        if occ_t is None:
            raise CheckpointError(f"{d / 'model.safetensors'}: occupancy grid missing")
        oc = cfg["occupancy"]
        occ = make_occupancy(int(oc["resolution"]), float(oc["bound"]), fcfg.contraction, device=device)
        try:
            occ.load_state_dict({"density": occ_t, "resolution": oc["resolution"], "bound": oc["bound"]})
        except ValueError as e:
            raise CheckpointError(f"{d / 'model.safetensors'}: {e}") from None
    return field, occ, dict(cfg.get("meta") or {})


def load_extra_tensors(dir: str | Path) -> dict[str, Tensor]:
    """Optimizer/RNG state saved with `extra_tensors` ({} when none was saved)."""
    d = resolve_checkpoint_dir(dir)
    cfg = _read_config(d)
    if not (d / "extra.safetensors").exists():
        return {}
    return _read_tensors(d / "extra.safetensors", cfg.get("extra_sha256"))
