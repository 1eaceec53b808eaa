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
])
def test_pnr_edit_cli_errors(setup, capsys, argv, msg):
    d, prior = setup
    src = d / "src" if msg is not None else d / "nowhere"
    rc = main(["edit", str(src), *argv, "--out", str(d / "bad"), "--prior", str(prior), *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert "error" in err and (msg is None or msg in err)


@pytest.mark.parametrize("flag,want", [([], False), (["--render-graphs"], True), (["--no-render-graphs"], False)])
def test_boolean_settings_are_flags(flag, want):
    """A bool EditConfig field is a --x / --no-x flag, not a type=bool option (bool("False") is True)."""
    from pnr.cli import build_parser
    from pnr.commands.edit import _config

    args = build_parser().parse_args(["edit", "src", "in blue", "--out", "o", "--preset", "quick", *flag])
    assert _config(args).render_graphs is want


def test_render_graphs_on_cpu_says_it_does_not_apply_and_edits_as_usual(setup, capsys):
    d, prior = setup
    out = d / "graphs_cpu"
    rc = main(["edit", str(d / "src"), "in blue", "--out", str(out), "--prior", str(prior), "--eta", "0.2",
               "--render-graphs", *FAST])
    assert rc == 0
    assert "--render-graphs applies to CUDA devices only" in capsys.readouterr().out
    assert json.loads((out / "edit.json").read_text())["config"]["render_graphs"] is True
