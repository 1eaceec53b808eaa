"""SD-2.1 (768, v-prediction) by hub id (issue 20, gap 3): the scheduler config is fetched like the model parts
(hub-style cache, or the network on a fresh cache) and honoured (v -> eps conversion, the UNet's own image
size); a hub repo without one is refused; a local folder without one gets SD's defaults with a warning."""

import json

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.errors import CheckpointError  # noqa: E402
from pnr.priors.sd import load_sd  # noqa: E402
from tests.priors.hub_cache import put_in_hf_cache, tiny_sd_folder, use_hf_cache  # noqa: E402

REPO = "stabilityai/stable-diffusion-2-1"
V_PRED = {"_class_name": "DDIMScheduler", "prediction_type": "v_prediction", "beta_schedule": "scaled_linear",
          "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}


@pytest.fixture(scope="module")
def sd768(tmp_path_factory):
    """Tiny SD-2.1-768-v look-alike: v-prediction, UNet sample_size 12 (x2 tiny VAE = 24 px, as 96 x 8 = 768)."""
    return tiny_sd_folder(tmp_path_factory.mktemp("sd") / "sd21", text_width=32, scheduler=V_PRED, sample_size=12)


def check_v_prediction(prior):
    """eps = alpha v + sigma x_t, with v the raw UNet output."""
    assert prior.cfg.prediction_type == "v_prediction" and prior.image_size == 24
    x, t, cond = torch.randn(1, 1, 4, 12, 12), torch.tensor([0.6]), prior.encode_text(["a red chair"])
    v = prior.unet(x[:, 0], prior.schedule.index(t), encoder_hidden_states=cond).sample
    a, s = prior.schedule.alpha_sigma(t)
    assert torch.allclose(prior.predict_eps(x, t, cond, None)[:, 0], a * v + s * x[:, 0], atol=1e-5)
    assert prior.encode_images(torch.rand(1, 1, 3, 40, 40)).shape == (1, 1, 4, 12, 12)  # resized to 24 px


def test_v_prediction_from_a_hub_style_cache(sd768, tmp_path, monkeypatch):
    put_in_hf_cache(tmp_path / "cache", REPO, sd768)
    use_hf_cache(monkeypatch, tmp_path / "cache")
    check_v_prediction(load_sd(REPO, offline=True))


def test_fresh_cache_fetches_the_scheduler_config_like_the_other_parts(sd768, tmp_path, monkeypatch):
    """The cache holds the model parts (what from_pretrained downloaded) but no scheduler/: it is fetched."""
    import shutil

    import huggingface_hub

    repo = put_in_hf_cache(tmp_path / "cache", REPO, sd768)
    shutil.rmtree(next((repo / "snapshots").iterdir()) / "scheduler")
    use_hf_cache(monkeypatch, tmp_path / "cache")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def download(repo_id, filename, local_files_only=False, **kw):  # the hub: cache miss, then the network
        calls.append((repo_id, filename, local_files_only))
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"{filename} is not in the cache")
        return str(sd768 / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    check_v_prediction(load_sd(REPO))
    assert calls == [(REPO, "scheduler/scheduler_config.json", True), (REPO, "scheduler/scheduler_config.json", False)]
    calls.clear()
    with pytest.raises(CheckpointError, match="scheduler config.*stable-diffusion-2-1"):  # offline: refused, clearly
        load_sd(REPO, offline=True)
    assert calls == [(REPO, "scheduler/scheduler_config.json", True)]


def test_unsupported_scheduler_is_refused_and_a_folder_without_one_warns(sd768, tmp_path):
    import shutil

    bad = shutil.copytree(sd768, tmp_path / "bad")
    (bad / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(V_PRED, prediction_type="sample")))
    with pytest.raises(CheckpointError, match="prediction_type 'sample'"):
        load_sd(str(bad))
    shutil.rmtree(bad / "scheduler")
    with pytest.warns(UserWarning, match="assuming Stable Diffusion's epsilon"):
        prior = load_sd(str(bad))
    assert prior.cfg.prediction_type == "epsilon" and prior.image_size == 24
