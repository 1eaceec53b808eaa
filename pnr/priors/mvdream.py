"""MVDream (Shi et al. 2023): a Stable-Diffusion UNet made multi-view, behind the `Denoiser` interface.

Two changes to SD's UNet, both implemented here (own code; module and parameter names follow the
official `MultiViewUNetModel` so its checkpoint loads with `strict=True`):
  * camera embedding: the flattened 4x4 camera-to-world matrix (16 numbers) goes through a 2-layer MLP
    (`camera_embed.0/2`) and is added to the timestep embedding of each view;
  * multi-view self-attention: in every transformer block, `attn1` attends over the concatenated
    tokens of the V views of one object ("3D self-attention"); cross-attention stays per view.

Checkpoint: the official `sd-v2.1-base-4view.pt` (hub repo MVDream/MVDream) is an LDM state dict whose
UNet keys start with `model.diffusion_model.`; its VAE (`first_stage_model.`) and OpenCLIP text encoder
(`cond_stage_model.`) are SD-2.1-base's, frozen during MVDream's training, so this adapter takes those
(and the tokenizer) from a Stable Diffusion 2.1-base diffusers folder or hub id, as threestudio does for
MVDream's text embeddings. `sd-v1.5-4view.pt` (768-wide text) likewise takes SD-1.5's; the base is chosen
from the variant inferred from the checkpoint (`VARIANTS`) unless one is given.

Camera convention: MVDream's cameras (mvdream/camera_utils.py: OpenGL camera axes, y-up world converted to
Blender's z-up world) are the same convention as ours: OpenGL c2w in a z-up world. threestudio feeds its
(same-convention) c2w unchanged. The only conversion is MVDream's `normalize_camera`: the camera position
is scaled onto the unit sphere; then the matrix is flattened row-major to 16 numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pnr.errors import CheckpointError
from pnr.priors.sd import SDConfig, StableDiffusionPrior, load_sd, missing_weights_error

UNET_PREFIX = "model.diffusion_model."


@dataclass
class MVDreamConfig:
    """UNet hyper-parameters; defaults = the official sd-v2-base.yaml (MVDream repo, mvdream/configs)."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)  # downsampling factors that get a transformer
    num_head_channels: int = 64  # sd-v2-base.yaml; sd-v1.yaml sets num_heads: 8 instead
    num_heads: int = -1
    transformer_depth: int = 1
    context_dim: int = 1024  # OpenCLIP ViT-H text width (768 for the SD-1.5 variant)
    use_linear_in_transformer: bool = True  # False in sd-v1.yaml (1x1 convs)
    camera_dim: int = 16

    @staticmethod
    def sd15() -> "MVDreamConfig":
        """sd-v1.5-4view (sd-v1.yaml)."""
        return MVDreamConfig(num_head_channels=-1, num_heads=8, context_dim=768, use_linear_in_transformer=False)

    @staticmethod
    def tiny() -> "MVDreamConfig":
        return MVDreamConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                             num_head_channels=16, context_dim=32)

    def heads(self, ch: int) -> tuple[int, int]:
        """(n_heads, dim_head) at width ch, as the official UNet derives them (legacy=False)."""
        if self.num_head_channels != -1:
            return ch // self.num_head_channels, self.num_head_channels
        return self.num_heads, ch // self.num_heads


