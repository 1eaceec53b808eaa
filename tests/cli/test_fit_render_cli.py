"""`pnr fit` / `pnr render` end to end on a tiny generated dataset, and their one-line errors."""

import json

import pytest
from PIL import Image

from pnr.cli import main
from tests.field.spheres import make_spheres_dataset

FAST = ["--steps", "4", "--rays", "64", "--samples", "16", "--field", "tiny", "--quiet", "--device", "cpu",
        "--occupancy-res", "8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_spheres_dataset(tmp_path_factory.mktemp("d") / "ds", n=9, res=16)


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and needle in err, err
    return err


def test_fit_resume_and_render(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", str(data), "--out", str(run), *FAST, "--checkpoint-every", "2"]) == 0
    assert "held-out PSNR" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 4 and metrics["heldout_views"] == 1
    before = (run / "checkpoint" / "model.safetensors").read_bytes()
    # a second fit into the same folder refuses and leaves the checkpoint alone
    assert main(["fit", str(data), "--out", str(run), *FAST]) == 2
    _one_line_error(capsys, "--resume")
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before
    assert main(["fit", str(data), "--out", str(run), *FAST[2:], "--steps", "7", "--resume"]) == 0
    meta = json.loads((run / "checkpoint" / "config.json").read_text())["meta"]
    assert meta["step"] == 7
    out = tmp_path / "turn"
    assert main(["render", str(run), "--out", str(out), "--frames", "4", "--res", "16", "--samples", "16",
                 "--sheet-frames", "4", "--quiet", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:03d}.png" for i in range(4)]
    assert Image.open(out / "frame_000.png").size == (16, 16)
    assert (out / "turntable.mp4").stat().st_size > 0
    assert Image.open(out / "contact_sheet.png").size[0] > 16


def test_bad_inputs_give_one_line_errors(data, tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), *FAST]) == 2
    _one_line_error(capsys, str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "transforms.json").write_text("{oops")
    assert main(["fit", str(bad), "--out", str(tmp_path / "r"), *FAST]) == 2
    _one_line_error(capsys, "malformed JSON")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")  # a folder cannot be created under a file (works as root too)
    assert main(["fit", str(data), "--out", str(blocker / "run"), *FAST]) == 2
    _one_line_error(capsys, str(blocker / "run"))
    assert main(["render", str(tmp_path / "nock"), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "checkpoint not found")
    assert main(["fit", str(data), "--out", str(tmp_path / "r"), *FAST, "--resume"]) == 2
    _one_line_error(capsys, "nothing to resume")
    with pytest.raises(Exception):
        main(["--debug", "fit", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), *FAST])


def test_fit_keeps_the_dataset_caption_for_edit(tmp_path, capsys):
    """`pnr data object` writes the object's caption into transforms.json; `pnr fit` must carry it into the
    checkpoint, or `pnr edit RUN "..."` loses the source caption (no object in its conditioning, PDS refuses)."""
    from pnr.data.transforms import load_transforms_dataset
    from pnr.field.checkpoint import load_checkpoint

    ds = tmp_path / "mug"
    assert main(["data", "object", "a red striped mug", "--views", "4", "--res", "16", "--out", str(ds)]) == 0
    assert load_transforms_dataset(ds).caption == "a red striped mug"
    run = tmp_path / "run"
    assert main(["fit", str(ds), "--out", str(run), *FAST]) == 0
    assert load_checkpoint(run)[2]["caption"] == "a red striped mug"
    capsys.readouterr()


def test_a_dataset_without_a_caption_has_none(data):
    from pnr.data.transforms import load_transforms_dataset

    assert load_transforms_dataset(data).caption is None


def test_data_object_refuses_to_overwrite_a_dataset_unless_forced(tmp_path, capsys):
    """A second `pnr data object` into the same folder would replace the views runs were fitted on, and with fewer
    views leave stale images behind: refused; --force replaces the whole dataset."""
    ds = tmp_path / "d"
    assert main(["data", "object", "a red mug", "--views", "8", "--res", "16", "--out", str(ds)]) == 0
    capsys.readouterr()
    assert main(["data", "object", "a blue mug", "--views", "2", "--res", "16", "--out", str(ds)]) == 2
    _one_line_error(capsys, "--force")
    assert json.loads((ds / "transforms.json").read_text())["caption"] == "a red mug"  # untouched
    assert main(["data", "object", "a blue mug", "--views", "2", "--res", "16", "--out", str(ds), "--force"]) == 0
    pngs = sorted(p.relative_to(ds).as_posix() for p in ds.rglob("*.png"))
    assert len(pngs) == 2 and json.loads((ds / "transforms.json").read_text())["caption"] == "a blue mug"


def test_filesystem_errors_on_named_paths_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["data", "object", "a red mug", "--views", "2", "--res", "16", "--out", str(blocker / "d")]) == 2
    _one_line_error(capsys, str(blocker / "d"))
