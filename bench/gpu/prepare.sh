#!/usr/bin/env bash
# Run HERE (not on the GPU machine) once per checkout, before the first device call.
# The GPU machine cannot reach PyPI, and its image lacks `stlpips-pytorch`, whose ST-LPIPS weights the
# metrics need. This builds .gpusite/ (git-ignored, ~4.8 MB): an import-only `stlpips_pytorch` package with
# the alex weights stored in fp16 (so the tree stays under the 64 MiB transfer limit). Carry it with
# carry=[".gpusite"] and put it on PYTHONPATH there (bench/gpu/call.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
grep -qx '.gpusite/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '.gpusite/' >> .git/info/exclude; }
dst=.gpusite/stlpips_pytorch/weights/vST0.0
mkdir -p "$dst" && touch .gpusite/stlpips_pytorch/__init__.py
"$PY" - "$dst/alex_shift_tolerant.pth" <<'PYEOF'
import importlib.resources, sys, torch
src = importlib.resources.files("stlpips_pytorch") / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
with src.open("rb") as fh:
    sd = torch.load(fh, map_location="cpu", weights_only=True)
torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, sys.argv[1])
print("wrote", sys.argv[1])
PYEOF
du -sh .gpusite
