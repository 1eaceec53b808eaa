"""`pnr edit --method idu --editor PATH`: the dataset update edits views with InstructPix2Pix (a tiny random
8-channel UNet saved as a diffusers folder) instead of SDEdit with the prior, end to end through the CLI."""

import functools
import json

import pytest
import torch

pytest.importorskip("diffusers")

from pnr.cli import main  # noqa: E402
from pnr.field.checkpoint import save_checkpoint  # noqa: E402
from pnr.field.config import FieldConfig  # noqa: E402
from pnr.field.field import Field  # noqa: E402
from tests.priors.test_ip2p import tiny_editor  # noqa: E402

FAST = ["--edit-steps", "2", "--revise-steps", "0", "--res-low", "8", "--res-high", "8", "--num-samples", "8",
        "--idu-groups", "2", "--idu-every", "10", "--idu-ddim-steps", "2", "--turntable-frames", "2",
        "--turntable-res", "16", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("idu_editor")
    save_checkpoint(d / "src", Field(FieldConfig.tiny(), seed=1), None, {"caption": "a red mug"})
    ed = tiny_editor(d / "tok")
    folder = d / "ip2p"
    ed.unet.save_pretrained(folder / "unet")
    ed.vae.save_pretrained(folder / "vae")
    ed.text_encoder.save_pretrained(folder / "text_encoder")
    ed.tokenizer.save_pretrained(folder / "tokenizer")
    return d, folder


def test_idu_with_the_ip2p_editor_runs_one_update(setup, monkeypatch):
    import pnr.priors.ip2p as ip2p

    d, folder = setup
    # the tiny VAE/UNet at 16 px (the real editor works at 512); the denoising steps come from --idu-ddim-steps
    monkeypatch.setattr(ip2p, "IP2PConfig", functools.partial(ip2p.IP2PConfig, image_size=16))
    calls = []
    orig = ip2p.IP2PEditor.edit_images

    def spy(self, images, instruction, cond_images=None, generator=None, t=None):
        out = orig(self, images, instruction, cond_images, generator, t)
        calls.append((tuple(images.shape), instruction, tuple(cond_images.shape), self.cfg.steps, out))
        return out

    monkeypatch.setattr(ip2p.IP2PEditor, "edit_images", spy)
    out = d / "out"
    rc = main(["edit", str(d / "src"), "make it red", "--method", "idu", "--editor", str(folder), "--out", str(out),
               *FAST])
    assert rc == 0
    assert len(calls) == 1  # 2 steps, a dataset update every 10: one update, of one group of 4 views
    shape, instruction, cond_shape, steps, edited = calls[0]
    assert shape == cond_shape == (4, 3, 8, 8) and instruction == "make it red" and steps == 2
    assert torch.isfinite(edited).all() and edited.min() >= 0 and edited.max() <= 1
    rec = json.loads((out / "edit.json").read_text())
    assert rec["method"] == "idu" and rec["editor"] == str(folder) and rec["prior"] is None
    assert rec["conditioning_text"] == "make it red" and rec["config"]["views"] == 4
    assert len(rec["losses"]) == 2 and all(map(lambda v: v == v, rec["losses"]))
    assert (out / "checkpoint" / "config.json").exists()


def test_editor_needs_method_idu(setup, capsys):
    d, folder = setup
    rc = main(["edit", str(d / "src"), "in blue", "--method", "sds", "--editor", str(folder), "--out",
               str(d / "bad"), *FAST])
    assert rc == 2 and "--method idu" in capsys.readouterr().err


def test_missing_editor_names_the_flag(setup, capsys):
    d, _ = setup
    rc = main(["edit", str(d / "src"), "make it red", "--method", "idu", "--editor", str(d / "nowhere"), "--out",
               str(d / "bad2"), *FAST])
    assert rc == 2 and "--editor" in capsys.readouterr().err
