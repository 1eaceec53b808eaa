"""Issue 19's predeclared rule for the identity term's scale, run on the GPU machine right after the dev2 ablation
(bench/ablations/issue19_identity.json) so the next call can use the choice without a round trip:

    python3 bench/gpu/choose_identity.py /tmp/w/ablation/quality.jsonl > /tmp/choice

Pooled over seeds, on the (edit, seed) jobs every tag finished: a tag qualifies if its edit accuracy (failures as 0)
is >= ref's - 0.035 and its successes >= ref's - 1; among those, the one with the lowest LPIPS to the source (paired,
over jobs both it and ref got an object for) wins if that LPIPS is lower than ref's by more than 0.003. Else ref.
Prints the scale (the default 0.1 for ref) on stdout and the table on stderr."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pnr.bench.quality.results import read_results  # noqa: E402

DEFAULT = 0.1  # IDENTITY_SCALE_BUILTIN when this ran (ref)


def main(path: str) -> float:
    recs = read_results(pathlib.Path(path))
    scale = {"ref": DEFAULT}
    by: dict[str, dict] = {}
    for (e, v, s), r in recs.items():
        base, _, tag = v.partition("+")
        if base == "pnr" and tag:
            by.setdefault(tag, {})[(e, s)] = r
            if tag != "ref":
                scale.setdefault(tag, float(r["config_overrides"].get("identity_scale", "nan")))
    if "ref" not in by:
        return DEFAULT
    jobs = set.intersection(*(set(d) for d in by.values()))
    acc0 = lambda r: float(r["metrics"]["edited_attr_acc"]) if r.get("success") else 0.0  # noqa: E731
    ok = lambda t: sum(bool(by[t][j].get("success")) for j in jobs)  # noqa: E731
    acc = {t: sum(acc0(by[t][j]) for j in jobs) / max(1, len(jobs)) for t in by}
    best, best_lp = "ref", None
    for t in sorted(by):
        both = [j for j in jobs if by[t][j].get("success") and by["ref"][j].get("success")]
        lp = sum(by[t][j]["metrics"]["lpips_to_source"] for j in both) / max(1, len(both))
        lp_ref = sum(by["ref"][j]["metrics"]["lpips_to_source"] for j in both) / max(1, len(both))
        qual = acc[t] >= acc["ref"] - 0.035 and ok(t) >= ok("ref") - 1
        print(f"{t:5s} scale {scale[t]:.2f}: {len(jobs)} jobs, acc(fail=0) {acc[t]:.3f}, success {ok(t)}, "
              f"LPIPS src {lp:.4f} vs ref {lp_ref:.4f} on {len(both)} jobs, qualifies {qual}", file=sys.stderr)
        if t != "ref" and qual and lp < lp_ref - 0.003 and (best_lp is None or lp - lp_ref < best_lp):
            best, best_lp = t, lp - lp_ref
    print(f"choice: {best}", file=sys.stderr)
    return scale[best]


if __name__ == "__main__":
    print(main(sys.argv[1]))
