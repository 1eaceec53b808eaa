"""MVDream's VAE/text-encoder base follows the checkpoint's variant (issue 20, gap 2): an sd-v1.5-4view-shaped
checkpoint (768-wide text cross-attention) loads with SD-1.5's parts from a hub-style cache, a v2.1-shaped one
with SD-2.1-base's, and a base of the wrong width is a CheckpointError at load time, not a matmul error later."""

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.errors import CheckpointError  # noqa: E402
from pnr.priors import mvdream as mv  # noqa: E402
from pnr.priors.load import load_prior  # noqa: E402
from pnr.render.cameras import random_orbit_views  # noqa: E402
from tests.priors.hub_cache import put_in_hf_cache, tiny_sd_folder, use_hf_cache  # noqa: E402

SD15, SD21 = "stable-diffusion-v1-5/stable-diffusion-v1-5", "stabilityai/stable-diffusion-2-1-base"


def tiny_cfg(width: int) -> mv.MVDreamConfig:
    """Tiny UNet shaped like an official variant where it matters: text width, and (768) sd-v1.yaml's fixed
    head count with 1x1-conv projections."""
    if width == 768:
        return mv.MVDreamConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                                num_head_channels=-1, num_heads=2, context_dim=768, use_linear_in_transformer=False)
    return mv.MVDreamConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                            num_head_channels=16, context_dim=width)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A hub cache holding tiny SD-1.5 (768-wide text) and SD-2.1-base (1024) repos, and one checkpoint per variant."""
    root = tmp_path_factory.mktemp("hub")
    put_in_hf_cache(root / "cache", SD15, tiny_sd_folder(root / "sd15", text_width=768))
    put_in_hf_cache(root / "cache", SD21, tiny_sd_folder(root / "sd21", text_width=1024, seed=1))
    for width in (768, 1024):
        torch.manual_seed(width)
        unet = mv.MultiViewUNet(tiny_cfg(width))
        torch.save({mv.UNET_PREFIX + k: v for k, v in unet.state_dict().items()}, root / f"4view-{width}.ckpt")
    return root


def test_full_size_variants_pick_their_own_base():
    for cfg, base in ((mv.MVDreamConfig.sd15(), SD15), (mv.MVDreamConfig(), SD21)):
        with torch.device("meta"):
            sd = mv.MultiViewUNet(cfg).state_dict()
        assert mv.infer_config(sd) == cfg and mv.default_base(cfg) == base
    with pytest.raises(CheckpointError, match="neither official variant"):
        mv.default_base(mv.MVDreamConfig.tiny())


@pytest.mark.parametrize("width,base", [(768, SD15), (1024, SD21)])
def test_checkpoint_loads_with_its_variants_base(hub, monkeypatch, width, base):
    use_hf_cache(monkeypatch, hub / "cache")
    prior = load_prior(str(hub / f"4view-{width}.ckpt"), mvdream_config=tiny_cfg(width), image_size=16, offline=True)
    assert isinstance(prior, mv.MVDreamPrior) and prior.text_encoder.config.hidden_size == width
    cond = prior.encode_text(["a red chair"])
    assert cond.shape == (1, 77, width)
    x = prior.encode_images(torch.rand(1, 4, 3, 16, 16))
    eps = prior.predict_eps(x, torch.tensor([0.5]), cond, random_orbit_views(1, 4).c2w.view(1, 4, 4, 4))
    assert eps.shape == (1, 4, 4, 8, 8) and torch.isfinite(eps).all()


def test_base_of_the_wrong_width_is_a_checkpoint_error(hub, monkeypatch):
    use_hf_cache(monkeypatch, hub / "cache")
    monkeypatch.setenv("PNR_MVDREAM_BASE", SD21)
    with pytest.raises(CheckpointError) as e:
        load_prior(str(hub / "4view-768.ckpt"), mvdream_config=tiny_cfg(768), image_size=16, offline=True)
    msg = str(e.value)
    assert "sd-v1.5-4view" in msg and "768" in msg and "1024" in msg and SD15 in msg and "PNR_MVDREAM_BASE" in msg
    with pytest.raises(CheckpointError, match="sd-v2.1-base-4view"):  # and the other way round, through base=
        load_prior(str(hub / "4view-1024.ckpt"), base=str(hub / "sd15"), mvdream_config=tiny_cfg(1024),
                   image_size=16, offline=True)
