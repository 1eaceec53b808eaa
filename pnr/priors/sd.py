"""Stable Diffusion 1.5 / 2.1 behind the `Denoiser` interface (latent space, single view).

Renders are resized to `image_size` (512 for SD), mapped to [-1, 1] and VAE-encoded *with gradient*
(latent-space SDS/PDS as in DreamFusion-SD ports such as threestudio); latents are 4 x (S/8) x (S/8),
scaled by the VAE's `scaling_factor` (0.18215). The encoder uses the posterior mean rather than a
sample: SD's posterior std is tiny and a mean keeps steps reproducible from the seed alone.

Any V is accepted by `predict_eps` (views are denoised independently, the text repeated per view);
`c2w` is ignored: SD has no camera input. v-prediction checkpoints (SD-2.1 768) are converted to eps.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnr.errors import CheckpointError, PnrError, PromptError
from pnr.priors.base import NoiseSchedule


def _require_hub():
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise PnrError(f"this prior needs the optional packages diffusers and transformers ({e}); "
                       "install them with: pip install 'pnr[hub]'") from e


@dataclass
class SDConfig:
    """Adapter settings. image_size None = the UNet's own: its sample_size x the VAE's downsampling (512 for SD-1.5
    and SD-2.1-base, 768 for SD-2.1, the sizes they were trained at; Rombach et al. 2022)."""

    image_size: int | None = None
    prediction_type: str = "epsilon"  # or "v_prediction" (SD-2.1 768-v)
    num_train_steps: int = 1000
    beta_start: float = 0.00085  # SD's scaled_linear schedule (scheduler_config.json of both releases)
    beta_end: float = 0.012


class StableDiffusionPrior(nn.Module):
    """Denoiser over SD latents. cond = text hidden states [B, 77, D] (D = 768 for 1.5, 1024 for 2.1)."""

    num_views = 1
    x0_range = None  # latents: no fixed range
    default_guidance_scale = 100.0  # SDS with SD: DreamFusion (Poole et al. 2022), threestudio's dreamfusion-sd
    delta_min = 1000.0  # the paper's Δ_min (App. C), MVDream-threestudio loss units

    def __init__(self, unet: nn.Module, vae: nn.Module, text_encoder: nn.Module, tokenizer: Any,
                 cfg: SDConfig | None = None):
        super().__init__()
        cfg = cfg or SDConfig()
        self.cfg = replace(cfg, image_size=cfg.image_size or native_image_size(unet, vae))
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.tokenizer = tokenizer
        for p in self.parameters():
            p.requires_grad_(False)
        self.image_size = self.cfg.image_size
        self.schedule = NoiseSchedule.scaled_linear(self.cfg.num_train_steps, self.cfg.beta_start, self.cfg.beta_end)
        self.latent_scale = float(getattr(vae.config, "scaling_factor", 0.18215))

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    # -- text ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> Tensor:
        """[B, L, D] last hidden states of the CLIP text encoder, padded to the tokenizer's max length."""
        prompts = list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise PromptError("prompts must be strings")
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0].to(self.dtype)

    def null_text(self, batch: int) -> Tensor:
        return self.encode_text([""] * batch)

    # -- images -------------------------------------------------------------------------------------
    def encode_images(self, rgb: Tensor) -> Tensor:
        """rgb [B, V, 3, H, W] in [0, 1] -> latents [B, V, 4, S/8, S/8] (float32, differentiable)."""
        b, v = rgb.shape[:2]
        x = resize(rgb.flatten(0, 1), self.image_size) * 2 - 1
        lat = self.vae.encode(x.to(self.dtype)).latent_dist.mean * self.latent_scale
        return lat.float().unflatten(0, (b, v))

    def decode(self, x: Tensor) -> Tensor:
        """latents [B, V, 4, h, w] -> rgb [B, V, 3, 8h, 8w] in [0, 1]."""
        b, v = x.shape[:2]
        img = self.vae.decode((x.flatten(0, 1) / self.latent_scale).to(self.dtype)).sample
        return ((img.float() + 1) / 2).clamp(0, 1).unflatten(0, (b, v))

    # -- noise prediction ---------------------------------------------------------------------------
    def predict_eps(self, x_t: Tensor, t: Tensor, cond: Tensor, c2w: Tensor | None = None) -> Tensor:
        """x_t [B, V, 4, h, w], t [B] in [0, 1], cond [B, L, D] -> eps [B, V, 4, h, w] (float32)."""
        b, v = x_t.shape[:2]
        idx = self.schedule.index(t.to(self.device)).repeat_interleave(v)  # [B*V] discrete steps
        ctx = cond.to(self.device, self.dtype).repeat_interleave(v, dim=0)
        xf = x_t.flatten(0, 1)
        out = self.unet(xf.to(self.dtype), idx, encoder_hidden_states=ctx).sample.float()
        if self.cfg.prediction_type == "v_prediction":
            alpha, sigma = self.schedule.alpha_sigma(idx.float() / (self.schedule.num_steps - 1))
            shape = (-1, 1, 1, 1)
            out = alpha.view(shape) * out + sigma.view(shape) * xf.float()  # eps = a v + s x_t
        return out.unflatten(0, (b, v))


