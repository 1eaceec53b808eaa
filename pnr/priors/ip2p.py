"""InstructPix2Pix (Brooks et al. 2023) as the image editor of the iterative dataset-update baseline
(Instruct-NeRF2NeRF, Haque et al. 2023).

One edit, as Instruct-NeRF2NeRF does it: encode the current render to latents, noise them to a random
level t ~ U(0.02, 0.98), then run `steps` deterministic DDIM steps from t down to 0 with the UNet conditioned
on the instruction (text) and on the *source* view (its VAE latent, unscaled mode, concatenated to the
input channels). The last step lands on the x0 estimate itself (DDIM's final ᾱ = 1, as diffusers'
DDIMScheduler with set_alpha_to_one, its default), not on step 0's ᾱ = 0.99915. Guidance has three
branches (text+image, image only, neither):
    eps = eps_u + s_T (eps_ti - eps_i) + s_I (eps_i - eps_u),   s_T = 7.5, s_I = 1.5 (IN2N defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnr.errors import CheckpointError, PromptError
from pnr.priors.base import NoiseSchedule
from pnr.priors.sd import checked_tokenizer, dtype_kw, from_pretrained, resize


@dataclass
class IP2PConfig:
    """Instruct-NeRF2NeRF's editor settings (its in2n config: guidance 7.5 / 1.5, 20 steps, t in [0.02, 0.98])."""

    guidance_scale: float = 7.5
    image_guidance_scale: float = 1.5
    steps: int = 20
    t_min: float = 0.02
    t_max: float = 0.98
    image_size: int = 512  # InstructPix2Pix was trained at 512^2 (256 for part of training); IN2N edits at render size


def combine_guidance(eps_ti: Tensor, eps_i: Tensor, eps_u: Tensor, s_text: float, s_image: float) -> Tensor:
    """InstructPix2Pix's two-scale classifier-free guidance (Brooks et al. 2023, Eq. 3)."""
    return eps_u + s_text * (eps_ti - eps_i) + s_image * (eps_i - eps_u)


