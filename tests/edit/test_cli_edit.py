import json

import pytest

from pnr.cli import main
from pnr.data.domain.grammar import vocabulary
from pnr.field.checkpoint import save_checkpoint
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from pnr.priors.builtin.model import PriorConfig
from pnr.priors.builtin.prior import BuiltinPrior, save_prior

FAST = ["--search-steps", "2", "--edit-steps", "2", "--revise-steps", "1", "--res-low", "8", "--res-high", "8",
        "--num-samples", "8", "--turntable-frames", "2", "--turntable-res", "16", "--lambda-p", "0",
        "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_edit")
    save_checkpoint(d / "src", Field(FieldConfig.tiny(), seed=1), None, {"caption": "a red mug"})
    prior = save_prior(BuiltinPrior(PriorConfig.tiny(vocabulary())), d / "prior.safetensors")
    return d, prior


def test_pnr_edit_cli_writes_everything(setup):
    d, prior = setup
    out = d / "out"
    rc = main(["edit", str(d / "src"), "in blue", "--out", str(out), "--prior", str(prior), "--preset", "quick",
               "--eta", "0.4", *FAST])
    assert rc == 0
    rec = json.loads((out / "edit.json").read_text())
    assert rec["conditioning_text"] == "a blue mug" and rec["source_conditioning_text"] == "a red mug"
    assert rec["eta"] == 0.4 and rec["config"]["edit_steps"] == 2 and rec["preset"] == "quick"
    assert (out / "checkpoint" / "config.json").exists() and (out / "turntable.mp4").exists()
    assert rec["outputs"] == ["checkpoint", "edit.json", "turntable.mp4", "contact.png"]


@pytest.mark.parametrize("argv,msg", [
    (["   "], "empty"),
    (["in purpel"], "purple"),  # unknown word: the error names close known words
    (["in blue", "--eta", "2"], "--eta"),
    (["in blue", "--method", "pds", "--source-prompt", ""], None),
    # out-of-range settings: named, before any work (were a RuntimeError / ZeroDivisionError, or accepted)
    (["in blue", "--views", "-3"], "--views must be >= 0"),
    (["in blue", "--groups", "0"], "--groups must be >= 1"),
    (["in blue", "--milestone", "5"], "--milestone must be in [0, 1]"),
    (["in blue", "--t-start", "0.9", "0.1"], "--t-start must be LO HI"),
    (["in blue", "--guidance-scale", "nan"], "--guidance-scale must be a positive number"),
    (["in blue", "--source-prompt", "a red mug on a table"], "source caption (--source-prompt"),
])
def test_pnr_edit_cli_errors(setup, capsys, argv, msg):
    d, prior = setup
    src = d / "src" if msg is not None else d / "nowhere"
    rc = main(["edit", str(src), *argv, "--out", str(d / "bad"), "--prior", str(prior), *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error" in err and (msg is None or msg in err)


@pytest.mark.parametrize("flag,want", [([], True), (["--render-graphs"], True), (["--no-render-graphs"], False)])
def test_boolean_settings_are_flags(flag, want):
    """A bool EditConfig field is a --x / --no-x flag, not a type=bool option (bool("False") is True)."""
    from pnr.cli import build_parser
    from pnr.commands.edit import _config

    args = build_parser().parse_args(["edit", "src", "in blue", "--out", "o", "--preset", "quick", *flag])
    assert _config(args).render_graphs is want


def test_render_graphs_does_nothing_on_the_cpu(setup):
    """render_graphs (on by default) is CUDA-only: on the CPU --render-graphs and --no-render-graphs give the same
    edited weights, bit for bit, and edit.json records what was asked."""
    import torch

    from pnr.field.checkpoint import load_checkpoint

    d, prior = setup
    weights = {}
    for flag in ("--render-graphs", "--no-render-graphs"):
        out = d / f"graphs_cpu{flag}"
        assert main(["edit", str(d / "src"), "in blue", "--out", str(out), "--prior", str(prior), "--eta", "0.2",
                     flag, *FAST]) == 0
        assert json.loads((out / "edit.json").read_text())["config"]["render_graphs"] is (flag == "--render-graphs")
        weights[flag] = load_checkpoint(out / "checkpoint")[0].state_dict()
    a, b = weights.values()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_edit_setting_has_help_with_its_preset_defaults(capsys):
    """The CLI help of each EditConfig field is its comment in config.py plus the defaults per preset."""
    from dataclasses import fields

    from pnr.edit.config import EditConfig, field_docs

    docs = field_docs()
    assert all(docs.get(f.name) for f in fields(EditConfig)), [f.name for f in fields(EditConfig) if not docs.get(f.name)]
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "steps of the revise phase" in text and "(default 1000; bench 200; quick 12)" in text
    assert "weight of the L1 identity term" in text


def test_auto_eta_needs_search_steps():
    """--search-steps 0 with --eta auto used to crash inside Alg. 2; a fixed η or a baseline needs none."""
    from pnr.edit.config import EditConfig

    with pytest.raises(ValueError, match="--search-steps must be >= 1 when η is chosen automatically"):
        EditConfig(search_steps=0)
    assert EditConfig(search_steps=0, eta=0.3).search_steps == 0
    assert EditConfig(search_steps=0, method="sds").search_steps == 0


def test_the_edited_checkpoint_keeps_the_sources_scene_frame(tmp_path):
    """A source fitted from a real capture lives in a normalised frame (its meta's scene_transform): the edit is in
    the same frame, so its checkpoint carries the same transform (held-out photos and exports line up)."""
    import torch

    from pnr.data.scene import SceneTransform
    from pnr.field.checkpoint import load_checkpoint

    st = SceneTransform(torch.diag(torch.tensor([0.5, 0.5, 0.5, 1.0], dtype=torch.float64)), "cameras")
    save_checkpoint(tmp_path / "src", Field(FieldConfig.tiny(), seed=1), None,
                    {"caption": "a red mug", "scene_transform": st.to_meta()})
    prior = save_prior(BuiltinPrior(PriorConfig.tiny(vocabulary())), tmp_path / "prior.safetensors")
    out = tmp_path / "out"
    assert main(["edit", str(tmp_path / "src"), "in blue", "--out", str(out), "--prior", str(prior),
                 "--eta", "0.2", *FAST]) == 0
    _, _, meta = load_checkpoint(out / "checkpoint")
    assert meta["scene_transform"] == st.to_meta()
    back = SceneTransform.from_meta(meta)
    assert torch.allclose(back.matrix, st.matrix)
    rec = json.loads((out / "edit.json").read_text())
    assert rec["source"]["scene_transform"] == st.to_meta()