def native_image_size(unet: nn.Module, vae: nn.Module, default: int = 512) -> int:
    """Pixels the UNet was trained at: latent sample_size x 2^(VAE levels - 1) (64 x 8 = 512; SD-2.1: 96 x 8)."""
    sample = getattr(getattr(unet, "config", None), "sample_size", None)
    levels = getattr(getattr(vae, "config", None), "block_out_channels", None)
    if not isinstance(sample, int) or not levels:
        return default
    return sample * 2 ** (len(levels) - 1)


def resize(x: Tensor, size: int) -> Tensor:
    """[N, C, H, W] -> [N, C, size, size], bilinear (threestudio's choice for renders fed to the VAE)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


# -- loading ----------------------------------------------------------------------------------------
def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover
        return os.path.expanduser("~/.cache/huggingface/hub")


def missing_weights_error(what: str, source: str, detail: str, local_hint: str, flag: str = "--prior") -> CheckpointError:
    """The one error users see when weights cannot be found: where we looked, and how to fix it."""
    if Path(source).expanduser().exists() or source.startswith((".", "/", "~")):
        where = f"local path {Path(source).expanduser().resolve()}"
    else:
        where = f"hub id '{source}' (Hugging Face cache {_hf_cache_dir()}, then huggingface.co)"
    return CheckpointError(
        f"could not load {what} from {where}: {detail.rstrip('. ')}. Point at local weights with {flag} /path/to/{local_hint}, "
        f"or put them in the Hugging Face cache (set HF_HOME, or run `hf download {source}` on a "
        f"machine with internet and copy the cache); set HF_HUB_OFFLINE=1 to skip network look-ups.")


def from_pretrained(cls, source: str, subfolder: str | None, what: str, local_hint: str, offline: bool | None,
                    flag: str = "--prior", **kw):
    """`cls.from_pretrained` trying the local cache first; any failure becomes one CheckpointError."""
    is_path = Path(source).expanduser().exists()
    if source.startswith((".", "/", "~")) and not is_path:
        raise missing_weights_error(what, source, "no such file or directory", local_hint, flag)
    src = str(Path(source).expanduser()) if is_path else source
    kw = dict(kw, **({"subfolder": subfolder} if subfolder else {}))
    tries = [True] if (is_path or offline or os.environ.get("HF_HUB_OFFLINE") == "1") else [True, False]
    err: Exception | None = None
    for local_only in tries:
        try:
            return cls.from_pretrained(src, local_files_only=local_only, **kw)
        except (OSError, ValueError, EnvironmentError, RuntimeError) as e:
            err = e
        except Exception as e:  # huggingface_hub's HTTP/offline errors are not all OSError
            err = e
    detail = str(err).strip().splitlines()[0] if err and str(err).strip() else type(err).__name__
    raise missing_weights_error(what, source, detail[:300], local_hint, flag) from err


def dtype_kw(dtype: torch.dtype) -> dict:
    """transformers' from_pretrained dtype argument: `dtype` since 4.56 (`torch_dtype` deprecated), before that
    only `torch_dtype`."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def checked_tokenizer(tok: Any, source: str, what: str, local_hint: str, offline: bool | None,
                      flag: str = "--prior", min_vocab: int = 10) -> Any:
    """transformers 5 can build an *empty* tokenizer when its files are absent: treat that as missing."""
    if len(tok) < min_vocab:
        raise missing_weights_error(what, source, f"its tokenizer files were not found (vocabulary of {len(tok)})",
                                    local_hint, flag)
    return tok


def load_sd(source: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
            cfg: SDConfig | None = None, offline: bool | None = None, min_vocab: int = 10) -> StableDiffusionPrior:
    """Stable Diffusion from a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    scheduler/) or a hub id such as 'stable-diffusion-v1-5/stable-diffusion-v1-5'. fp16 on CUDA by default.
    The scheduler config (prediction type, betas) is read first: a hub id without one is refused before the
    weights are fetched."""
    _require_hub()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    hint = "stable-diffusion (a diffusers folder with model_index.json)"
    cfg = scheduler_settings(cfg or SDConfig(), scheduler_config(source, offline, hint), source)
    get = lambda cls, sub, **kw: from_pretrained(cls, source, sub, f"Stable Diffusion {sub}", hint, offline, **kw)  # noqa: E731
    unet = get(UNet2DConditionModel, "unet", torch_dtype=dtype)
    vae = get(AutoencoderKL, "vae", torch_dtype=dtype)
    text = get(CLIPTextModel, "text_encoder", **dtype_kw(dtype))
    tokenizer = checked_tokenizer(get(CLIPTokenizer, "tokenizer"), source, "the Stable Diffusion tokenizer", hint,
                                  offline, min_vocab=min_vocab)
    return StableDiffusionPrior(unet, vae, text, tokenizer, cfg).to(device).eval()


SCHEDULER_FILE = "scheduler/scheduler_config.json"


