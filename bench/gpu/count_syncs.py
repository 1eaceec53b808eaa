"""Counts the host syncs of one `pnr edit` on a GPU (issue 21: the step's device-to-host reads, docs/speed.md).

    python bench/gpu/count_syncs.py [pnr edit arguments...]    # e.g. pnr/assets/sample/red_mug "in blue" --preset quick

Runs the edit in this process under torch.cuda.set_sync_debug_mode("warn") with every warning kept (not one per
place), then prints the syncs per source line, most first, and the total; a steady per-step sync shows up as a count
near the number of steps."""

import collections
import sys
import warnings

import torch


def main(argv: list[str]) -> int:
    if not torch.cuda.is_available():
        print("count_syncs.py: needs CUDA (torch.cuda.set_sync_debug_mode)", file=sys.stderr)
        return 2
    from pnr.cli import main as pnr_main

    seen: collections.Counter = collections.Counter()

    def show(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            seen[f"{filename}:{lineno}"] += 1

    warnings.showwarning = show
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")
    rc = pnr_main(["edit", *argv])
    torch.cuda.set_sync_debug_mode("default")
    for where, n in seen.most_common(25):
        print(f"{n:7d}  {where}")
    print(f"{sum(seen.values()):7d}  syncs in all ({len(seen)} places); pnr edit rc {rc}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
