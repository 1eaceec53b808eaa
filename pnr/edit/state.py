"""Run state of a partial edit (DIR/state.pt) and the edit.json record: what makes `pnr edit` resumable.

The state holds everything the loop needs to continue bit-identically: field, occupancy, optimiser, RNG,
global step, η and its trace, losses, the method's own state (the IDU dataset), the settings and the task
(prompts). A resume is refused when the source, the settings that change the optimisation, or the task differ.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import torch
from torch import Tensor

from pnr.edit.config import RESUME_MAY_CHANGE, EditConfig
from pnr.errors import CheckpointError
from pnr.io import atomic_write_bytes, atomic_write_text

STATE_FILE = "state.pt"
STATE_VERSION = 1


def save_state(out_dir: Path, st: dict) -> None:
    buf = io.BytesIO()
    torch.save({"version": STATE_VERSION, **st}, buf)
    atomic_write_bytes(Path(out_dir) / STATE_FILE, buf.getvalue())


def load_state(out_dir: Path) -> dict | None:
    p = Path(out_dir) / STATE_FILE
    if not p.exists():
        return None
    try:
        st = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{p}: cannot read the partial run ({e}); start over with --restart") from None
    if st.get("version") != STATE_VERSION:
        raise CheckpointError(f"{p}: partial run of state version {st.get('version')!r}; start over with --restart")
    return st


def fingerprint(params: dict[str, Tensor]) -> list[float]:
    """A few numbers identifying θ_src, so a partial run is only resumed against the same source."""
    return [float(params[k].double().sum()) for k in sorted(params)][:8]


def check_resume(st: dict, out_dir: Path, src: dict[str, Tensor], field_cfg: dict, cfg: EditConfig,
                 task: dict | None) -> None:
    """CheckpointError unless `st` continues an edit of this source, with these settings, for this task."""
    where = Path(out_dir) / STATE_FILE
    if st["fingerprint"] != fingerprint(src) or st["field_cfg"] != field_cfg:
        raise CheckpointError(f"{where} is a partial edit of another source or field config; "
                              f"use another --out or --restart")
    started = EditConfig.from_dict(st["config"]).to_dict()  # settings added since then take their defaults
    now = cfg.to_dict()
    unused = () if cfg.method == "idu" else tuple(k for k in now if k.startswith("idu_"))  # no effect here
    diff = sorted(k for k in now if started.get(k) != now[k] and k not in RESUME_MAY_CHANGE + unused)
    if diff:
        raise CheckpointError(f"{where} was started with other settings ({', '.join(diff)}; "
                              f"another --preset?); use the same ones, another --out, or --restart")
    if task is not None and st.get("task") is not None and st["task"] != task:
        keys = [k for k in task if st["task"].get(k) != task[k]]
        was = ", ".join(f"{k} {st['task'].get(k)!r}" for k in keys)
        now_ = ", ".join(f"{k} {task[k]!r}" for k in keys)
        raise CheckpointError(f"{where} is a partial edit for {was}, not {now_}; use another --out or --restart")


def restore(st: dict, field, occ, opt, g) -> tuple[float, list[float], list[float], int, dict, float]:
    """Loads a partial run into field / occupancy / optimiser / RNG -> (η, η trace, losses, step, phase seconds,
    wall seconds of the earlier sessions)."""
    field.load_params_dict(st["params"])
    if occ is not None:
        occ.load_state_dict(st["occupancy"])
    opt.load_state_dict(st["optimizer"])
    g.set_state(st["rng"])
    phase_s = dict(st.get("phase_seconds", {}))
    return (st["eta"], st["eta_trace"], st["losses"], st["step"], phase_s,
            float(st.get("run_seconds", sum(phase_s.values()))))


def snapshot(step: int, eta: float, trace: list[float], losses: list[float], field, occ, opt, g, cfg: EditConfig,
             src: dict[str, Tensor], field_cfg: dict, phase_s: dict, run_s: float, task: dict | None,
             method_state) -> dict:
    """Everything `restore` and `check_resume` need, for save_state."""
    return {"step": step, "eta": eta, "eta_trace": trace, "losses": losses, "params": field.params_dict(),
            "occupancy": occ.state_dict() if occ is not None else None, "optimizer": opt.state_dict(),
            "rng": g.get_state(), "config": cfg.to_dict(), "field_cfg": field_cfg, "fingerprint": fingerprint(src),
            "phase_seconds": phase_s, "run_seconds": run_s, "task": task, "idu": method_state}


def write_record(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=1, default=_json_default))


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, Tensor):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
