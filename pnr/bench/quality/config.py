"""RunConfig: the settings of `quality run`, each declared once with its help; the `run` options are generated
from it. parse_overrides turns --set NAME=VALUE and the step options into EditConfig overrides."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, dataclass, fields
from dataclasses import field as _field

import torch

from pnr.field.config import FIELD_PRESETS

from .jobs import TYPES, VARIANTS


def _opt(default=None, help=None, *, factory=None, flag=None, **argparse_kw):
    """A RunConfig field: its default (or factory), help and any other argparse keywords (choices, metavar)."""
    md = {"help": help, "flag": flag, "argparse": argparse_kw}
    if factory is not None:
        return _field(default_factory=factory, metadata=md)
    return _field(default=default, metadata=md)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class RunConfig:
    out: str = _opt("bench/results/quality.jsonl")
    device: str = _opt(factory=_default_device)
    methods: str | None = _opt(help=f"comma list of {', '.join(VARIANTS)}, pnr_fixed (default: all)")
    types: str | None = _opt(help=f"comma list of {', '.join(TYPES)} (default: all)")
    limit: int | None = _opt(help="only the first N edits (interleaved over types)")
    edits: str | None = _opt(help="only these edit ids, comma list (e.g. pose_d03,shape_d05; after --types/--limit)")
    shard: str | None = _opt(help="I/N: this process takes edits i with i mod N == I")
    max_minutes: float | None = _opt(help="stop before this wall time is exceeded")
    split: str = _opt("test", "test (the benchmark); dev or dev2 only for tuning (dev2: a second pool with every "
                      "prompt kind, pnr.data.domain.benchmark.make_dev2)", choices=("test", "dev", "dev2"))
    seeds: int = _opt(2, "seeds for pnr and sds (others: 1)")
    preset: str = _opt("bench")
    search_steps: int | None = _opt()
    edit_steps: int | None = _opt()
    revise_steps: int | None = _opt()
    set: tuple[str, ...] = _opt((), "any other EditConfig setting (repeatable)", metavar="NAME=VALUE")
    ablation_file: str | None = _opt(
        help="JSON {tag: {setting: value}}: every method runs once per tag, as variant METHOD+TAG", flag="--ablation")
    source_cache: str | None = _opt(help="folder of fitted sources shared between processes")
    identity_grad: bool = _opt(
        False, "record image-space gradient norms of the SDS and identity terms at the start of revise")
    prior: str | None = _opt(help="built-in prior checkpoint (default: the shipped one)")
    backbone: str = _opt("domain", "metric encoder (pnr eval --backbone)")
    net: str = _opt("alex", "ST-LPIPS trunk")
    fit_steps: int = _opt(400)
    field: str = _opt("small", "source field preset (pnr.field.config.FIELD_PRESETS; small_blob: small with "
                      "threestudio's softplus + blob_magic3d density prior, issue 19)", choices=tuple(FIELD_PRESETS))
    fit_views: int = _opt(40)
    fit_res: int = _opt(64)
    fit_rays: int = _opt(4096)
    fit_samples: int = _opt(128)
    eval_views: int = _opt(24)
    eval_res: int = _opt(128)
    eval_samples: int = _opt(128)
    thumb_edits: int = _opt(2, "edits per type with thumbnails for the figure")
    thumbs: str | None = _opt(help="thumbnail folder (default: <out dir>/thumbs)")
    turntables: bool = _opt(False, "also keep each thumbnailed job's turntable (eval views at eval res, uint8) as "
                            "<thumbs>/<edit>/<variant>.npz, for `quality.py figure --video`")
    threads: int | None = _opt(help="torch CPU threads (a pool worker: default 1)")
    workers: int | None = _opt(help="run the edits on a pnr.batch pool of K workers (one edit and all its jobs at a "
                               "time each) instead of this process alone; K > 1 implies --backend processes",
                               metavar="K")
    backend: str | None = _opt(help="the pool's backend (pnr batch --backend; default processes when --workers or "
                               "--workers-per-gpu is given)", choices=("processes", "ray", "inline"))
    workers_per_gpu: int | None = _opt(help="pool workers per GPU, worker i on GPU i // K (default: --workers spread "
                                       "over the GPUs)", metavar="K")
    no_warm_up: bool = _opt(False, "skip the untimed warm-up edit before the first job")

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        """One option per field: --name-with-dashes (or its flag), type from the annotation, bools as switches,
        tuples as repeatable options."""
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            kw = {"help": f.metadata["help"], **f.metadata["argparse"]}
            flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
            if flag != "--" + f.name.replace("_", "-"):
                kw["dest"] = f.name
            t = hints[f.name]
            if isinstance(t, types.UnionType):  # X | None
                t = next(x for x in typing.get_args(t) if x is not type(None))
            if t is bool:
                p.add_argument(flag, action="store_true", **kw)
            elif typing.get_origin(t) is tuple:
                p.add_argument(flag, action="append", default=None, **kw)
            else:
                default = f.default_factory() if f.default is MISSING else f.default
                p.add_argument(flag, default=default, **({"type": t} if t is not str else {}), **kw)

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> RunConfig:
        vals = {f.name: getattr(ns, f.name) for f in fields(cls)}
        vals["set"] = tuple(vals["set"] or ())
        return cls(**vals)


def parse_overrides(a) -> dict:
    """--search-steps/--edit-steps/--revise-steps and --set NAME=VALUE (a RunConfig, or anything with those
    attributes) -> EditConfig overrides, each value read as its setting's type."""
    from pnr.edit.config import EditConfig

    types = {f.name: f for f in fields(EditConfig)}
    over: dict = {}
    for name in ("search_steps", "edit_steps", "revise_steps"):
        v = getattr(a, name)
        if v is not None:
            if v < 0:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 0")
            over[name] = v
    for item in a.set or []:
        k, _, v = item.partition("=")
        k = k.strip().replace("-", "_")
        if k not in types or k in ("method", "eta", "seed"):
            raise SystemExit(f"--set {item!r}: not an EditConfig setting (or one the harness sets per job)")
        default = types[k].default
        try:
            if isinstance(default, bool):  # bool("false") would be True
                if v.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(v)
                over[k] = v.strip().lower() in ("1", "true", "yes")
            elif isinstance(default, tuple):
                over[k] = tuple(float(x) for x in v.split(","))
            elif default is None:
                over[k] = float(v)
            else:
                over[k] = type(default)(float(v)) if isinstance(default, int) and not isinstance(default, bool) \
                    else type(default)(v)
        except ValueError:
            raise SystemExit(f"--set {item!r}: cannot read the value") from None
    return over