class IP2PEditor(nn.Module):
    """Edits batches of views: `edit_images(images, instruction, cond_images)`."""

    def __init__(self, unet: nn.Module, vae: nn.Module, text_encoder: nn.Module, tokenizer: Any,
                 cfg: IP2PConfig | None = None):
        super().__init__()
        if getattr(unet.config, "in_channels", 8) != 8:
            raise CheckpointError(f"an InstructPix2Pix UNet takes 8 input channels (noisy + source latents), "
                                  f"this one takes {unet.config.in_channels}: not an InstructPix2Pix checkpoint")
        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        self.requires_grad_(False)
        self.cfg = cfg or IP2PConfig()
        self.schedule = NoiseSchedule.scaled_linear()
        self.latent_scale = float(getattr(vae.config, "scaling_factor", 0.18215))

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def _text(self, prompts: list[str]) -> Tensor:
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0].to(self.dtype)

    def ddim_step(self, z: Tensor, eps: Tensor, t_cur: float, t_next: float) -> Tensor:
        """DDIM (eta = 0) from level t_cur to t_next of latents z [N, 4, h, w]; t_next = 0 returns the x0
        estimate (ᾱ = 1), so no predicted noise is left in the edit."""
        a, s = (v.item() for v in self.schedule.alpha_sigma(torch.tensor([t_cur])))
        x0 = (z - s * eps) / a
        if t_next <= 0.0:
            return x0
        a_n, s_n = (v.item() for v in self.schedule.alpha_sigma(torch.tensor([t_next])))
        return a_n * x0 + s_n * eps

    @torch.no_grad()
    def edit_images(self, images: Tensor, instruction: str, cond_images: Tensor | None = None,
                    generator: torch.Generator | None = None, t: float | None = None) -> Tensor:
        """images [N, 3, H, W] in [0, 1] (current renders) -> edited [N, 3, H, W] in [0, 1].
        cond_images: the source views the edit must stay faithful to (default: `images`).
        t: starting noise level in [0, 1] (default: drawn from U(t_min, t_max) with `generator`)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise PromptError("the edit instruction is empty")
        cfg = self.cfg
        n, _, h, w = images.shape
        cond_images = images if cond_images is None else cond_images
        x = resize(images.to(self.device).float(), cfg.image_size) * 2 - 1
        c = resize(cond_images.to(self.device).float(), cfg.image_size) * 2 - 1
        lat = self.vae.encode(x.to(self.dtype)).latent_dist.mean.float() * self.latent_scale
        img_lat = self.vae.encode(c.to(self.dtype)).latent_dist.mode().float()  # unscaled, as IP2P was trained
        if t is None:
            t = cfg.t_min + (cfg.t_max - cfg.t_min) * float(torch.rand((), generator=generator))
        noise = torch.randn(lat.shape, generator=generator).to(self.device)
        ts = torch.linspace(t, 0.0, cfg.steps + 1)
        a, s = self.schedule.alpha_sigma(ts[:1])
        z = a.item() * lat + s.item() * noise
        text = torch.cat([self._text([instruction] * n), self._text([""] * 2 * n)])  # [ti, i, u]
        img_in = torch.cat([img_lat, img_lat, torch.zeros_like(img_lat)])
        for t_cur, t_next in zip(ts[:-1], ts[1:]):
            idx = self.schedule.index(t_cur.view(1)).to(self.device).expand(3 * n)
            inp = torch.cat([z.repeat(3, 1, 1, 1), img_in], dim=1).to(self.dtype)
            eps_ti, eps_i, eps_u = self.unet(inp, idx, encoder_hidden_states=text).sample.float().chunk(3)
            eps = combine_guidance(eps_ti, eps_i, eps_u, cfg.guidance_scale, cfg.image_guidance_scale)
            z = self.ddim_step(z, eps, float(t_cur), float(t_next))
        out = ((self.vae.decode((z / self.latent_scale).to(self.dtype)).sample.float() + 1) / 2).clamp(0, 1)
        if out.shape[-2:] != (h, w):  # back to the render's size
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
        return out


def edit_images(editor: IP2PEditor, images: Tensor, instruction: str, cond_images: Tensor | None = None,
                generator: torch.Generator | None = None, t: float | None = None) -> Tensor:
    """Module-level form of IP2PEditor.edit_images (the dataset-update baseline's hook)."""
    return editor.edit_images(images, instruction, cond_images, generator, t)


def load_ip2p(source: str = "timbrooks/instruct-pix2pix", device: str | torch.device = "cpu",
              dtype: torch.dtype | None = None, cfg: IP2PConfig | None = None,
              offline: bool | None = None) -> IP2PEditor:
    """InstructPix2Pix from a diffusers folder or hub id (the one Instruct-NeRF2NeRF uses by default)."""
    from pnr.priors.sd import _require_hub

    _require_hub()
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    hint = "instruct-pix2pix (a diffusers folder with model_index.json)"
    flag = "pnr edit --method idu --editor"

    def get(cls, sub, **kw):
        return from_pretrained(cls, source, sub, f"InstructPix2Pix {sub}", hint, offline, flag, **kw)

    # weights are read straight into `dtype` (no fp32 copy first: half the peak memory of the UNet in fp16)
    unet = get(UNet2DConditionModel, "unet", torch_dtype=dtype)
    vae = get(AutoencoderKL, "vae", torch_dtype=dtype)
    text = get(CLIPTextModel, "text_encoder", **dtype_kw(dtype))
    tok = checked_tokenizer(get(CLIPTokenizer, "tokenizer"), source, "the InstructPix2Pix tokenizer", hint, offline,
                            flag)
    return IP2PEditor(unet, vae, text, tok, cfg).to(device).eval()
