"""MVDream UNet: the official checkpoint's key layout (checked against diffusers' independent LDM->diffusers
converter, which must load it into an SD UNet that then computes the same function), strict loading
from .ckpt/.safetensors, multi-view attention and camera input, one SDS step through the Denoiser."""

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.errors import CheckpointError  # noqa: E402
from pnr.priors import mvdream as mv  # noqa: E402
from pnr.render.cameras import random_orbit_views  # noqa: E402


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    unet = mv.MultiViewUNet(mv.MVDreamConfig.tiny())
    with torch.no_grad():  # make every weight matter (no accidental zeros hiding wrong wiring)
        for p in unet.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return unet.eval()


def official_state_dict(unet):
    """What an official checkpoint looks like: UNet under model.diffusion_model., plus VAE/text entries."""
    sd = {mv.UNET_PREFIX + k: v.clone() for k, v in unet.state_dict().items()}
    sd["first_stage_model.encoder.conv_in.weight"] = torch.zeros(1)
    sd["cond_stage_model.model.positional_embedding"] = torch.zeros(1)
    return sd


def test_full_size_layout_matches_the_official_checkpoint():
    """690 UNet tensors = SD's 686 + camera_embed's 4; parameter count = SD-2.1's 865,910,724 UNet + the
    1,661,440 of the camera MLP (16->1280->1280)."""
    lay = mv.official_key_layout(mv.MVDreamConfig())
    assert len(lay) == 690
    assert sum(torch.Size(s).numel() for s in lay.values()) == 865_910_724 + 1_661_440
    p = mv.UNET_PREFIX
    assert lay[p + "camera_embed.0.weight"] == (1280, 16)
    assert lay[p + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024)
    assert lay[p + "input_blocks.1.1.proj_in.weight"] == (320, 320)  # linear proj (use_linear_in_transformer)
    assert lay[p + "middle_block.1.transformer_blocks.0.ff.net.0.proj.weight"] == (10240, 1280)
    assert lay[p + "output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)  # first upsample (no attention there)
    assert lay[p + "output_blocks.5.2.conv.weight"] == (1280, 1280, 3, 3)
    assert lay[p + "input_blocks.3.0.op.weight"] == (320, 320, 3, 3)
    lay15 = mv.official_key_layout(mv.MVDreamConfig.sd15())
    assert lay15[p + "input_blocks.1.1.proj_in.weight"] == (320, 320, 1, 1)  # 1x1 conv in the SD-1.5 variant
    assert sum(torch.Size(s).numel() for s in lay15.values()) == 859_520_964 + 1_661_440


def test_layout_converts_into_a_diffusers_sd_unet_that_computes_the_same():
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    ours = tiny_unet()
    config = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                  down_block_types=("CrossAttnDownBlock2D",) * 2, up_block_types=("CrossAttnUpBlock2D",) * 2,
                  cross_attention_dim=32, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=32)
    ref = UNet2DConditionModel(**config).eval()
    conv = convert_ldm_unet_checkpoint(official_state_dict(ours), config)
    missing, unexpected = ref.load_state_dict(conv, strict=False)
    assert missing == [] and unexpected == []
    assert len(conv) == len(ours.state_dict()) - 4  # everything but camera_embed has an SD counterpart
    x, t, ctx = torch.randn(2, 4, 8, 8), torch.tensor([10, 700]), torch.randn(2, 5, 32)
    with torch.no_grad():
        a = ours(x, t, ctx, None, num_views=1)
        b = ref(x, t, encoder_hidden_states=ctx).sample
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_strict_load_from_ckpt_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    src = tiny_unet(1)
    sd = official_state_dict(src)
    torch.save(sd, tmp_path / "4view.ckpt")
    save_file(sd, str(tmp_path / "4view.safetensors"))
    x, t, ctx = torch.randn(4, 4, 8, 8), torch.full((4,), 500), torch.randn(4, 7, 32)
    cam = mv.camera_condition(random_orbit_views(1, 4).c2w)
    with torch.no_grad():
        want = src(x, t, ctx, cam, 4)
        for name in ("4view.ckpt", "4view.safetensors"):
            got = mv.load_unet(tmp_path / name, mv.MVDreamConfig.tiny())(x, t, ctx, cam, 4)
            assert torch.equal(got, want)
    # a key missing -> CheckpointError naming the file
    del sd[mv.UNET_PREFIX + "camera_embed.2.bias"]
    torch.save(sd, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        mv.load_unet(tmp_path / "bad.ckpt", mv.MVDreamConfig.tiny())
    with pytest.raises(CheckpointError, match="--prior"):
        mv.load_unet(tmp_path / "absent.ckpt", mv.MVDreamConfig.tiny())


def test_views_attend_to_each_other_and_camera_matters():
    unet = tiny_unet(2)
    x, t, ctx = torch.randn(4, 4, 8, 8), torch.full((4,), 300), torch.randn(4, 5, 32)
    cam = mv.camera_condition(random_orbit_views(1, 4, generator=torch.Generator().manual_seed(0)).c2w)
    x2 = x.clone()
    x2[3] += 1.0  # change view 3 only
    with torch.no_grad():
        joint, joint2 = unet(x, t, ctx, cam, 4), unet(x2, t, ctx, cam, 4)
        single, single2 = unet(x, t, ctx, cam, 1), unet(x2, t, ctx, cam, 1)
        other_cam = unet(x, t, ctx, cam.roll(1, 0), 4)
    assert (joint[0] - joint2[0]).abs().max() > 1e-4  # view 0 sees view 3 in multi-view mode
    assert torch.allclose(single[0], single2[0], atol=1e-6)  # ...and not when views are independent
    assert (joint - other_cam).abs().max() > 1e-4


def test_camera_condition_convention():
    c2w = random_orbit_views(2, 4).c2w  # OpenGL, z-up, radius ~3
    cam = mv.camera_condition(c2w)
    assert cam.shape == (8, 16)
    m = cam.view(8, 4, 4)
    assert torch.allclose(m[:, :3, 3].norm(dim=-1), torch.ones(8), atol=1e-5)  # unit sphere
    assert torch.allclose(m[:, :3, :3], c2w[:, :3, :3])  # axes unchanged (same convention as MVDream)
    assert torch.allclose(m[:, 3], torch.tensor([0.0, 0, 0, 1]))


def test_prior_sds_step_reaches_the_field(tmp_path):
    """pnr.guidance.sds through MVDreamPrior: 4 views of one orbit rendered from a hash-grid field."""
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field
    from pnr.guidance.sds import sds
    from pnr.priors.sd import SDConfig, random_sd, tiny_tokenizer
    from pnr.render.volume import render

    base = random_sd("tiny", tiny_tokenizer(tmp_path / "tok"), cfg=SDConfig(image_size=16))
    prior = mv.from_parts(tiny_unet(3), base)
    assert prior.num_views == 4
    gen = torch.Generator().manual_seed(0)
    field = Field(FieldConfig.tiny(), seed=0)
    cams = random_orbit_views(1, 4, generator=gen, res=12)  # renders at 12 -> resized to 16 for the VAE
    rgb = render(field, cams, num_samples=16)["rgb"].permute(0, 3, 1, 2).unsqueeze(0)  # [1, 4, 3, 12, 12]
    x = prior.encode_images(rgb)
    assert x.shape == (1, 4, 4, 8, 8)
    out = sds(prior, x, prior.encode_text(["a red chair"]), prior.null_text(1), cams.c2w.view(1, 4, 4, 4),
              torch.tensor([0.5]), 50.0, weighting="eps", generator=gen)
    out["loss"].backward()
    g = sum(p.grad.abs().sum() for p in field.parameters() if p.grad is not None)
    assert torch.isfinite(out["grad"]).all() and g > 0
