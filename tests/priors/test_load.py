"""`load_prior` / presets: names and paths resolve to the right adapter; missing weights give one clear error."""

import json

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.errors import CheckpointError, PnrError  # noqa: E402
from pnr.priors.load import PRIORS, detect_kind, load_prior, preset_for  # noqa: E402


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    """A tiny random SD saved in the diffusers layout (what a user's local SD folder looks like)."""
    from pnr.priors.sd import SDConfig, random_sd, tiny_tokenizer

    root = tmp_path_factory.mktemp("sd")
    p = random_sd("tiny", tiny_tokenizer(root / "tok"), cfg=SDConfig(image_size=16))
    p.unet.save_pretrained(root / "unet")
    p.vae.save_pretrained(root / "vae")
    p.text_encoder.save_pretrained(root / "text_encoder")
    p.tokenizer.save_pretrained(root / "tokenizer")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root


def test_presets_carry_the_papers_settings():
    mv = PRIORS["mvdream"]
    assert (mv.num_views, mv.image_size, mv.render_res, mv.guidance_scale) == (4, 256, (64, 256), 50.0)
    assert mv.filename == "sd-v2.1-base-4view.pt" and mv.base == "stabilityai/stable-diffusion-2-1-base"
    assert PRIORS["sd15"].guidance_scale == 100.0 and PRIORS["sd15"].num_views == 1
    assert PRIORS["sd21"].source == "stabilityai/stable-diffusion-2-1-base"
    assert PRIORS["builtin"].image_size == 64 and PRIORS["builtin"].num_views == 4


def test_detect_kind(sd_dir, tmp_path):
    from safetensors.torch import save_file

    assert detect_kind(sd_dir) == "sd" and preset_for(str(sd_dir)) is PRIORS["sd15"]
    ip2p = tmp_path / "ip2p"
    ip2p.mkdir()
    (ip2p / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInstructPix2PixPipeline"}))
    with pytest.raises(PnrError, match="InstructPix2Pix"):
        detect_kind(ip2p)
    save_file({"w": torch.zeros(1)}, str(tmp_path / "b.safetensors"), metadata={"pnr_prior_version": "1"})
    assert detect_kind(tmp_path / "b.safetensors") == "builtin"
    save_file({"w": torch.zeros(1)}, str(tmp_path / "m.safetensors"))
    assert detect_kind(tmp_path / "m.safetensors") == "mvdream"
    torch.save({"w": torch.zeros(1)}, tmp_path / "m.ckpt")
    assert detect_kind(tmp_path / "m.ckpt") == "mvdream"
    with pytest.raises(CheckpointError, match="sd15, sd21, mvdream, builtin"):
        detect_kind(tmp_path / "nothing-here")


def test_load_sd_and_mvdream_from_paths(sd_dir, tmp_path):
    from pnr.priors.mvdream import UNET_PREFIX, MultiViewUNet, MVDreamConfig, MVDreamPrior
    from pnr.priors.sd import StableDiffusionPrior

    sd = load_prior(str(sd_dir), image_size=16)
    assert isinstance(sd, StableDiffusionPrior) and sd.num_views == 1 and sd.image_size == 16
    torch.manual_seed(0)
    unet = MultiViewUNet(MVDreamConfig.tiny())
    torch.save({UNET_PREFIX + k: v for k, v in unet.state_dict().items()}, tmp_path / "4view.ckpt")
    mv = load_prior(str(tmp_path / "4view.ckpt"), base=str(sd_dir), mvdream_config=MVDreamConfig.tiny(), image_size=16)
    assert isinstance(mv, MVDreamPrior) and mv.num_views == 4
    x = mv.encode_images(torch.rand(1, 4, 3, 16, 16))
    from pnr.render.cameras import random_orbit_views

    eps = mv.predict_eps(x, torch.tensor([0.5]), mv.encode_text(["a hat"]), random_orbit_views(1, 4).c2w.view(1, 4, 4, 4))
    assert eps.shape == (1, 4, 4, 8, 8) and torch.isfinite(eps).all()


def test_missing_hub_weights_name_where_we_looked(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as e:
        load_prior("sd15", offline=True)
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in str(e.value) and "--prior" in str(e.value)
    with pytest.raises(CheckpointError) as e:
        load_prior("mvdream", offline=True)
    assert "MVDream/MVDream" in str(e.value) and "sd-v2.1-base-4view.pt" in str(e.value)


def test_builtin_by_name_and_path(tmp_path):
    from pnr.priors.builtin.model import PriorConfig
    from pnr.priors.builtin.prior import BuiltinPrior, save_prior

    cfg = PriorConfig.tiny(["a", "red", "chair"])
    path = tmp_path / "prior.safetensors"
    save_prior(BuiltinPrior(cfg), path)
    assert detect_kind(path) == "builtin" and detect_kind(tmp_path) == "builtin"
    p = load_prior(str(path))
    assert isinstance(p, BuiltinPrior) and p.num_views == cfg.num_views
