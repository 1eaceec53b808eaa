"""Issue 19's predeclared rule for picking an ablation tag, run on the GPU machine right after a dev2 ablation so the
next call can use the choice without a round trip (round 6 ran it as choose_identity.py, for identity_scale):

    python3 bench/gpu/choose_tag.py /tmp/w/ablation/quality.jsonl > /tmp/choice   # e.g. "--set identity_scale=0.3"

Pooled over seeds, on the (edit, seed) jobs every pnr tag finished: a tag qualifies if its edit accuracy (failures as
0) is >= ref's - 0.035 and its successes >= ref's - 1; among those, the one with the lowest LPIPS to the source
(paired, over the jobs both it and ref got an object for) wins if that LPIPS is lower than ref's by more than 0.003.
Else ref. Prints the winner's settings as `--set NAME=VALUE ...` on stdout (nothing for ref: today's defaults), the
table on stderr."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from pnr.bench.quality.results import read_results  # noqa: E402

NOT_SETTINGS = ("render_graphs",)  # harness settings every tag shares


def choose(path: str) -> tuple[str, dict]:
    """-> (winning tag, its settings); ("ref", {}) when no tag qualifies."""
    by: dict[str, dict] = {}
    settings: dict[str, dict] = {}
    for (e, v, s), r in read_results(pathlib.Path(path)).items():
        base, _, tag = v.partition("+")
        if base == "pnr" and tag:
            by.setdefault(tag, {})[(e, s)] = r
            settings.setdefault(tag, {k: x for k, x in (r.get("config_overrides") or {}).items() if k not in NOT_SETTINGS})
    if "ref" not in by:
        return "ref", {}
    jobs = set.intersection(*(set(d) for d in by.values()))
    acc0 = lambda r: float(r["metrics"]["edited_attr_acc"]) if r.get("success") else 0.0  # noqa: E731
    ok = lambda t: sum(bool(by[t][j].get("success")) for j in jobs)  # noqa: E731
    acc = {t: sum(acc0(by[t][j]) for j in jobs) / max(1, len(jobs)) for t in by}
    best, best_gain = "ref", None
    for t in sorted(by):
        both = [j for j in jobs if by[t][j].get("success") and by["ref"][j].get("success")]
        lp = sum(by[t][j]["metrics"]["lpips_to_source"] for j in both) / max(1, len(both))
        lp_ref = sum(by["ref"][j]["metrics"]["lpips_to_source"] for j in both) / max(1, len(both))
        qual = acc[t] >= acc["ref"] - 0.035 and ok(t) >= ok("ref") - 1
        print(f"{t:8s} {settings[t]}: {len(jobs)} jobs, acc(fail=0) {acc[t]:.3f}, success {ok(t)}, "
              f"LPIPS src {lp:.4f} vs ref {lp_ref:.4f} on {len(both)} jobs, qualifies {qual}", file=sys.stderr)
        if t != "ref" and qual and lp < lp_ref - 0.003 and (best_gain is None or lp - lp_ref < best_gain):
            best, best_gain = t, lp - lp_ref
    print(f"choice: {best}", file=sys.stderr)
    return best, ({} if best == "ref" else settings[best])


def main(path: str) -> str:
    tag, s = choose(path)
    return " ".join(f"--set {k}={v}" for k, v in s.items())


if __name__ == "__main__":
    print(main(sys.argv[1]))
