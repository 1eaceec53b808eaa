"""InstructPix2Pix editor on a tiny random 8-channel UNet (built from configs): the dataset-update step
(edit views, then fit the render to them) reaches the learnable render; guidance and error paths."""

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.errors import CheckpointError, PromptError  # noqa: E402
from pnr.priors.ip2p import IP2PConfig, IP2PEditor, combine_guidance, edit_images, load_ip2p  # noqa: E402
from pnr.priors.sd import UNET_CONFIGS, VAE_CONFIGS, TEXT_CONFIGS, tiny_tokenizer  # noqa: E402


def tiny_editor(tmp_path, in_channels=8):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = tiny_tokenizer(tmp_path / "tok", words=("make", "it", "red"))
    cfg = dict(UNET_CONFIGS["tiny"], in_channels=in_channels)
    unet = UNet2DConditionModel(**cfg, norm_num_groups=32)
    vae = AutoencoderKL(**VAE_CONFIGS["tiny"])
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                        **TEXT_CONFIGS["tiny"]))
    return IP2PEditor(unet, vae, text, tok, IP2PConfig(image_size=16, steps=2))


@pytest.fixture(scope="module")
def editor(tmp_path_factory):
    return tiny_editor(tmp_path_factory.mktemp("ip2p"))


def test_guidance_combination():
    ti, i, u = torch.tensor(3.0), torch.tensor(2.0), torch.tensor(1.0)
    assert combine_guidance(ti, i, u, 7.5, 1.5) == 1 + 7.5 * 1 + 1.5 * 1
    assert combine_guidance(ti, i, u, 1.0, 1.0) == ti  # scales of 1 = the fully conditioned prediction


def test_dataset_update_step_reaches_the_field(editor):
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field
    from pnr.render.cameras import random_orbit_views
    from pnr.render.volume import render as volume_render

    ed = editor
    g = torch.Generator().manual_seed(0)
    src = torch.rand(2, 3, 24, 24, generator=g)  # the dataset's source views
    field = Field(FieldConfig.tiny(), seed=0)
    cams = random_orbit_views(1, 2, generator=g, res=24)
    render = volume_render(field, cams, num_samples=16)["rgb"].permute(0, 3, 1, 2)  # [2, 3, 24, 24]
    edited = edit_images(ed, render.detach(), "make it red", cond_images=src, generator=torch.Generator().manual_seed(1))
    assert edited.shape == (2, 3, 24, 24) and edited.min() >= 0 and edited.max() <= 1
    again = ed.edit_images(render.detach(), "make it red", src, generator=torch.Generator().manual_seed(1))
    assert torch.equal(edited, again)  # seeded: reproducible
    other = ed.edit_images(render.detach(), "red", src, generator=torch.Generator().manual_seed(1))
    assert (other - edited).abs().max() > 0  # the instruction matters
    loss = (render - edited).abs().mean()  # the baseline then fits the field to the edited views
    loss.backward()
    assert sum(p.grad.abs().sum() for p in field.parameters() if p.grad is not None) > 0


def test_errors(editor, tmp_path):
    with pytest.raises(PromptError):
        editor.edit_images(torch.rand(1, 3, 16, 16), "  ")
    with pytest.raises(CheckpointError, match="8 input channels"):
        tiny_editor(tmp_path, in_channels=4)
    with pytest.raises(CheckpointError, match="--editor"):
        load_ip2p(str(tmp_path / "missing"), offline=True)
