"""The one place `PNR_*` environment variables are read.

| variable              | meaning                                                          | read by                      |
|-----------------------|------------------------------------------------------------------|------------------------------|
| `PNR_NO_TRITON`       | set (not "" / "0"): never use the fused Triton hash-grid kernels | pnr/field/encoding_triton.py |
| `PNR_RENDER_GRAPHS`   | 1/true/yes: CUDA-graph edit renders even with render_graphs off  | pnr/edit/guide.py            |
| `PNR_NO_CUDA_GRAPHS`  | 1/true/yes: the built-in prior's denoiser runs without CUDA graphs | pnr/priors/builtin/prior.py |
| `PNR_MVDREAM_BASE`    | base model (SD folder or hub id) of an MVDream checkpoint path   | pnr/priors/load.py           |
"""

from __future__ import annotations

import os

VARIABLES = ("PNR_NO_TRITON", "PNR_RENDER_GRAPHS", "PNR_NO_CUDA_GRAPHS", "PNR_MVDREAM_BASE")
YES = ("1", "true", "yes")


def env(name: str, default: str | None = None) -> str | None:
    """The value of a PNR_* variable (unset: `default`). Unknown names are a programming error."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a PNR environment variable; add it to pnr.env.VARIABLES ({', '.join(VARIABLES)})")
    return os.environ.get(name, default)


def env_flag(name: str, yes: tuple[str, ...] | None = YES) -> bool:
    """True when the variable is one of `yes` (1/true/yes); `yes=None`: when it is set to anything but "" or "0"."""
    v = env(name, "") or ""
    return v not in ("", "0") if yes is None else v in yes
