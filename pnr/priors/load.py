"""`--prior sd15|sd21|mvdream|builtin|PATH`: named presets with the paper's settings, and one loader.

A PATH is recognised by its contents: a diffusers folder (model_index.json) is Stable Diffusion; a
.safetensors with `pnr_prior_version` metadata (or a folder holding prior.safetensors) is a built-in
prior; any other .ckpt/.pt/.safetensors is an MVDream checkpoint (its VAE/text come from `base=` or the
PNR_MVDREAM_BASE environment variable, default the hub id of its variant's SD release: SD-2.1-base for
sd-v2.1-base-4view, SD-1.5 for sd-v1.5-4view).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pnr.errors import CheckpointError, PnrError
from pnr.priors.base import Denoiser
from pnr.env import env


@dataclass(frozen=True)
class PriorPreset:
    kind: str  # "sd" | "mvdream" | "builtin"
    source: str | None  # hub id (or None: the shipped built-in weights)
    num_views: int
    image_size: int  # what the prior's encoder sees (renders are resized to it)
    render_res: tuple[int, int]  # render resolution before / after the milestone (half the editing steps)
    guidance_scale: float  # classifier-free guidance for SDS / the edit loop
    pds_guidance_scale: float  # PDS's own setting (Koo et al. 2024 use SD's usual 7.5)
    filename: str | None = None  # file inside the hub repo (MVDream ships one .pt)
    base: str | None = None  # where VAE + text encoder come from (MVDream)


PRIORS: dict[str, PriorPreset] = {
    # SDS with SD: CFG 100 (DreamFusion, Poole et al. 2022; threestudio's dreamfusion-sd config). Renders 64 -> 256
    # at the milestone mirror the MVDream schedule below (the paper's milestone; SD resizes both to 512).
    "sd15": PriorPreset("sd", "stable-diffusion-v1-5/stable-diffusion-v1-5", 1, 512, (64, 256), 100.0, 7.5),
    "sd21": PriorPreset("sd", "stabilityai/stable-diffusion-2-1-base", 1, 512, (64, 256), 100.0, 7.5),
    # MVDream: 4 views, CFG 50, renders 64 -> 256 at the resolution milestone, VAE input 256 (MVDream's
    # threestudio config mvdream-sd21.yaml: guidance_scale 50, width [64, 256]; paper App. E: milestone at
    # half of the 1.5k editing steps).
    "mvdream": PriorPreset("mvdream", "MVDream/MVDream", 4, 256, (64, 256), 50.0, 7.5,
                           filename="sd-v2.1-base-4view.pt", base="stabilityai/stable-diffusion-2-1-base"),
    # Built-in 64x64 pixel-space multi-view prior (pnr.priors.builtin): CFG 20 chosen on the benchmark's dev split
    # (BuiltinPrior.default_guidance_scale; PDS keeps 5). The guidance scales here equal each prior class's
    # default_guidance_scale (tests/priors/test_contract.py).
    "builtin": PriorPreset("builtin", None, 4, 64, (64, 64), 20.0, 5.0),
}

# Instruct-NeRF2NeRF's editor (Haque et al. 2023): text guidance 7.5, image guidance 1.5, 20 denoising steps,
# noise level U(0.02, 0.98). Used by pnr.priors.ip2p for the dataset-update baseline.
IP2P_PRESET = dict(source="timbrooks/instruct-pix2pix", guidance_scale=7.5, image_guidance_scale=1.5, steps=20,
                   t_range=(0.02, 0.98))


def preset_for(name_or_path: str) -> PriorPreset:
    """The preset of a name, or the one matching a path's kind (settings of the family it belongs to)."""
    if name_or_path in PRIORS:
        return PRIORS[name_or_path]
    return {"sd": PRIORS["sd15"], "mvdream": PRIORS["mvdream"], "builtin": PRIORS["builtin"]}[detect_kind(name_or_path)]


def detect_kind(path: str | Path) -> str:
    """'sd' | 'mvdream' | 'builtin' from what is at `path` (CheckpointError if nothing usable is there)."""
    p = Path(path).expanduser()
    if not p.exists():
        names = ", ".join(PRIORS)
        raise CheckpointError(f"--prior {path}: no such file or folder, and not a preset name ({names}). Give a "
                              "diffusers Stable Diffusion folder, an MVDream .ckpt/.pt/.safetensors, or a built-in "
                              "prior .safetensors")
    if p.is_dir():
        if (p / "model_index.json").is_file():
            index = json.loads((p / "model_index.json").read_text())
            if "InstructPix2Pix" in str(index.get("_class_name", "")):
                raise PnrError(f"{p} is an InstructPix2Pix image editor, not a score-distillation prior; it is used by "
                               "the dataset-update baseline (pnr.priors.ip2p)")
            return "sd"
        if (p / "prior.safetensors").is_file():
            return "builtin"
        raise CheckpointError(f"{p}: a folder without model_index.json (diffusers) or prior.safetensors (built-in)")
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as e:
            raise CheckpointError(f"{p}: not a readable safetensors file ({e})") from e
        return "builtin" if "pnr_prior_version" in meta else "mvdream"
    if p.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        return "mvdream"
    raise CheckpointError(f"{p}: unknown checkpoint type (expected a folder, .safetensors, .ckpt or .pt)")


def _hub_file(repo: str, filename: str, offline: bool | None = None) -> str:
    """Path of a hub file, from the cache first, then the network; CheckpointError saying where it looked."""
    from pnr.priors.sd import hub_file

    return str(hub_file(repo, filename, filename, filename, offline))


def load_prior(name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
               base: str | None = None, offline: bool | None = None, mvdream_config=None,
               image_size: int | None = None) -> Denoiser:
    """A Denoiser for a preset name or a path. dtype None: fp16 on CUDA, fp32 on CPU (hub priors).
    `base`: the SD release for MVDream's VAE/text (default: the variant's own); `mvdream_config`: MVDreamConfig
    for non-official checkpoints; `image_size`: overrides the preset's encoder input size."""
    if name_or_path == "builtin" or (name_or_path not in PRIORS and detect_kind(name_or_path) == "builtin"):
        from pnr.priors.builtin.prior import load_builtin_prior

        return load_builtin_prior(None if name_or_path == "builtin" else name_or_path, device=device, dtype=dtype)
    preset = preset_for(name_or_path)
    if preset.kind == "sd":
        from pnr.priors.sd import SDConfig, load_sd

        src = preset.source if name_or_path in PRIORS else name_or_path
        # image_size None: the checkpoint's own (512 for the presets, 768 for an SD-2.1 768-v folder)
        return load_sd(src, device, dtype, cfg=SDConfig(image_size=image_size), offline=offline)
    from pnr.priors.mvdream import load_mvdream

    ckpt = _hub_file(preset.source, preset.filename, offline) if name_or_path in PRIORS else name_or_path
    # a path's base follows its variant (sd-v1.5-4view -> SD-1.5, sd-v2.1-base-4view -> SD-2.1-base)
    base = base or env("PNR_MVDREAM_BASE") or (preset.base if name_or_path in PRIORS else None)
    return load_mvdream(ckpt, base, device, dtype, offline=offline, cfg=mvdream_config,
                        image_size=image_size or preset.image_size)
