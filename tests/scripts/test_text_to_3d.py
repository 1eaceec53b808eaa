"""scripts/text_to_3d.py end to end on CPU: a tiny random built-in prior, a tiny field, a few steps."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from pnr.data.domain.grammar import vocabulary
from pnr.priors.builtin.model import PriorConfig
from pnr.priors.builtin.prior import BuiltinPrior, save_prior

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "text_to_3d.py"
FAST = ["--steps", "3", "--field", "tiny", "--res-low", "8", "--res-high", "16", "--num-samples", "8",
        "--frames", "4", "--frame-res", "24", "--device", "cpu", "--quiet"]


def _script():
    spec = importlib.util.spec_from_file_location("text_to_3d", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("t2i") / "prior.safetensors"
    return save_prior(BuiltinPrior(PriorConfig.tiny(vocabulary())), path)


@pytest.mark.parametrize("schedule", ["anneal", "fixed"])
def test_text_to_3d_writes_everything(prior, tmp_path, schedule):
    out = tmp_path / "out"
    rc = _script().main(["a green striped vase", "--out", str(out), "--prior", str(prior), "--schedule", schedule,
                         *FAST])
    assert rc == 0
    rec = json.loads((out / "t2i.json").read_text())
    assert rec["caption"] == "a green striped vase" and rec["steps_done"] == 3 and len(rec["losses"]) == 3
    assert rec["edit_config"]["eta"] == 1.0 and rec["edit_config"]["revise_steps"] == 0
    assert rec["edit_config"]["method"] == {"anneal": "pnr", "fixed": "regen"}[schedule]
    assert rec["seconds"]["loop"] > 0 and rec["stopped_early_at"] is None
    read = rec["reading"]
    assert read["spec"]["category"] == "vase" and set(read["result"]["read"]) >= {"category", "color", "pattern"}
    assert 0.0 <= read["result"]["accuracy"] <= 1.0 and read["exact"]["accuracy"] >= 0.5  # the reader itself works
    assert (out / "contact.png").stat().st_size > 0 and (out / "checkpoint" / "config.json").exists()
    assert (out / rec["files"]["turntable"]).stat().st_size > 0
    assert not (out / "state.pt").exists()


def test_without_ffmpeg_frames_and_sheet(tmp_path, monkeypatch):
    mod = _script()
    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name: None)
    frames = (torch.rand(4, 8, 8, 3) * 255).to(torch.uint8).numpy()
    files = mod.write_turntable(tmp_path, frames)
    assert files["turntable"] == "turntable_frames.npz" and "imageio-ffmpeg" in files["video_error"]
    import numpy as np

    assert np.array_equal(np.load(tmp_path / "turntable_frames.npz")["frames"], frames)
    assert (tmp_path / "turntable.png").exists() and not (tmp_path / "turntable.mp4").exists()


def test_time_budget_stops_on_a_saved_state(prior, tmp_path, monkeypatch):
    mod = _script()
    monkeypatch.setattr(mod, "STATE_EVERY", 2)
    out = tmp_path / "out"
    rc = mod.main(["a red mug", "--out", str(out), "--prior", str(prior), "--max-seconds", "0", "--encoder", "none",
                   *FAST[:1], "5", *FAST[2:]])
    assert rc == 0
    rec = json.loads((out / "t2i.json").read_text())
    assert rec["stopped_early_at"] == 2 and rec["steps_done"] == 2 and len(rec["losses"]) == 2
    assert rec["reading"] == {"skipped": "--encoder none"} and not (out / "state.pt").exists()


def test_unknown_word_is_a_one_line_error(prior, tmp_path, capsys):
    rc = _script().main(["a grene vase", "--out", str(tmp_path / "o"), "--prior", str(prior), *FAST])
    assert rc == 2 and "error" in capsys.readouterr().err
