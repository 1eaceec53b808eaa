"""Paired per-type table of two benchmark record files at one seed (issue 19 round 5b): edit accuracy with failed
runs counted as 0 and over successful runs, success, LPIPS to the source, per type, on the edits where every
compared variant of the NEW file finished.

Usage: python bench/paired_table.py NEW.jsonl [OLD.jsonl] [--seed 0] [--variants pnr,sds,pnr_norevise]
"""

from __future__ import annotations

import argparse
import json

TYPES = ["color", "pattern", "shape", "pose", "object"]


def load(path: str, seed: int) -> dict:
    """{(edit_id, variant): record}, test split, the latest record of each key."""
    d = {}
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            if r.get("split", "test") == "test" and r.get("seed") == seed:
                d[(r["edit_id"], r["variant"])] = r
    return d


def stats(d: dict, v: str, edits: list[str]):
    acc, succ, lp = [], [], []
    for e in edits:
        r = d.get((e, v))
        if r is None:
            return None
        a = r["metrics"]["edited_attr_acc"]
        acc.append(a if r["success"] else 0.0)
        if r["success"]:
            succ.append(a)
            lp.append(r["metrics"]["lpips_to_source"])
    mean = lambda x: sum(x) / len(x) if x else float("nan")  # noqa: E731
    return mean(acc), mean(succ), len(succ), len(acc), mean(lp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("new")
    ap.add_argument("old", nargs="?")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default="pnr,sds,pnr_norevise")
    a = ap.parse_args()
    vs = a.variants.split(",")
    runs = [("new", load(a.new, a.seed))] + ([("old", load(a.old, a.seed))] if a.old else [])
    edits = sorted({e for e, _ in runs[0][1] if all((e, v) in runs[0][1] for v in vs)})
    print(f"paired edits: {len(edits)} (seed {a.seed})")
    print("| file | variant | all (fail=0) | successes | success | LPIPS src | " + " | ".join(TYPES) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(TYPES))
    for name, d in runs:
        for v in vs:
            s = stats(d, v, edits)
            if s is None:
                print(f"| {name} | {v} | missing |")
                continue
            per = []
            for t in TYPES:
                es = [e for e in edits if e.startswith(t + "_")]
                st = stats(d, v, es)
                per.append(f"{st[0]:.2f} ({len(es)})" if st else "–")
            print(f"| {name} | {v} | {s[0]:.2f} | {s[1]:.2f} | {s[2]}/{s[3]} | {s[4]:.3f} | " + " | ".join(per) + " |")


if __name__ == "__main__":
    main()
