"""Editing a real-scene checkpoint (issue 17 item 6): an unbounded (contracted) field with a scene transform,
edited end to end by `pnr edit --prior PATH` with a tiny random Stable Diffusion (nothing downloaded); the
built-in prior refuses a real scene's caption with its vocabulary error."""

import json

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.cli import main  # noqa: E402
from pnr.data.domain.grammar import vocabulary  # noqa: E402
from pnr.data.scene import SceneTransform  # noqa: E402
from pnr.field.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from pnr.field.config import FieldConfig  # noqa: E402
from pnr.field.field import Field  # noqa: E402
from pnr.priors.builtin.model import PriorConfig  # noqa: E402
from pnr.priors.builtin.prior import BuiltinPrior, save_prior  # noqa: E402
from pnr.priors.sd import random_sd, tiny_tokenizer  # noqa: E402
from pnr.render.occupancy_contracted import ContractedOccupancyGrid, make_occupancy  # noqa: E402
from tests.edit.test_cli_edit import FAST  # noqa: E402

CAPTION = "a stone vase in a garden"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("real_scene")
    cfg = FieldConfig(**{**FieldConfig.tiny().to_dict(), "contraction": "mipnerf360"})
    field = Field(cfg, seed=2)
    occ = make_occupancy(8, cfg.bound, cfg.contraction)
    occ.update(field, 0, generator=torch.Generator().manual_seed(0))
    st = SceneTransform(torch.diag(torch.tensor([0.25, 0.25, 0.25, 1.0], dtype=torch.float64)), "cameras")
    save_checkpoint(d / "src", field, occ, {"caption": CAPTION, "scene_transform": st.to_meta()})
    sd = random_sd("tiny", tiny_tokenizer(d / "tok", words=("stone", "vase", "garden", "red")), seed=0)
    root = d / "sd"
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        getattr(sd, name).save_pretrained(root / name)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(
        '{"prediction_type": "epsilon", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}')
    return d, root


@pytest.mark.parametrize("method", ["pds", "pnr"])
def test_a_real_scene_checkpoint_is_edited_end_to_end_with_a_path_prior(scene, method):
    d, sd = scene
    out = d / f"out_{method}"
    extra = ["--eta", "0.3"] if method == "pnr" else []
    rc = main(["edit", str(d / "src"), "a red vase in a garden", "--out", str(out), "--prior", str(sd),
               "--method", method, *extra, *FAST, "--turntable-frames", "0"])
    assert rc == 0
    rec = json.loads((out / "edit.json").read_text())
    assert rec["config"]["method"] == method and rec["source_conditioning_text"] == CAPTION
    field, occ, meta = load_checkpoint(out / "checkpoint")
    src, _, src_meta = load_checkpoint(d / "src")
    assert meta["scene_transform"] == src_meta["scene_transform"]  # the edit lives in the source's frame
    assert field.cfg.contraction == "mipnerf360" and isinstance(occ, ContractedOccupancyGrid)
    assert not torch.equal(field.encoding_tables, src.encoding_tables)  # the edit changed the field


def test_the_builtin_prior_refuses_a_real_scene_caption(scene, tmp_path, capsys):
    d, _ = scene
    prior = save_prior(BuiltinPrior(PriorConfig.tiny(vocabulary())), tmp_path / "prior.safetensors")
    rc = main(["edit", str(d / "src"), "in blue", "--out", str(tmp_path / "o"), "--prior", str(prior), *FAST])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and ("garden" in err or "stone" in err), err
