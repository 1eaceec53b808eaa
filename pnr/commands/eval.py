"""`pnr eval EDIT_DIR_OR_CKPT ...`: metrics of edits, printed as a table and optionally written as JSON.

Each argument is an edit folder written by `pnr edit` (edit.json + checkpoint/) or an edited checkpoint
(then --source names the source checkpoint). Source and edit are rendered on the same turntable; see
docs/metrics.md for every metric.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pnr.errors import PnrError


def add_parser(sub):
    from pnr.metrics.eval_config import EvalConfig
    from pnr.settings import add_device_option, add_options

    p = sub.add_parser("eval", help="metrics of edits: CLIP directional similarity/consistency, LPIPS, A-LPIPS, GT",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("edits", nargs="+", metavar="EDIT_DIR_OR_CKPT", help="edit folders (pnr edit --out) or edited checkpoints")
    p.add_argument("--source", help="source checkpoint (default: the one recorded in edit.json)")
    p.add_argument("--source-caption", help="caption of the source (default: from edit.json / checkpoint meta)")
    p.add_argument("--target-caption", help="caption of the intended result (default: from edit.json / checkpoint meta)")
    p.add_argument("--target-spec", help="ground-truth target: a domain caption or JSON spec")
    p.add_argument("--benchmark", help="benchmark JSON (pnr data benchmark): ground truth looked up by edit id / folder name")
    add_device_option(p)
    p.add_argument("--json", dest="json_out", help="write all results (per edit, every metric) to this JSON file")
    add_options(p.add_argument_group("evaluation settings (pnr.metrics.eval.EvalConfig)"), EvalConfig)
    p.set_defaults(func=run)
    return p


def run(args):
    from pnr.io import atomic_write_text
    from pnr.metrics.eval import EvalConfig, evaluate_edit, format_table, load_backbone, resolve_edit
    from pnr.settings import config_from

    device = args.device
    if device == "auto":
        from pnr.settings import resolve_device

        device = resolve_device(device)
    cfg = config_from(args, EvalConfig, device=device)  # out-of-range settings: named, before any work
    if args.json_out:  # before the work, not after it
        j = Path(args.json_out)
        if j.is_dir():
            raise PnrError(f"--json {j}: is a folder; give a file name")
        try:
            j.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PnrError(f"--json {j}: cannot create its folder ({e.strerror})") from None
    targets = [resolve_edit(e, args.source, args.benchmark, args.source_caption, args.target_caption, args.target_spec)
               for e in args.edits]
    encoder = load_backbone(cfg.backbone, device)
    results, cache = [], {}
    for t in targets:
        t0 = time.time()
        r = evaluate_edit(t, cfg, encoder, cache)
        r["seconds"] = round(time.time() - t0, 2)
        results.append(r)
    print(format_table(results))
    print("(success = the render is finite, not empty, not exploded: a sanity check, not whether the edit did "
          "what was asked; that is edit acc)")
    for r in results:
        gt = r["metrics"].get("gt", {})
        extra = f"; changed {gt['changed_attributes']}, read {gt['read_edit']}" if "read_edit" in gt else ""
        print(f"{r['name']}: {r['source_caption']!r} -> {r['target_caption']!r} (ground truth: {r['gt_from'] or 'none'}{extra})")
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps({"results": results}, indent=1, default=str))
        print(f"wrote {args.json_out}")
    return 0
