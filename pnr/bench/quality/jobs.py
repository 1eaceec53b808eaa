"""The job plan: variants (run and reported), seeds per variant, ablation tags, the benchmark edits in run order,
which edits get thumbnails, and the jobs still left."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TYPES = ("color", "pattern", "shape", "pose", "object")
FIXED_ETAS = (0.0, 0.2, 0.4, 0.6, 0.8)
RUN_VARIANTS = ("pnr", *(f"pnr_fixed_{e:.1f}" for e in FIXED_ETAS), "sds", "pds", "idu", "regen")
VARIANTS = ("pnr", "pnr_norevise", *RUN_VARIANTS[1:])  # as reported (pnr_norevise comes from the pnr runs)
MULTI_SEED = ("pnr", "pnr_norevise", "sds")
THUMB_VIEWS, THUMB_RES = 4, 64


def split_tag(variant: str) -> tuple[str, str | None]:
    """"pnr+snr" -> ("pnr", "snr"): an ablation variant (--ablation) is a base variant with a tag."""
    base, _, tag = variant.partition("+")
    return base, tag or None


def variant_run(variant: str) -> tuple[str, float | None]:
    """-> (EditConfig.method, fixed η or None) of a run variant (an ablation tag is ignored)."""
    variant = split_tag(variant)[0]
    if variant == "pnr":
        return "pnr", None
    if variant.startswith("pnr_fixed_"):
        return "pnr", float(variant[len("pnr_fixed_"):])
    if variant in ("sds", "pds", "idu", "regen"):
        return variant, None
    raise ValueError(f"unknown variant {variant!r}")


def seeds_of(variant: str, n_multi: int = 2) -> tuple[int, ...]:
    return tuple(range(n_multi)) if split_tag(variant)[0] in MULTI_SEED else (0,)


def key_of(rec: dict) -> tuple[str, str, int]:
    return (rec["edit_id"], rec["variant"], int(rec["seed"]))


@dataclass(frozen=True)
class Job:
    edit_id: str
    variant: str  # a run variant (never pnr_norevise)
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.edit_id, self.variant, self.seed)


def parse_methods(text: str | None) -> list[str]:
    """--methods: comma list of variants; 'pnr_fixed' = all five fixed η; pnr_norevise implies pnr."""
    if not text:
        return list(RUN_VARIANTS)
    out: list[str] = []
    for m in (t.strip() for t in text.split(",") if t.strip()):
        names = [v for v in RUN_VARIANTS if v.startswith("pnr_fixed_")] if m == "pnr_fixed" else \
            ["pnr"] if m == "pnr_norevise" else [m]
        for n in names:
            if n not in RUN_VARIANTS:
                raise SystemExit(f"unknown method {m!r}; expected some of {', '.join(VARIANTS)} or pnr_fixed")
            if n not in out:
                out.append(n)
    return out


def select_edits(split: str = "test", types: list[str] | None = None, limit: int | None = None) -> list:
    """Benchmark edits of a split, interleaved across types (color_01, pattern_01, ..., color_02, ...) so
    that a partial run covers every type evenly; --limit keeps the first N of that order."""
    from pnr.data.domain.benchmark import make_benchmark, make_dev2

    pool = make_dev2() if split == "dev2" else make_benchmark()
    es = [e for e in pool if e.split == split and (not types or e.edit_type in types)]
    es.sort(key=lambda e: (int(e.id.rsplit("_", 1)[1].lstrip("d")), TYPES.index(e.edit_type)))
    return es[:limit] if limit else es


def thumb_edit_ids(split: str, per_type: int) -> set[str]:
    es = select_edits(split)
    return {i for t in TYPES for i in [e.id for e in es if e.edit_type == t][:per_type]}


def jobs_of(edit_id: str, variants: list[str], n_multi: int) -> list[Job]:
    return [Job(edit_id, v, s) for s in range(max(n_multi, 1)) for v in variants if s in seeds_of(v, n_multi)]


def jobs_left(done: set, split: str = "test", n_multi: int = 2) -> dict[str, int]:
    """Run jobs not in `done` (keys), per variant — what a further `run` would still do."""
    left: dict[str, int] = {}
    for e in select_edits(split):
        for j in jobs_of(e.id, list(RUN_VARIANTS), n_multi):
            if j.key not in done:
                left[j.variant] = left.get(j.variant, 0) + 1
    return left



def read_ablation(path: str) -> dict[str, dict]:
    """--ablation FILE: {"tag": {"setting": value, ...}, ...}; lists become tuples (ranges). A tag's optional
    "methods": [...] runs it with those methods instead of --methods' (e.g. one reference SDS run); "_comment" keys are ignored."""
    d = json.loads(Path(path).read_text())
    if not isinstance(d, dict) or not all(isinstance(v, dict) for k, v in d.items() if not k.startswith("_")):
        raise SystemExit(f"--ablation {path}: expected {{tag: {{setting: value}}}}")
    return {k: {n: tuple(x) if isinstance(x, list) and n != "methods" else x for n, x in v.items()
                if not n.startswith("_")} for k, v in d.items() if not k.startswith("_")}

