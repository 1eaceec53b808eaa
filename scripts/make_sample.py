"""Build the bundled sample object: render a domain object, fit a small field, ship it slim.

    python scripts/make_sample.py --caption "a red mug" --out pnr/assets/sample/red_mug --device cuda

The shipped checkpoint keeps the field and occupancy grid only (no optimizer state), with the caption
in its meta so `pnr edit` can compose the built-in prior's text from an edit phrase.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


from pnr.data.transforms import load_transforms_dataset
from pnr.edit.config import SourceConfig
from pnr.edit.prepare import fit_dataset
from pnr.field.checkpoint import load_checkpoint, save_checkpoint
from pnr.settings import add_device_option, resolve_device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--caption", default="a red mug")
    ap.add_argument("--out", default="pnr/assets/sample/red_mug")
    ap.add_argument("--views", type=int, default=64)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    add_device_option(ap)
    a = ap.parse_args()
    a.device = resolve_device(a.device)
    import subprocess
    import sys

    tmp = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "pnr.cli", "data", "object", a.caption, "--views", str(a.views),
                    "--res", str(a.res), "--out", str(tmp / "data")], check=True)
    ds = load_transforms_dataset(tmp / "data")
    t0 = time.time()
    field, occ, metrics = fit_dataset(ds, tmp / "run", a.device, SourceConfig(field="small", fit_steps=a.steps),
                                      resume=False, progress=False)
    print(f"fit {a.steps} steps on {a.device} in {time.time() - t0:.1f}s: {json.dumps(metrics)}")
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    save_checkpoint(out, field.cpu(), occ.to("cpu"),
                    {"caption": a.caption, "fit": metrics, "source": f"pnr data object '{a.caption}' "
                     f"--views {a.views} --res {a.res}; scripts/make_sample.py"})
    load_checkpoint(out)  # verify it loads
    print("wrote", out)


if __name__ == "__main__":
    main()
