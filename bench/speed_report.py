"""The headline speed figures, measured on the machine this runs on, in one file: bench/results/speed.json.

    python bench/speed_report.py [--only cpu_quick_edit_s,paper_edit_s,...] [--merge] [--readme]
                                 [--peer PEER.json] [--out bench/results/speed.json]
    python bench/speed_report.py --merge-from GPU_SPEED.json [--readme]   # figures measured elsewhere, into --out

Figures (each measured in this run, in a subprocess, never copied from elsewhere):
  cpu_quick_edit_s     `pnr edit pnr/assets/sample/red_mug "in blue" --preset quick --device cpu`: the edit time the
                       edit writes into its edit.json (seconds.total: η search + edit + revise, outputs excluded;
                       whole-process wall time recorded beside it)
  paper_edit_s         the same edit with `--preset paper --device cuda` (needs CUDA)
  peak_mem_gb_builtin  torch.cuda.max_memory_allocated (GiB) of that paper edit's process (edit.json records no
                       memory, so the edit runs through this script's --child-peak wrapper, in the same process)
  mvdream_edit_min     bench/full_size_step.py --priors mvdream: its projected full edit with IPG, minutes (CUDA)
  peak_mem_gb_mvdream  torch.cuda.max_memory_allocated (GiB) of that full_size_step.py process (anchors + MVDream steps)
  peak_mem_gb_mvdream_low_memory   the same with --low-memory (pnr edit --low-memory's step: checkpointed render
                       chunks and VAE encoder), the path for a 24 GB GPU (issue 21); its projected minutes beside it
  peer_fit_ratio       bench/peer_fit.py (CUDA, nerfacc 0.5.x): training seconds to 30 dB held-out PSNR of the nerfacc
                       instant-ngp recipe / of `pnr fit`, same dataset and device; > 1 = pnr is faster (goal 1.5).
                       --peer PEER.json reads a peer_fit.py result (e.g. from the GPU machine) instead of running it
Every figure is {"value", "unit", "device", "date" (UTC ISO), "command", "load" (os.getloadavg() when this run started),
"why" (null, or why value is null: what this machine cannot measure), ...details}. --merge keeps the figures of the
existing file that this run did not measure (so a CPU run and a GPU run fill one file), each with its own
device/date. --readme rewrites README.md between the `<!-- speed:begin -->` and `<!-- speed:end -->` markers from
the file. --only limits the run to a subset of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "speed.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- speed:begin -->", "<!-- speed:end -->"
SAMPLE, PROMPT = "pnr/assets/sample/red_mug", "in blue"

# figure -> (unit, what it is, for the README)
FIGURES = {
    "paper_edit_s": ("s", "paper-preset edit of the sample, edit time, CUDA"),
    "peer_fit_ratio": ("x", "time to 30 dB fitting, nerfacc peer / pnr, same device"),
    "cpu_quick_edit_s": ("s", "quick-preset edit of the sample, edit time, CPU"),
    "peak_mem_gb_builtin": ("GiB", "peak CUDA memory of the paper edit, built-in prior"),
    "peak_mem_gb_mvdream": ("GiB", "peak CUDA memory of full_size_step.py, MVDream"),
    "mvdream_edit_min": ("min", "projected full edit with IPG, MVDream, full_size_step.py"),
    "peak_mem_gb_mvdream_low_memory": ("GiB", "the same with --low-memory (the path for a 24 GB GPU)"),
}


# ---------------------------------------------------------------- records, merge, README (no torch needed)

def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def figure(name: str, value, *, device: str, date: str, command: str | None, load=None, why: str | None = None,
           **extra) -> dict:
    """One figure's record; value None needs a why."""
    if value is None and not why:
        raise ValueError(f"{name}: a null figure needs a why")
    rec = {"value": value, "unit": FIGURES[name][0], "device": device, "date": date, "command": command,
           "load": list(load) if load is not None else None, "why": None if value is not None else why}
    rec.update(extra)
    return rec


def measured(rec: dict | None) -> bool:
    return isinstance(rec, dict) and rec.get("value") is not None


