"""Results as JSONL: one record per job, appended in single fsynced writes; shard files; reading with
truncated-line repair (also .jsonl.gz archives); merging the shard files into one."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from .jobs import key_of


def shard_path(out: Path, shard: tuple[int, int] | None) -> Path:
    return out if shard is None else out.with_name(f"{out.stem}.shard{shard[0]}{out.suffix}")


def result_files(out: Path) -> list[Path]:
    """The results file and its shard files (those that exist)."""
    out = Path(out)
    files = [out] if out.is_file() else []
    return files + sorted(p for p in out.parent.glob(f"{out.stem}.shard*{out.suffix}") if p.is_file())


def read_jsonl(path: Path, warn=True) -> list[dict]:
    """Records of one JSONL file (or .jsonl.gz, as archived results are). Lines that do not parse (a process
    killed mid-write leaves a truncated last line) are skipped, with a note on stderr."""
    recs = []
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key_of(rec)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            if warn:
                where = "truncated last line" if i == len(lines) - 1 else f"unreadable line {i + 1}"
                print(f"quality: {path}: skipping a {where}", file=sys.stderr)
            continue
        recs.append(rec)
    return recs


def read_results(out: Path) -> dict[tuple, dict]:
    """Every record of --out and its shard files, deduplicated by key (the first one read wins)."""
    res: dict[tuple, dict] = {}
    for p in result_files(out):
        for r in read_jsonl(p):
            res.setdefault(key_of(r), r)
    return res


class Appender:
    """Appends records to a JSONL file, one os.write + fsync per call; on opening, a partial last line
    (no trailing newline: its writer was killed) is cut off so the next record starts on a fresh line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size > 0:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                print(f"quality: {self.path}: cutting off a partial last line ({len(data) - cut} bytes)",
                      file=sys.stderr)
                with open(self.path, "r+b") as f:
                    f.truncate(cut)
                    f.flush()
                    os.fsync(f.fileno())

    def append(self, records: list[dict]) -> None:
        blob = b"".join(json.dumps(r, default=_json_default, allow_nan=False).encode() + b"\n" for r in records)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            n = os.write(fd, blob)
            if n != len(blob):
                raise OSError(f"short write to {self.path} ({n} of {len(blob)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def clean(v):
    """Floats to 6 significant digits, non-finite ones -> None (JSON has no NaN/inf); nested containers too."""
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v


def cmd_merge(a) -> int:
    from pnr.io import atomic_write_text

    out = Path(a.jsonl)
    files = result_files(out)
    recs = read_results(out)
    atomic_write_text(out, "".join(json.dumps(r, allow_nan=False) + "\n" for r in recs.values()))
    for p in files:
        if p != out:
            p.unlink()
    print(f"quality: merged {len(files)} files into {out} ({len(recs)} records)")
    return 0

