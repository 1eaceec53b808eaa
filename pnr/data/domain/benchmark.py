"""The edit benchmark of the built-in domain: 150 (source, prompt, ground-truth target) triples.

Like the paper's benchmark, 30 edits per edit type (colour, pattern, shape, pose, object), and the
prompt names only the change ("in blue", "striped", "tall", "sitting", "wearing a hat"). Because the
domain is procedural, every edit has its exact target object: `target == apply_edit(source, prompt)`,
differing from the source in exactly the edited attribute, with the same continuous jitter.

Split: per edit type, 10 dev + 20 test. The dev split may be used for tuning (eta, schedules, guidance
scales). THE TEST SPLIT IS NEVER USED FOR TUNING: it is only evaluated, with settings fixed on dev.

The dev rule (every third edit) lines up with the prompt cycles of three makers, so the dev split holds only
"sitting" / "with arms out" of the six poses, only height ("tall" / "short") of the shape attributes — the test
split's shape prompts are all width / profile ones — and only hat / flower / ball of the added objects. `make_dev2` is a
second tuning pool, drawn from its own random stream with every prompt kind of every type, disjoint from the
test split (split "dev2", ids like `pose_d04`); the 150-edit benchmark itself is unchanged.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from pnr.data.domain.grammar import (CATEGORY_ACCESSORIES, CATEGORY_ATTRS, COLORS, EDIT_TYPES,
                                     FIGURE_ACCESSORY_PHRASES, OBJECT_ACCESSORY_PHRASES, PATTERNS, POSE_PHRASES,
                                     ObjectSpec, apply_edit, caption, replace, sample_spec)
from pnr.errors import DataError
from pnr.io import atomic_write_text

PER_TYPE = 30
DEV_PER_TYPE = 10
BENCHMARK_VERSION = 1


@dataclass(frozen=True)
class BenchmarkEdit:
    id: str
    edit_type: str
    source: ObjectSpec
    prompt: str
    target: ObjectSpec
    source_caption: str
    target_caption: str
    split: str  # "dev" | "test"

    def to_dict(self) -> dict:
        return {"id": self.id, "edit_type": self.edit_type, "split": self.split, "prompt": self.prompt,
                "source_caption": self.source_caption, "target_caption": self.target_caption,
                "source": self.source.to_dict(), "target": self.target.to_dict()}

    @staticmethod
    def from_dict(d: dict) -> "BenchmarkEdit":
        return BenchmarkEdit(d["id"], d["edit_type"], ObjectSpec.from_dict(d["source"]), d["prompt"],
                             ObjectSpec.from_dict(d["target"]), d["source_caption"], d["target_caption"], d["split"])


def _sample(rng: random.Random, categories=None, **fixed) -> ObjectSpec:
    while True:
        s = sample_spec(rng)
        if categories is None or s.category in categories:
            return replace(s, **fixed)


def _color_edit(rng, i):
    src = _sample(rng)
    tgt = rng.choice([c for c in COLORS if c != src.color])
    return src, f"in {tgt}"


def _pattern_edit(rng, i):
    # mostly plain -> patterned (as the paper's "striped" prompts), a third patterned -> other / plain
    if i % 3 != 2:
        src = _sample(rng, pattern="plain")
        tgt = ("striped", "checkered", "dotted")[i % 3 + (i // 3) % 2]
    else:
        src = _sample(rng, pattern=rng.choice(PATTERNS[1:]))
        tgt = rng.choice([p for p in PATTERNS if p != src.pattern])
    return src, tgt


_SHAPE_VALUES = {"height": ("tall", "short"), "width": ("wide", "narrow"), "profile": ("square", "round")}


def _shape_edit(rng, i):
    attr = ("height", "width", "profile")[i % 3]
    cats = [c for c in CATEGORY_ATTRS if attr in CATEGORY_ATTRS[c]]
    src = _sample(rng, categories=cats)
    tgt = rng.choice([v for v in _SHAPE_VALUES[attr] if v != getattr(src, attr)])
    return src, tgt


_POSE_ORDER = ("sitting", "arms raised", "left arm raised", "arms out", "right arm raised", "standing")


def _pose_edit(rng, i):
    tgt = _POSE_ORDER[i % len(_POSE_ORDER)]  # 5 edits per target pose, asymmetric ones included
    src = _sample(rng, categories=("figure",))
    while src.pose == tgt:
        src = _sample(rng, categories=("figure",))
    return src, POSE_PHRASES[tgt]


def _object_edit(rng, i):
    pairs = [("figure", a) for a in CATEGORY_ACCESSORIES["figure"]] * 2 + \
            [(c, a) for c in ("vase", "mug", "table", "chair") for a in CATEGORY_ACCESSORIES[c]]
    cat, acc = pairs[i % len(pairs)]
    src = _sample(rng, categories=(cat,), accessory="none")
    phrase = FIGURE_ACCESSORY_PHRASES[acc] if cat == "figure" else OBJECT_ACCESSORY_PHRASES[acc]
    return src, phrase


_MAKERS = {"color": _color_edit, "pattern": _pattern_edit, "shape": _shape_edit, "pose": _pose_edit,
           "object": _object_edit}


def make_benchmark(seed: int = 0) -> list[BenchmarkEdit]:
    """150 edits (30 per type), ids '<type>_<nn>', a fixed 10 dev / 20 test split per type."""
    edits = []
    for etype in EDIT_TYPES:
        rng = random.Random(f"pnr-benchmark-{seed}-{etype}")
        for i in range(PER_TYPE):
            src, prompt = _MAKERS[etype](rng, i)
            tgt = apply_edit(src, prompt)
            split = "dev" if i % 3 == 0 else "test"  # the test split is never used for tuning
            edits.append(BenchmarkEdit(f"{etype}_{i:02d}", etype, src, prompt, tgt, caption(src), caption(tgt), split))
    return edits


def make_dev2(seed: int = 0) -> list[BenchmarkEdit]:
    """A second tuning pool: 30 edits per type from the same makers over every prompt kind (i = 0..29, not only
    i % 3 == 0), from a random stream of their own; a draw whose source or target equals a test edit's is redrawn,
    so nothing here is a test object."""
    test = [e for e in make_benchmark(seed) if e.split == "test"]
    taken = {json.dumps(x.to_dict(), sort_keys=True) for e in test for x in (e.source, e.target)}
    edits = []
    for etype in EDIT_TYPES:
        rng = random.Random(f"pnr-benchmark-dev2-{seed}-{etype}")
        for i in range(PER_TYPE):
            while True:
                src, prompt = _MAKERS[etype](rng, i)
                tgt = apply_edit(src, prompt)
                if not {json.dumps(x.to_dict(), sort_keys=True) for x in (src, tgt)} & taken:
                    break
            edits.append(BenchmarkEdit(f"{etype}_d{i:02d}", etype, src, prompt, tgt, caption(src), caption(tgt),
                                       "dev2"))
    return edits


def write_benchmark(path: str | Path, seed: int = 0) -> list[BenchmarkEdit]:
    edits = make_benchmark(seed)
    doc = {"version": BENCHMARK_VERSION, "seed": seed,
           "note": "test split is held out: never used for tuning", "edits": [e.to_dict() for e in edits]}
    atomic_write_text(path, json.dumps(doc, indent=1))
    return edits


def load_benchmark(path: str | Path) -> list[BenchmarkEdit]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"benchmark file {p} does not exist (write one with `pnr data benchmark --out {p}`)")
    try:
        doc = json.loads(p.read_text())
        return [BenchmarkEdit.from_dict(d) for d in doc["edits"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"benchmark file {p} is malformed: {e!r}") from None