def hub_file(repo: str, filename: str, what: str, local_hint: str, offline: bool | None = None,
             flag: str = "--prior") -> Path:
    """A file of a hub repo via hf_hub_download: the cache first, then the network (unless offline), as
    `from_pretrained` does for the model parts; CheckpointError saying where it looked."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover
        raise PnrError(f"{what} from the hub needs huggingface_hub (pip install 'pnr[hub]')") from e
    err: Exception | None = None
    for local_only in ([True] if offline or os.environ.get("HF_HUB_OFFLINE") == "1" else [True, False]):
        try:
            return Path(hf_hub_download(repo, filename, local_files_only=local_only))
        except Exception as e:  # huggingface_hub's not-found/offline errors are not all OSError
            err = e
    detail = str(err).strip().splitlines()[0][:300] if err and str(err).strip() else "not found"
    raise missing_weights_error(what, repo, detail, local_hint, flag) from err


def scheduler_config(source: str, offline: bool | None, local_hint: str) -> dict | None:
    """scheduler/scheduler_config.json of a folder or hub repo. `from_pretrained(subfolder=...)` of the model
    parts never fetches it, so a fresh cache would silently run a v-prediction model as epsilon: a hub id
    fetches it like any other file (CheckpointError if unavailable). A local folder without one gets SD's
    defaults (epsilon, scaled_linear 0.00085..0.012), with a warning."""
    path = Path(source).expanduser()
    if path.exists():
        path = path / SCHEDULER_FILE
        if not path.is_file():
            warnings.warn(f"{path} not found: assuming Stable Diffusion's epsilon prediction and scaled_linear "
                          "betas 0.00085..0.012", stacklevel=3)
            return None
    else:
        path = hub_file(source, SCHEDULER_FILE, "the Stable Diffusion scheduler config", local_hint, offline)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable scheduler config ({e})") from e


def scheduler_settings(cfg: SDConfig, sched: dict | None, source: str) -> SDConfig:
    """cfg with the scheduler config's prediction type, betas and step count; what the adapter cannot run
    (another beta schedule, x0 prediction) is a CheckpointError rather than a silently wrong model."""
    if not sched:
        return replace(cfg)
    kind = sched.get("beta_schedule", "scaled_linear")
    pred = sched.get("prediction_type", cfg.prediction_type)
    if kind != "scaled_linear" or pred not in ("epsilon", "v_prediction"):
        raise CheckpointError(f"{source}: scheduler config has beta_schedule {kind!r} and prediction_type {pred!r}; "
                              "this adapter runs scaled_linear with epsilon or v_prediction")
    return replace(cfg, prediction_type=pred, beta_start=sched.get("beta_start", cfg.beta_start),
                   beta_end=sched.get("beta_end", cfg.beta_end),
                   num_train_steps=sched.get("num_train_timesteps", cfg.num_train_steps))


# -- random networks from published configs (tests, speed benchmarks) ------------------------------
# Typed from the unet/vae/text_encoder config.json of stable-diffusion-v1-5 and stable-diffusion-2-1-base.
UNET_CONFIGS: dict[str, dict] = {
    "sd15": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
    "sd21": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
                 attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
    "tiny": dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 cross_attention_dim=32, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
}
VAE_CONFIGS: dict[str, dict] = {
    "sd": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
               block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215),
    # two blocks = one 2x downsampling: a 16^2 image gives 8^2 latents
    "tiny": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, sample_size=16,
                 block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2, scaling_factor=0.18215),
}
TEXT_CONFIGS: dict[str, dict] = {
    "sd15": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768),
    "sd21": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                 max_position_embeddings=77, hidden_act="gelu", projection_dim=512),
    "tiny": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=77, hidden_act="gelu", projection_dim=32),
}


def tiny_tokenizer(folder: str | Path, words: tuple[str, ...] = ()) -> Any:
    """A CLIPTokenizer over a generated character vocabulary (+ whole `words`): no download needed."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789,.'-")
    vocab: dict[str, int] = {}
    for tok in ["!"] + chars + [c + "</w>" for c in chars] + [w + "</w>" for w in words] + \
            ["<|startoftext|>", "<|endoftext|>"]:
        vocab.setdefault(tok, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="!", model_max_length=77)


def random_sd(size: str, tokenizer: Any, device="cpu", dtype=torch.float32, seed: int = 0,
              cfg: SDConfig | None = None) -> StableDiffusionPrior:
    """Randomly initialised SD of `size` in UNET_CONFIGS ("sd15", "sd21", "tiny"): tests and benchmarks."""
    _require_hub()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIGS[size], norm_num_groups=32)
    vae = AutoencoderKL(**VAE_CONFIGS["tiny" if size == "tiny" else "sd"])
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=max(len(tokenizer), 49408 if size != "tiny" else 1),
                                        **ids, **TEXT_CONFIGS[size]))
    cfg = cfg or SDConfig(image_size=16 if size == "tiny" else 512)
    return StableDiffusionPrior(unet, vae, text, tokenizer, cfg).to(device, dtype).eval()
