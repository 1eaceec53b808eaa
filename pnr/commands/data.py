"""`pnr data`: datasets of the built-in object domain.

  pnr data object "a red mug" --views 100 --res 128 --out DIR   # transforms.json dataset (NeRF-synthetic layout)
  pnr data benchmark --out FILE.json                            # the 150-edit benchmark with ground truth
  pnr data colmap SPARSE_DIR IMAGES --out DIR                   # a COLMAP model -> transforms.json
  pnr data vocab                                                # every word captions / edit prompts may use
  pnr data sample --n 5 --seed 0                                # random captions
  pnr data sheet --out docs/domain_contact_sheet.png            # contact sheet of random objects
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("data", help="built-in object domain: render datasets, write the edit benchmark, list the vocabulary")
    dsub = p.add_subparsers(dest="data_command", required=True)
    o = dsub.add_parser("object", help="render a multi-view transforms.json dataset of one object")
    o.add_argument("spec", help='a caption ("a blue striped mug") or a JSON spec (\'{"category": "mug", "color": "red"}\')')
    o.add_argument("--views", type=int, default=100)
    o.add_argument("--res", type=int, default=128)
    o.add_argument("--out", required=True, help="output directory")
    o.add_argument("--seed", type=int, default=0, help="camera placement seed")
    o.add_argument("--supersample", type=int, default=2, help="rays per pixel side (antialiasing)")
    o.add_argument("--test-every", type=int, default=8, help="every N-th view goes to the test split")
    o.add_argument("--device", default="cpu")
    o.add_argument("--force", action="store_true", help="replace a dataset already in --out (its "
                   "transforms*.json and train/ test/ val/ folders are removed; other files stay)")
    b = dsub.add_parser("benchmark", help="write the 150-edit benchmark (source, prompt, ground-truth target)")
    b.add_argument("--out", required=True)
    b.add_argument("--seed", type=int, default=0)
    cm = dsub.add_parser("colmap", help="convert a COLMAP sparse model (text or binary) to transforms.json")
    cm.add_argument("sparse", help="COLMAP model folder holding cameras/images(/points3D) .bin or .txt, e.g. sparse/0")
    cm.add_argument("images", help="the folder of the images COLMAP registered (names as in images.bin/txt)")
    cm.add_argument("--out", required=True, help="output folder for transforms.json (images are referenced, not copied)")
    dsub.add_parser("vocab", help="list the attribute values and every known word")
    c = dsub.add_parser("sheet", help="contact sheet PNG of random objects (4 views each, captioned)")
    c.add_argument("--out", required=True)
    c.add_argument("--n", type=int, default=32)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--res", type=int, default=96)
    s = dsub.add_parser("sample", help="print random captions")
    s.add_argument("--n", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def run(args):
    from pnr.errors import PnrError

    if args.data_command == "object":
        return _object(args)
    if args.data_command == "benchmark":
        from pnr.data.domain.benchmark import write_benchmark

        edits = write_benchmark(args.out, args.seed)
        counts = Counter((e.edit_type, e.split) for e in edits)
        types = sorted({e.edit_type for e in edits}, key=[e.edit_type for e in edits].index)
        print(f"wrote {len(edits)} edits to {args.out}")
        for t in types:
            print(f"  {t:8s} dev {counts[(t, 'dev')]:3d}  test {counts[(t, 'test')]:3d}")
        return 0
    if args.data_command == "colmap":
        from pnr.data.colmap import colmap_to_transforms

        meta = colmap_to_transforms(args.sparse, args.images, args.out)
        models = sorted({f.get("camera_model", meta.get("camera_model")) for f in meta["frames"]})
        print(f"colmap: {len(meta['frames'])} images ({', '.join(models)}) -> {Path(args.out) / 'transforms.json'}"
              + (f"; sparse points -> {Path(args.out) / 'sparse_pc.ply'}" if "ply_file_path" in meta else ""))
        return 0
    if args.data_command == "vocab":
        from pnr.data.domain.grammar import ATTRIBUTES, CATEGORY_ACCESSORIES, CATEGORY_ATTRS, vocabulary

        for k, v in ATTRIBUTES.items():
            print(f"{k:10s} {', '.join(v)}")
        print("per category:")
        for c, attrs in CATEGORY_ATTRS.items():
            print(f"  {c:7s} shape/pose: {', '.join(attrs)}; accessories: {', '.join(CATEGORY_ACCESSORIES[c]) or '-'}")
        words = vocabulary()
        print(f"words ({len(words)}): {' '.join(words)}")
        return 0
    if args.data_command == "sheet":
        from pnr.data.domain.sheet import contact_sheet_image
        from pnr.io import save_png

        save_png(args.out, contact_sheet_image(args.n, args.seed, args.res))
        print(f"wrote {args.out}: {args.n} objects x 4 views at {args.res}x{args.res}")
        return 0
    if args.data_command == "sample":
        import random

        from pnr.data.domain.grammar import caption, sample_spec

        rng = random.Random(args.seed)
        for _ in range(args.n):
            print(caption(sample_spec(rng)))
        return 0
    raise PnrError(f"unknown data command {args.data_command!r}")


def _check_dataset_out(out: Path, force: bool) -> None:
    """Before rendering: --out must be a folder we may fill. An earlier dataset there is refused (its runs were
    fitted on it, and fewer new views would leave stale images behind) unless --force, which removes its files."""
    import shutil

    from pnr.errors import PnrError

    if out.exists() and not out.is_dir():
        raise PnrError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PnrError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    old = [out / n for n in ("transforms.json", "transforms_train.json", "transforms_test.json", "transforms_val.json")]
    if not any(p.exists() for p in old):
        return
    if not force:
        raise PnrError(f"--out {out} already holds a dataset; choose another --out or pass --force to replace it")
    for p in old:
        p.unlink(missing_ok=True)
    for d in ("train", "test", "val"):
        shutil.rmtree(out / d, ignore_errors=True)


def _object(args):
    import torch

    from pnr.data.domain.grammar import caption, spec_from_text
    from pnr.data.domain.render import DEFAULT_FOV, render_dataset
    from pnr.data.transforms import write_transforms_dataset
    from pnr.errors import PnrError

    if args.views < 1 or args.res < 8:
        raise PnrError(f"--views must be >= 1 and --res >= 8 (got {args.views}, {args.res})")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PnrError(f"--device {args.device} requested but CUDA is not available")
    spec = spec_from_text(args.spec)
    _check_dataset_out(Path(args.out), args.force)
    t0 = time.perf_counter()
    rgba, cams = render_dataset(spec, args.views, args.res, args.seed, supersample=args.supersample, device=args.device,
                                progress=True)
    t1 = time.perf_counter()
    out = write_transforms_dataset(args.out, rgba.cpu(), cams.c2w.cpu(), math.radians(DEFAULT_FOV),
                                   test_every=args.test_every,
                                   extra={"caption": caption(spec), "spec": spec.to_dict(), "white_background": False})
    print(f"{caption(spec)!r}: {args.views} views at {args.res}x{args.res} rendered in {t1 - t0:.1f}s, "
          f"written to {out}/transforms.json in {time.perf_counter() - t1:.1f}s")
    print(json.dumps(spec.to_dict()))
    return 0
