"""Δ_min of the built-in prior from Alg. 2's η search alone, on benchmark edits of a tuning split.

    python bench/calibrate_delta_min.py --split dev2 --types color,pattern --limit 8 [--seeds 1] [--shard I/N]
        [--device cpu] [--source-cache DIR] [--out ΔL.jsonl] [--records R.jsonl ...] [--per-type 4]

Why (issue 19, item 3): Δ_min was calibrated while the search still annealed t, which lowered every loss by the
schedule drift alone; with the search held at t_start the losses fall far less, so the old value puts nearly every
edit at η 0.2–0.4. Each edit gets the benchmark's own fitted source (`quality.py run`'s fit: `small` field, 400 steps,
40 views at 64 px) and the `bench` preset's search (50 steps at t_start, the job's seed), and ΔL = mean of the last 10
losses − mean of the first 10 is appended to --out (one line per edit and seed; finished ones are skipped). --records
adds the ΔL that benchmark records of pnr jobs already carry (one per edit and seed, any tag: the search does not
depend on the revise settings). The rule of docs/edit.md is then applied to the first --per-type jobs of every type
(equal weight per type; default: as many as the rarest type has): **Δ_min = 2 × median(−ΔL)**, so the median edit gets
η = η_max (1 − 2^−1/2) = 0.18. Only tuning splits are accepted: the test split is for the final table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

TUNING_SPLITS = ("dev", "dev2")


def read_delta_losses(paths: list[str], split: str) -> dict[tuple[str, int], tuple[str, float]]:
    """(edit id, seed) -> (edit type, ΔL) from --out lines and benchmark records (pnr jobs of `split`)."""
    out: dict[tuple[str, int], tuple[str, float]] = {}
    for p in paths:
        for line in pathlib.Path(p).read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("split") != split:
                continue
            dl = r.get("delta_loss")
            if dl is None:
                variant = r.get("variant") or ""
                if not (variant == "pnr" or variant.startswith("pnr+")):
                    continue
                dl = (r.get("eta_search") or {}).get("delta_loss")
            if dl is not None:
                out.setdefault((r["edit_id"], int(r["seed"])), (r["edit_type"], float(dl)))
    return out


def delta_min_rule(jobs: dict[tuple[str, int], tuple[str, float]], per_type: int | None = None) -> dict:
    """The rule on the first `per_type` jobs (by edit id, seed) of every type -> {delta_min, median, n, per_type}."""
    by_type: dict[str, list[float]] = {}
    for key in sorted(jobs):
        t, dl = jobs[key]
        by_type.setdefault(t, []).append(dl)
    if not by_type:
        raise ValueError("no ΔL to calibrate on")
    n = min(len(v) for v in by_type.values()) if per_type is None else per_type
    pooled = [dl for v in by_type.values() for dl in v[:n]]
    med = statistics.median(pooled)
    return {"delta_min": round(-2.0 * med, 2), "median_delta_loss": round(med, 2), "jobs": len(pooled),
            "per_type": {t: {"n": len(v), "used": min(n, len(v)), "median": round(statistics.median(v), 2),
                             "min": round(min(v), 2), "max": round(max(v), 2)} for t, v in sorted(by_type.items())}}


def search_one(e, seed: int, args, prior, dev) -> float:
    """ΔL of the `bench` preset's η search on the benchmark's fitted source of edit `e`."""
    from pnr.bench.quality.config import RunConfig
    from pnr.bench.quality.run import cached_fit
    from pnr.edit.config import preset, with_prior_defaults
    from pnr.edit.eta import loss_decrease
    from pnr.edit.loop import search_eta
    from pnr.edit.methods import PnR
    from pnr.edit.prompts import resolve_prompts
    from pnr.edit.run import make_guide

    field, occ = cached_fit(e, RunConfig(device=str(dev), source_cache=args.source_cache), dev)
    cfg = with_prior_defaults(preset("bench", method="pnr", seed=seed), prior)
    text, src_text = resolve_prompts(prior, e.prompt, e.source_caption, "pnr")
    guide = make_guide(prior, field, occ, text, src_text)
    _, trace, _ = search_eta(field, occ, guide, PnR(cfg), progress=False)
    return loss_decrease(trace, max(1, min(10, cfg.search_steps // 5)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="dev2", choices=TUNING_SPLITS)
    ap.add_argument("--types", default="", help="comma list of edit types to search (default: none, only --records)")
    ap.add_argument("--limit", type=int, default=8, help="first N edits of the types (interleaved)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--shard", default=None, help="I/N: this process takes edits i with i mod N == I")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--source-cache", default=None)
    ap.add_argument("--out", default=None, help="ΔL lines appended here (needed with --types)")
    ap.add_argument("--records", nargs="*", default=[], help="benchmark records whose pnr jobs' ΔL to use too")
    ap.add_argument("--per-type", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the rule's result here")
    a = ap.parse_args(argv)
    if a.types:
        import torch

        from pnr.bench.quality.jobs import select_edits
        from pnr.priors.builtin.prior import load_builtin_prior

        if not a.out:
            ap.error("--types needs --out (the searched ΔL are appended there)")
        if a.threads:
            torch.set_num_threads(a.threads)
        dev = torch.device(a.device)
        done = read_delta_losses([a.out], a.split) if pathlib.Path(a.out).exists() else {}
        edits = select_edits(a.split, a.types.split(","), limit=a.limit)
        if a.shard:
            i, n = (int(x) for x in a.shard.split("/"))
            edits = [e for k, e in enumerate(edits) if k % n == i]
        prior = load_builtin_prior(None, device=dev)
        for e in edits:
            for s in range(a.seeds):
                if (e.id, s) in done:
                    continue
                dl = search_one(e, s, a, prior, dev)
                with open(a.out, "a") as fh:  # one short line per job: an interrupted run keeps what it found
                    fh.write(json.dumps({"edit_id": e.id, "seed": s, "split": a.split, "edit_type": e.edit_type,
                                         "delta_loss": round(dl, 4), "device": str(dev)}) + "\n")
                print(f"{e.id} seed {s}: ΔL {dl:+.1f}", flush=True)
    paths = ([a.out] if a.out and pathlib.Path(a.out).exists() else []) + list(a.records)
    jobs = read_delta_losses(paths, a.split)
    if not jobs:
        print("calibrate_delta_min: no ΔL found (give --types or --records)", file=sys.stderr)
        return 2
    res = delta_min_rule(jobs, a.per_type)
    print("| type | jobs | used | median ΔL | min | max |\n|---|---|---|---|---|---|")
    for t, d in res["per_type"].items():
        print(f"| {t} | {d['n']} | {d['used']} | {d['median']:+.1f} | {d['min']:+.1f} | {d['max']:+.1f} |")
    print(f"Δ_min = 2 × median(−ΔL) over {res['jobs']} jobs = {res['delta_min']} (median ΔL {res['median_delta_loss']:+.1f})")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
