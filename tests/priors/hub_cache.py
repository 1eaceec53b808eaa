"""Test helpers: tiny random Stable Diffusion folders (diffusers layout) and a fake Hugging Face hub cache, so
hub-id loading runs as on a machine whose cache holds the real weights (nothing downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex commit: the cache's snapshot folder name
# scheduler/scheduler_config.json of SD-1.5 and SD-2.1-base (the parts the adapter reads)
SD_SCHEDULER = {"_class_name": "PNDMScheduler", "prediction_type": "epsilon", "beta_schedule": "scaled_linear",
                "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}


def tiny_sd_folder(root: Path, text_width: int = 32, scheduler: dict | None = SD_SCHEDULER, sample_size: int = 8,
                   seed: int = 0) -> Path:
    """A diffusers SD folder with random tiny parts; `text_width` = the text encoder's hidden size (768 for SD-1.5,
    1024 for SD-2.1), `sample_size` = UNet latent size (x2 = image size with the tiny VAE); no scheduler/ if None."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pnr.priors.sd import UNET_CONFIGS, VAE_CONFIGS, tiny_tokenizer

    torch.manual_seed(seed)
    tok = tiny_tokenizer(root / "tok", words=("red", "chair"))
    UNet2DConditionModel(**dict(UNET_CONFIGS["tiny"], cross_attention_dim=text_width, sample_size=sample_size),
                         norm_num_groups=32).save_pretrained(root / "unet")
    AutoencoderKL(**VAE_CONFIGS["tiny"]).save_pretrained(root / "vae")
    CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=text_width, intermediate_size=37,
                                 num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=77,
                                 projection_dim=32, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id)).save_pretrained(root / "text_encoder")
    tok.save_pretrained(root / "tokenizer")
    shutil.rmtree(root / "tok")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    if scheduler is not None:
        (root / "scheduler").mkdir()
        (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return root


def put_in_hf_cache(cache: Path, repo_id: str, folder: Path) -> Path:
    """Copy `folder` into `cache` as hub repo `repo_id` (models--org--name/snapshots/<commit>, refs/main)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    return repo


def use_hf_cache(monkeypatch, cache: Path) -> None:
    """Point huggingface_hub (and so diffusers/transformers) at `cache`, offline. The library reads HF_HUB_CACHE
    once at import, so its constant is patched as well as the environment."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("PNR_MVDREAM_BASE", raising=False)