# The two official variants, told apart by their text width, and the Stable Diffusion release whose frozen VAE
# and text encoder each was trained with (MVDream's mvdream/configs: sd-v2-base.yaml uses OpenCLIP ViT-H, 1024
# wide = SD-2.1-base's; sd-v1.yaml uses CLIP ViT-L/14, 768 wide = SD-1.5's; the VAE is the same architecture).
VARIANTS: dict[int, tuple[str, str]] = {
    1024: ("sd-v2.1-base-4view", "stabilityai/stable-diffusion-2-1-base"),
    768: ("sd-v1.5-4view", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
}


def variant_name(cfg: MVDreamConfig) -> str:
    """'sd-v2.1-base-4view' | 'sd-v1.5-4view' | a description of a non-official width (for messages)."""
    return VARIANTS[cfg.context_dim][0] if cfg.context_dim in VARIANTS else f"a {cfg.context_dim}-wide-text variant"


def default_base(cfg: MVDreamConfig) -> str:
    """Hub id of the SD release that provides this variant's VAE and text encoder."""
    if cfg.context_dim not in VARIANTS:
        raise CheckpointError(f"an MVDream UNet with {cfg.context_dim}-wide text cross-attention is neither official "
                              "variant (1024: sd-v2.1-base-4view, 768: sd-v1.5-4view): pass base= (or set "
                              f"PNR_MVDREAM_BASE) to a Stable Diffusion whose text encoder is {cfg.context_dim} wide")
    return VARIANTS[cfg.context_dim][1]


def group_norm(ch: int, eps: float = 1e-5) -> nn.GroupNorm:
    return GroupNorm32(32, ch, eps=eps)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (SD's fp16 recipe)."""

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.weight.float(), self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).to(x.dtype)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[N] step indices -> [N, dim] sinusoidal features, cosine half first (LDM's ordering)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _mlp(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.SiLU(), nn.Linear(d, d))


class Step(nn.Sequential):
    """One input/middle/output block: runs its layers, giving each what it needs (emb, context, V)."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor, num_views: int) -> Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, MultiViewTransformer):
                x = layer(x, context, num_views)
            else:
                x = layer(x)
        return x


class ResBlock(nn.Module):
    def __init__(self, ch: int, emb_dim: int, out_ch: int):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.out_layers = nn.Sequential(group_norm(out_ch), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).to(x.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Attention(nn.Module):
    """Multi-head attention; keys/values from `context` (cross) or from x itself (self)."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner, ctx = heads * dim_head, context_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(ctx, inner, bias=False)
        self.to_v = nn.Linear(ctx, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        ctx = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)
        split = lambda z: z.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # noqa: E731  [N, heads, L, d]
        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return self.to_out(out.transpose(1, 2).flatten(2))


class GEGLU(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.proj = nn.Linear(d_in, 2 * d_out)

    def forward(self, x: Tensor) -> Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """attn1: self-attention over all V views' tokens jointly; attn2: per-view cross-attention to text."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int):
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor, num_views: int) -> Tensor:
        n, length, c = x.shape  # [B*V, L, C]
        joint = x.reshape(n // num_views, num_views * length, c)  # [B, V*L, C]
        x = (self.attn1(self.norm1(joint)) + joint).reshape(n, length, c)
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class MultiViewTransformer(nn.Module):
    """The official `SpatialTransformer3D`: norm, proj_in, transformer blocks, proj_out, residual."""

    def __init__(self, ch: int, heads: int, dim_head: int, depth: int, context_dim: int, linear: bool):
        super().__init__()
        inner = heads * dim_head
        self.linear = linear
        self.norm = group_norm(ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, inner) if linear else nn.Conv2d(ch, inner, 1)
        self.transformer_blocks = nn.ModuleList(TransformerBlock(inner, heads, dim_head, context_dim)
                                                for _ in range(depth))
        self.proj_out = nn.Linear(inner, ch) if linear else nn.Conv2d(inner, ch, 1)

    def forward(self, x: Tensor, context: Tensor, num_views: int) -> Tensor:
        n, c, h, w = x.shape
        y = self.norm(x)
        if not self.linear:
            y = self.proj_in(y)
        y = y.flatten(2).transpose(1, 2)  # [N, h*w, C]
        if self.linear:
            y = self.proj_in(y)
        for blk in self.transformer_blocks:
            y = blk(y, context, num_views)
        if self.linear:
            y = self.proj_out(y)
        y = y.transpose(1, 2).reshape(n, -1, h, w)
        if not self.linear:
            y = self.proj_out(y)
        return y + x


class MultiViewUNet(nn.Module):
    """eps(x_t [B*V, 4, h, w], step [B*V], context [B*V, L, D], camera [B*V, 16], V) -> [B*V, 4, h, w]."""

    def __init__(self, cfg: MVDreamConfig):
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        emb = 4 * mc
        self.time_embed = _mlp(mc, emb)
        self.camera_embed = _mlp(cfg.camera_dim, emb)

        def attn(ch: int) -> MultiViewTransformer:
            heads, dim_head = cfg.heads(ch)
            return MultiViewTransformer(ch, heads, dim_head, cfg.transformer_depth, cfg.context_dim,
                                        cfg.use_linear_in_transformer)

        self.input_blocks = nn.ModuleList([Step(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        skips, ch, ds = [mc], mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(Step(*layers))
                skips.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Step(Downsample(ch)))
                skips.append(ch)
                ds *= 2
        self.middle_block = Step(ResBlock(ch, emb, ch), attn(ch), ResBlock(ch, emb, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), emb, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Step(*layers))
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, camera: Tensor | None = None,
                num_views: int = 1) -> Tensor:
        assert x.shape[0] % num_views == 0, "batch must hold whole groups of views"
        dtype = self.out[2].weight.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.cfg.model_channels).to(dtype))
        if camera is not None:
            emb = emb + self.camera_embed(camera.to(dtype))
        h, context = x.to(dtype), context.to(dtype)
        hs = []
        for blk in self.input_blocks:
            h = blk(h, emb, context, num_views)
            hs.append(h)
        h = self.middle_block(h, emb, context, num_views)
        for blk in self.output_blocks:
            h = blk(torch.cat([h, hs.pop()], dim=1), emb, context, num_views)
        return self.out(h)


def camera_condition(c2w: Tensor) -> Tensor:
    """Our c2w [..., 4, 4] (OpenGL, z-up world) -> MVDream's camera input [..., 16]: position onto the
    unit sphere (mvdream.camera_utils.normalize_camera), matrix flattened row-major. No axis change needed."""
    m = c2w.clone()
    m[..., :3, 3] = m[..., :3, 3] / (m[..., :3, 3].norm(dim=-1, keepdim=True) + 1e-8)
    return m.flatten(-2)


# -- checkpoints ------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a .ckpt/.pt (torch, weights only; a top-level 'state_dict' is unwrapped) or .safetensors."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise missing_weights_error("the MVDream checkpoint", str(path), "no such file",
                                    "sd-v2.1-base-4view.pt (from huggingface.co/MVDream/MVDream)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(sd).__name__}")
    return sd


def unet_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """The UNet's tensors: keys under `model.diffusion_model.` (full LDM checkpoint) or bare UNet keys."""
    if any(k.startswith(UNET_PREFIX) for k in sd):
        return {k[len(UNET_PREFIX):]: v for k, v in sd.items() if k.startswith(UNET_PREFIX)}
    return dict(sd)


def load_unet(path: str | Path, cfg: MVDreamConfig | None = None, device="cpu",
              dtype: torch.dtype = torch.float32) -> MultiViewUNet:
    """Our MultiViewUNet with the official checkpoint's weights (strict: every key must match)."""
    sd = unet_state_dict(read_state_dict(path))
    cfg = cfg or infer_config(sd)
    with torch.device("meta"):
        unet = MultiViewUNet(cfg)
    try:
        unet.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: does not match the MVDream UNet layout ({str(e).splitlines()[0][:300]}...)") from e
    return unet.to(device, dtype).eval()


def infer_config(sd: dict[str, Tensor]) -> MVDreamConfig:
    """Distinguish the two official variants by their text width (cross-attention key width)."""
    k = next((v for n, v in sd.items() if n.endswith("attn2.to_k.weight")), None)
    if k is None or "camera_embed.0.weight" not in sd:
        raise CheckpointError("not an MVDream checkpoint: no camera_embed / cross-attention weights found")
    if k.shape[1] not in VARIANTS:
        raise CheckpointError(f"an MVDream checkpoint with {k.shape[1]}-wide text cross-attention is neither official "
                              "variant (1024: sd-v2.1-base-4view, 768: sd-v1.5-4view): pass its MVDreamConfig "
                              "(load_prior(..., mvdream_config=...))")
    return MVDreamConfig() if k.shape[1] == 1024 else MVDreamConfig.sd15()


# -- the Denoiser -------------------------------------------------------------------------------------
class MVDreamPrior(StableDiffusionPrior):
    """4-view latent denoiser: the VAE and text encoder of the variant's SD release (SD-2.1-base; SD-1.5 for
    sd-v1.5-4view) around our multi-view UNet.

    image_size 256: MVDream was trained on 256^2 renders (32^2 latents); renders of any size are resized
    to it (threestudio's MVDream guidance does the same at the 64 and 256 render resolutions).
    """

    num_views = 4
    default_guidance_scale = 50.0  # MVDream-threestudio's guidance_scale (mvdream-sd21.yaml)

    def predict_eps(self, x_t: Tensor, t: Tensor, cond: Tensor, c2w: Tensor | None = None) -> Tensor:
        """x_t [B, V, 4, h, w], t [B] in [0, 1], cond [B, L, D], c2w [B, V, 4, 4] -> eps [B, V, 4, h, w]."""
        b, v = x_t.shape[:2]
        idx = self.schedule.index(t.to(self.device)).repeat_interleave(v)
        ctx = cond.to(self.device, self.dtype).repeat_interleave(v, dim=0)
        cam = None if c2w is None else camera_condition(c2w.to(self.device).float()).flatten(0, 1)
        out = self.unet(x_t.flatten(0, 1).to(self.dtype), idx, ctx, cam, v)
        return out.float().unflatten(0, (b, v))


def load_mvdream(ckpt: str | Path, base: str | None = None, device="cpu", dtype: torch.dtype | None = None,
                 offline: bool | None = None, cfg: MVDreamConfig | None = None, image_size: int = 256) -> MVDreamPrior:
    """MVDream from a checkpoint file + the SD release (hub id or diffusers folder) for VAE/text; base None =
    the one the inferred variant was trained with (default_base). The UNet is loaded first, so a missing or
    corrupt checkpoint is reported before anything is fetched."""
    dtype = dtype or (torch.float16 if str(device).startswith("cuda") else torch.float32)
    unet = load_unet(ckpt, cfg, device=device, dtype=dtype)
    base = base or default_base(unet.cfg)
    sd = load_sd(base, device=device, dtype=dtype, cfg=SDConfig(image_size=image_size), offline=offline)
    return from_parts(unet, sd, f"{Path(ckpt).name} with base '{base}'")


def check_text_width(unet: MultiViewUNet, base: StableDiffusionPrior, what: str = "this MVDream UNet") -> None:
    """A base whose text encoder is wider/narrower than the UNet's cross-attention would fail at the first
    prediction with a bare matmul shape error: refuse here, naming the variant and the base it needs."""
    width = getattr(getattr(base.text_encoder, "config", None), "hidden_size", None)
    if width is None or width == unet.cfg.context_dim:
        return
    need = VARIANTS.get(unet.cfg.context_dim, (None, f"an SD release with a {unet.cfg.context_dim}-wide text encoder"))
    raise CheckpointError(
        f"{what}: the UNet is {variant_name(unet.cfg)} ({unet.cfg.context_dim}-wide text cross-attention) but the "
        f"VAE/text-encoder base has a {width}-wide text encoder. Use the base it was trained with ({need[1]}): "
        "pass base= to load_prior, or set PNR_MVDREAM_BASE (or unset it to get the variant's own base)")


def from_parts(unet: MultiViewUNet, base: StableDiffusionPrior, what: str = "this MVDream UNet") -> MVDreamPrior:
    """Swap `base`'s UNet for the multi-view one (keeps its VAE, text encoder, tokenizer, schedule)."""
    check_text_width(unet, base, what)
    cfg = SDConfig(image_size=base.cfg.image_size, beta_start=base.cfg.beta_start, beta_end=base.cfg.beta_end,
                   num_train_steps=base.cfg.num_train_steps)  # MVDream: eps prediction, SD's schedule
    return MVDreamPrior(unet, base.vae, base.text_encoder, base.tokenizer, cfg).to(base.device)


def official_key_layout(cfg: MVDreamConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the UNet part of an official checkpoint at `cfg`, with its `model.diffusion_model.`
    prefix (built on the meta device: no memory)."""
    with torch.device("meta"):
        unet = MultiViewUNet(cfg)
    return {UNET_PREFIX + k: tuple(v.shape) for k, v in unet.state_dict().items()}