def merge(old: dict, new: dict, requested) -> dict:
    """Figures of this run (new) over the existing file (old): a figure this run measured replaces the old one; one it
    did not measure (null here) keeps the old record if that has a value, or if this run was not asked for it."""
    out = {}
    for name in FIGURES:
        o, n = old.get(name), new.get(name)
        if measured(n):
            out[name] = n
        elif o is not None and (measured(o) or name not in requested):
            out[name] = o
        elif n is not None:
            out[name] = n
    for name, rec in old.items():  # keep anything else the file holds (e.g. a figure added later)
        out.setdefault(name, rec)
    return out


def fmt_value(rec: dict) -> str:
    v, unit = rec["value"], rec.get("unit", "")
    if isinstance(v, float):
        v = f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"
    return f"**{v}** {unit}".strip() if unit != "x" else f"**{v}×**"


def readme_block(data: dict) -> str:
    """The markdown table between the markers (markers included)."""
    lines = [BEGIN,
             "Measured by `python bench/speed_report.py` (file: `bench/results/speed.json`; each row names the machine "
             "and UTC date of the run that measured it):",
             "",
             "| figure | value | machine | date (UTC) | command |",
             "|---|---|---|---|---|"]
    for name, (_, what) in FIGURES.items():
        rec = data.get(name)
        if not isinstance(rec, dict):
            lines.append(f"| `{name}` ({what}) | not measured yet (no record) | – | – | – |")
            continue
        dev = rec.get("device") or "–"
        date = rec.get("date") or "–"
        if measured(rec):
            load = rec.get("load")
            if load:
                dev = f"{dev}, load {load[0]:.2f}"
            cmd = rec.get("command")
            lines.append(f"| `{name}` ({what}) | {fmt_value(rec)} | {dev} | {date} | "
                         f"{'`' + cmd.replace('|', '/') + '`' if cmd else '–'} |")
        else:
            lines.append(f"| `{name}` ({what}) | not measured yet ({rec.get('why') or 'no reason recorded'}) | "
                         f"{dev} | {date} | – |")
    lines.append(END)
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """text with the span BEGIN..END replaced by block (which carries the markers); the markers must be there."""
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    return text[:i] + block + text[j + len(END):]


def load_json(path: Path) -> dict:
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- measuring

