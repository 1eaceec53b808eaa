"""Batch throughput against workers per device: `pnr batch --backend processes` at K = 1, 4, 8, 16 (issue 18/21).

    python bench/batch_throughput.py [--jobs 32] [--k 1,4,8,16] [--preset bench] [--settings '{"edit_steps": 100}']
        [--source pnr/assets/sample/red_mug] [--prior builtin] [--device auto] [--out DIR] [--json out.json]

Writes N jobs (the sample mug, prompts from the built-in vocabulary: colours, patterns, shapes, in turn) and runs
them once per K into a fresh DIR/k<K>/ with backend "processes": on a GPU machine K workers share each GPU
(--workers-per-gpu K), on a CPU-only one K CPU workers (--workers K). An edit is launch-bound, so one worker
leaves a big GPU idle; the table shows where more workers stop paying. Per K: jobs/min and edits/hour over the
whole run (spawn and prior load included), the seconds to the first finished job (start-up) and the median
seconds per edit inside a worker. Failed jobs are counted, not timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # also from a checkout without an installed pnr


def prompts() -> list[str]:
    """Edit phrases of the built-in vocabulary that change the red mug: other colours, patterns, shapes."""
    from pnr.data.domain.grammar import COLORS, HEIGHTS, PATTERNS, PROFILES, WIDTHS, edit_phrase

    out = [edit_phrase({"color": c}) for c in COLORS if c != "red"]
    out += [edit_phrase({"pattern": p}) for p in PATTERNS if p != "plain"]
    out += [edit_phrase({a: v}) for a, vals in (("height", HEIGHTS), ("width", WIDTHS), ("profile", PROFILES))
            for v in vals if v not in ("medium", "round")]
    return out


def write_jobs(path: Path, n: int, source: str, preset: str, settings: dict) -> Path:
    """N jobs on one source, the prompts in turn (seed = the round, so repeated prompts are distinct edits)."""
    ps = prompts()
    with open(path, "w") as f:
        for i in range(n):
            job = {"id": f"b{i:03d}", "source": source, "prompt": ps[i % len(ps)], "preset": preset,
                   "seed": i // len(ps), **settings}
            f.write(json.dumps(job) + "\n")
    return path


def device_name(device: str) -> tuple[str, bool]:
    """(what the jobs run on, on GPU?)."""
    import torch

    from pnr.batch import cores

    if device != "cpu" and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n} x {torch.cuda.get_device_name(0)}, {cores()} cores", True
    return f"CPU ({platform.processor() or platform.machine()}), {cores()} cores", False


def run_k(jobs_path: Path, out: Path, k: int, gpu: bool, prior: str, device: str) -> dict:
    """One batch at K workers per GPU (or K CPU workers); its throughput row."""
    from pnr.batch import read_jobs, run_jobs

    jobs = read_jobs(jobs_path)
    finished: list[float] = []
    t0 = time.time()
    s = run_jobs(jobs, out, prior=prior, backend="processes", device=device, progress=False,
                 workers_per_gpu=k if gpu else 1, workers=None if gpu else k,
                 on_result=lambda rec: finished.append(time.time() - t0))
    recs = [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]
    secs = [r["edit_seconds"] for r in recs if r.get("status") == "done" and r.get("edit_seconds")]
    jpm = s.done / (s.seconds / 60.0) if s.seconds > 0 else 0.0
    return {"k": k, "workers": s.workers, "jobs": len(jobs), "done": s.done, "failed": s.failed,
            "seconds": round(s.seconds, 1), "jobs_per_min": round(jpm, 2), "edits_per_hour": round(jpm * 60, 1),
            "first_job_s": round(finished[0], 1) if finished else None,
            "median_edit_s": round(statistics.median(secs), 2) if secs else None}


def table(rows: list[dict], where: str) -> str:
    head = (f"device: {where}\n\n| K | workers | done | failed | wall s | jobs/min | edits/hour | first job s | "
            "median s/edit |\n|---|---|---|---|---|---|---|---|---|")
    body = [f"| {r['k']} | {r['workers']} | {r['done']}/{r['jobs']} | {r['failed']} | {r['seconds']} | "
            f"{r['jobs_per_min']} | {r['edits_per_hour']} | {r['first_job_s']} | {r['median_edit_s']} |" for r in rows]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=32, help="jobs per K (default 32)")
    p.add_argument("--k", default="1,4,8,16", help="workers per GPU (CPU: workers) to try, comma-separated")
    p.add_argument("--preset", default="bench", help="edit preset of every job (default bench)")
    p.add_argument("--settings", default="{}", help="EditConfig settings of every job, as JSON")
    p.add_argument("--source", default=str(ROOT / "pnr/assets/sample/red_mug"), help="checkpoint to edit")
    p.add_argument("--prior", default="builtin")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default=None, help="output folder (default: a temporary one); DIR/k<K>/ per K")
    p.add_argument("--json", default=None, help="also write the rows here")
    a = p.parse_args(argv)
    ks = [int(x) for x in a.k.split(",") if x.strip()]
    settings = json.loads(a.settings)
    out = Path(a.out or tempfile.mkdtemp(prefix="pnr_batch_bench_"))
    out.mkdir(parents=True, exist_ok=True)
    where, gpu = device_name(a.device)
    jobs_path = write_jobs(out / "jobs.jsonl", a.jobs, a.source, a.preset, settings)
    rows = []
    for k in ks:
        dest = out / f"k{k}"
        if dest.exists() and any(dest.iterdir()):
            raise SystemExit(f"{dest} is not empty: finished jobs would be skipped; give another --out")
        rows.append(run_k(jobs_path, dest, k, gpu, a.prior, a.device))
        print(f"K={k}: {rows[-1]}", flush=True)
    print(table(rows, where))
    if a.json:
        Path(a.json).write_text(json.dumps({"device": where, "preset": a.preset, "settings": settings,
                                            "jobs": a.jobs, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # the guard the processes backend needs: its workers import this file again
    raise SystemExit(main())