def cpu_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def rel(p) -> str:
    """A path as written in the recorded command: relative to the repo when inside it."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def py() -> str:
    """This interpreter as the recorded commands name it (.venv/bin/python, not the file its link points to)."""
    exe = Path(sys.executable).absolute()
    return str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else sys.executable


def run_cmd(cmd: list[str], log: Path) -> tuple[int, float]:
    """Runs cmd in the repo root, output to log (tail printed on failure); returns (rc, wall seconds)."""
    print("$", shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"  failed (rc {rc}); last lines of {log}:\n" + "".join(open(log).readlines()[-15:]), flush=True)
    return rc, wall


def tail(log: Path, n: int = 3) -> str:
    try:
        return " / ".join(x.strip() for x in open(log).readlines()[-n:])[:300]
    except OSError:
        return ""


def edit_cmd(preset: str, device: str, out_dir: Path) -> list[str]:
    return ["-m", "pnr.cli", "edit", SAMPLE, PROMPT, "--preset", preset, "--device", device, "--out", str(out_dir),
            "--quiet"]


def measure_cpu_quick(ctx: dict) -> dict:
    out_dir = Path(tempfile.mkdtemp(prefix="pnr-speed-quick-"))
    cmd = [py(), *edit_cmd("quick", "cpu", out_dir)]
    base = dict(device=ctx["cpu"], date=now_utc(), command=shlex.join(cmd), load=os.getloadavg())
    rc, wall = run_cmd(cmd, out_dir.parent / (out_dir.name + ".log"))
    rec_path = out_dir / "edit.json"
    if rc != 0 or not rec_path.exists():
        why = f"edit failed (rc {rc}): {tail(out_dir.parent / (out_dir.name + '.log'))}"
        return {"cpu_quick_edit_s": figure("cpu_quick_edit_s", None, why=why, **base)}
    er = json.loads(rec_path.read_text())
    sec = er.get("seconds", {})
    if "total" in sec:
        value, source = sec["total"], "edit.json seconds.total (η search + edit + revise; outputs excluded)"
    else:
        value, source = wall, "wall time of the subprocess (edit.json records no edit time)"
    return {"cpu_quick_edit_s": figure("cpu_quick_edit_s", round(value, 2), **base, source=source, wall_s=round(wall, 2),
                                       phase_s={k: round(v, 2) for k, v in sec.items()},
                                       load_at_end=list(os.getloadavg()), torch=er.get("torch"), eta=er.get("eta"))}


def child_peak(peak_file: str, argv: list[str]) -> int:
    """--child-peak: runs `python ARGV` (a script path or -m module) in this process, then writes
    torch.cuda.max_memory_allocated to peak_file (used for figures whose own record has no memory)."""
    rc = 0
    if argv and argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        target, runner = argv[1], runpy.run_module
    else:
        sys.argv = list(argv)
        target, runner = argv[0], runpy.run_path
        sys.path.insert(0, str(Path(target).resolve().parent))
    try:
        runner(target, run_name="__main__")
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    import torch

    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    Path(peak_file).write_text(json.dumps({"max_memory_allocated": peak, "rc": rc,
                                           "device": torch.cuda.get_device_name() if peak is not None else None}))
    return rc


def peak_wrapper(peak_file: Path) -> list[str]:
    return [py(), rel(Path(__file__)), "--child-peak", str(peak_file), "--"]


def measure_paper(ctx: dict) -> dict:
    out = {}
    if not ctx["cuda"]:
        for k in ("paper_edit_s", "peak_mem_gb_builtin"):
            out[k] = figure(k, None, why="needs CUDA", device=ctx["cpu"], date=now_utc(), command=None)
        return out
    out_dir = Path(tempfile.mkdtemp(prefix="pnr-speed-paper-"))
    peak_file = out_dir.parent / (out_dir.name + "-peak.json")
    log = out_dir.parent / (out_dir.name + ".log")
    cmd = [*peak_wrapper(peak_file), *edit_cmd("paper", "cuda", out_dir)]
    base = dict(device=ctx["gpu"], date=now_utc(), command=shlex.join(cmd), load=os.getloadavg())
    rc, wall = run_cmd(cmd, log)
    rec_path = out_dir / "edit.json"
    if rc != 0 or not rec_path.exists():
        why = f"edit failed (rc {rc}): {tail(log)}"
        return {k: figure(k, None, why=why, **base) for k in ("paper_edit_s", "peak_mem_gb_builtin")}
    er = json.loads(rec_path.read_text())
    sec = er.get("seconds", {})
    value, source = ((sec["total"], "edit.json seconds.total (η search + edit + revise; outputs excluded)")
                     if "total" in sec else (wall, "wall time of the subprocess (edit.json records no edit time)"))
    common = dict(wall_s=round(wall, 2), torch=er.get("torch"), render_graphs=er.get("config", {}).get("render_graphs"))
    out["paper_edit_s"] = figure("paper_edit_s", round(value, 2), **base, source=source,
                                 phase_s={k: round(v, 2) for k, v in sec.items()}, **common)
    peak = json.loads(peak_file.read_text()).get("max_memory_allocated") if peak_file.exists() else None
    out["peak_mem_gb_builtin"] = (
        figure("peak_mem_gb_builtin", round(peak / 2**30, 3), **base,
               source="torch.cuda.max_memory_allocated of the edit's process, GiB (edit.json records no memory)",
               **common) if peak is not None else
        figure("peak_mem_gb_builtin", None, why="the edit's process reported no CUDA memory", **base))
    return out


def measure_mvdream(ctx: dict, low_memory: bool = False) -> dict:
    """bench/full_size_step.py --priors mvdream in a subprocess -> mvdream_edit_min + peak_mem_gb_mvdream, or with
    `low_memory` (its --low-memory) -> peak_mem_gb_mvdream_low_memory (its projected minutes as a detail)."""
    keys = ("peak_mem_gb_mvdream_low_memory",) if low_memory else ("mvdream_edit_min", "peak_mem_gb_mvdream")
    if not ctx["cuda"]:
        return {k: figure(k, None, why="needs CUDA", device=ctx["cpu"], date=now_utc(), command=None) for k in keys}
    tmp = Path(tempfile.mkdtemp(prefix="pnr-speed-mvdream-"))
    res_file, peak_file, log = tmp / "full_size_step.json", tmp / "peak.json", tmp / "log.txt"
    cmd = [*peak_wrapper(peak_file), "bench/full_size_step.py", "--priors", "mvdream", "--json", str(res_file),
           *(["--low-memory"] if low_memory else [])]
    base = dict(device=ctx["gpu"], date=now_utc(), command=shlex.join(cmd), load=os.getloadavg())
    rc, wall = run_cmd(cmd, log)
    if rc != 0 or not res_file.exists():
        return {k: figure(k, None, why=f"full_size_step.py failed (rc {rc}): {tail(log)}", **base) for k in keys}
    r = json.loads(res_file.read_text())
    out = {}
    proj = r.get("projection_min", {}).get("mvdream")
    steps = r.get("steps", {})
    peak = json.loads(peak_file.read_text()).get("max_memory_allocated") if peak_file.exists() else None
    if low_memory:
        out["peak_mem_gb_mvdream_low_memory"] = (
            figure("peak_mem_gb_mvdream_low_memory", round(peak / 2**30, 3), **base,
                   edit_min=round(proj["ipg"], 2) if proj else None, wall_s=round(wall, 1),
                   source="torch.cuda.max_memory_allocated of the full_size_step.py --low-memory process, GiB")
            if peak is not None else
            figure("peak_mem_gb_mvdream_low_memory", None, why="full_size_step.py reported no CUDA memory", **base))
        return out
    out["mvdream_edit_min"] = (
        figure("mvdream_edit_min", round(proj["ipg"], 2), **base, no_ipg_min=round(proj["no_ipg"], 2),
               source="full_size_step.py projection_min.mvdream.ipg: 800 steps at 64 + 750 at 256 + 1000 revise "
                      "at 256 with IPG, random full-size weights, fp16",
               step_s={k: v.get("total") for k, v in steps.items() if isinstance(v, dict)}, wall_s=round(wall, 1))
        if proj else
        figure("mvdream_edit_min", None, why=f"no projection (steps: {json.dumps(steps)[:200]})", **base))
    out["peak_mem_gb_mvdream"] = (
        figure("peak_mem_gb_mvdream", round(peak / 2**30, 3), **base,
               source="torch.cuda.max_memory_allocated of the full_size_step.py process (SD anchors + MVDream steps "
                      "at 64 and 256 px with the hash-grid field), GiB") if peak is not None else
        figure("peak_mem_gb_mvdream", None, why="full_size_step.py reported no CUDA memory", **base))
    return out


def measure_peer(ctx: dict, peer_path: str | None) -> dict:
    """bench/peer_fit.py run here (or its JSON from --peer): the peer's time to the target PSNR over pnr's."""
    name = "peer_fit_ratio"
    dev = ctx["gpu"] if ctx["cuda"] else ctx["cpu"]
    if peer_path:
        cmd, wall, rc = None, None, 0
        res_file = Path(peer_path)
    else:
        if not ctx["cuda"]:
            return {name: figure(name, None, why="needs CUDA (nerfacc)", device=dev, date=now_utc(), command=None)}
        tmp = Path(tempfile.mkdtemp(prefix="pnr-speed-peer-"))
        res_file = tmp / "peer.json"
        cmd = [py(), "bench/peer_fit.py", "--device", "cuda", "--json", str(res_file)]
        rc, wall = run_cmd(cmd, tmp / "log.txt")
    r = json.loads(res_file.read_text()) if res_file.exists() else {}
    # both sides of a peer_fit.py result ran in one process on one device: a file from another machine keeps its own
    base = dict(device=r.get("device") or dev, date=r.get("date") or now_utc(),
                command=shlex.join(cmd) if cmd else r.get("command"), load=r.get("load") if peer_path else os.getloadavg())
    detail = {k: r.get(k) for k in ("target_db", "res", "views", "field", "budgets_s")}
    for side in ("pnr", "peer"):
        s = r.get(side) or {}
        detail[side] = {k: s.get(k) for k in ("trace", "time_to_target_s", "psnr_at_30s", "rays_per_s", "error",
                                              "nerfacc")}
    if rc != 0 or r.get("speedup_to_target") is None:
        why = (r.get("peer") or {}).get("error") or f"peer_fit.py: rc {rc}, no time to target for both sides"
        return {name: figure(name, None, why=why[:300], **base, **detail)}
    return {name: figure(name, r["speedup_to_target"], **base, **detail, peer_file=rel(res_file) if peer_path else None,
                         wall_s=wall, source="peer seconds to target_db / pnr seconds, bench/peer_fit.py")}


def cannot_measure(ctx: dict, name: str, peer: str | None) -> str | None:
    """Why this machine cannot measure the figure, or None if it can."""
    if name in ("paper_edit_s", "peak_mem_gb_builtin", "mvdream_edit_min", "peak_mem_gb_mvdream",
                "peak_mem_gb_mvdream_low_memory") and not ctx["cuda"]:
        return "needs CUDA"
    if name == "peer_fit_ratio" and not peer and not ctx["cuda"]:
        return "needs CUDA (nerfacc)"
    return None


def context() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"cuda": cuda, "gpu": torch.cuda.get_device_name() if cuda else None, "cpu": cpu_name(),
            "torch": torch.__version__}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-peak"]:
        if len(argv) < 4 or argv[2] != "--":
            sys.exit("usage: speed_report.py --child-peak PEAK.json -- SCRIPT|-m MODULE ARGS...")
        return child_peak(argv[1], argv[3:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated figures to measure (default: all)")
    ap.add_argument("--merge", action="store_true", help="keep the existing file's figures this run does not measure")
    ap.add_argument("--readme", action="store_true", help="rewrite README.md's speed block from the file")
    ap.add_argument("--readme-only", action="store_true", help="measure nothing; only rewrite the README block")
    ap.add_argument("--peer", default=None, help="a bench/peer_fit.py result (JSON) for peer_fit_ratio, instead of "
                    "running it")
    ap.add_argument("--merge-from", default=None, metavar="FILE",
                    help="measure nothing; take the figures FILE measured (a speed.json written by this script "
                    "elsewhere, e.g. on the GPU machine) into --out, each with its own device and date")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.merge_from:
        if not Path(a.merge_from).is_file():
            ap.error(f"--merge-from {a.merge_from}: no such file")
        other = load_json(Path(a.merge_from))
        taken = [k for k in FIGURES if measured(other.get(k))]
        write_json(out, merge(load_json(out), {k: other[k] for k in taken}, set(taken)))
        print(f"took {', '.join(taken) or 'nothing'} from {a.merge_from} into {out}")
    elif not a.readme_only:
        want = [w.strip() for w in a.only.split(",") if w.strip()] or list(FIGURES)
        bad = [w for w in want if w not in FIGURES]
        if bad:
            ap.error(f"unknown figures {bad}; known: {', '.join(FIGURES)}")
        ctx = context()
        print(f"machine: {ctx['gpu'] or 'no CUDA'}; CPU {ctx['cpu']}; torch {ctx['torch']}; load {os.getloadavg()}",
              flush=True)
        new: dict = {}
        if "cpu_quick_edit_s" in want:
            new.update(measure_cpu_quick(ctx))
        if {"paper_edit_s", "peak_mem_gb_builtin"} & set(want):
            new.update({k: v for k, v in measure_paper(ctx).items() if k in want})
        if {"mvdream_edit_min", "peak_mem_gb_mvdream"} & set(want):
            new.update({k: v for k, v in measure_mvdream(ctx).items() if k in want})
        if "peak_mem_gb_mvdream_low_memory" in want:
            new.update(measure_mvdream(ctx, low_memory=True))
        if "peer_fit_ratio" in want:
            new.update(measure_peer(ctx, a.peer))
        for k in FIGURES:  # figures not asked for: null, unless --merge keeps the old ones
            new.setdefault(k, figure(k, None, why=cannot_measure(ctx, k, a.peer) or "not in --only",
                                     device=ctx["gpu"] or ctx["cpu"], date=now_utc(), command=None))
        cmdline = shlex.join([py(), rel(Path(__file__)), *argv])
        for k in FIGURES:
            if k in want:
                new[k]["report_command"] = cmdline
            if new[k]["command"] is None:  # a null figure: the run that found it could not be measured here
                new[k]["command"] = cmdline
        data = merge(load_json(out), new, set(want)) if a.merge else new
        write_json(out, data)
        for k in FIGURES:
            r = data[k]
            print(f"{k}: {r['value']} {r['unit']}" + (f"  ({r['why']})" if r["why"] else f"  [{r['device']}, {r['date']}]"))
        print(f"wrote {out}")
    if a.readme or a.readme_only:
        text = README.read_text()
        new_text = replace_block(text, readme_block(load_json(out)))
        if new_text != text:
            README.write_text(new_text)
        print(f"README block {'updated' if new_text != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
