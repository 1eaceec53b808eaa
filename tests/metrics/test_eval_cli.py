import json

import pytest
import torch

from pnr.cli import main
from pnr.metrics.eval import evaluate_frames, format_table


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from pnr.field.checkpoint import save_checkpoint
    from pnr.field.config import FieldConfig
    from pnr.field.field import Field

    d = tmp_path_factory.mktemp("eval")
    cfg = FieldConfig.tiny()
    save_checkpoint(d / "src", Field(cfg, seed=0), None, {"caption": "a red mug"})
    save_checkpoint(d / "edit", Field(cfg, seed=1), None, {"caption": "a blue mug", "source_caption": "a red mug"})
    return d


def test_pnr_eval_cli_table_and_json(ckpts, capsys):
    out = ckpts / "res.json"
    rc = main(["eval", str(ckpts / "edit"), "--source", str(ckpts / "src"), "--views", "3", "--res", "32",
               "--samples", "16", "--device", "cpu", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "CLIP dir sim" in text and "A-LPIPS" in text
    r = json.loads(out.read_text())["results"][0]
    m = r["metrics"]
    assert r["source_caption"] == "a red mug" and r["target_caption"] == "a blue mug"
    assert r["gt_from"] == "caption" and m["gt"]["changed_attributes"] == ["color"]
    for k in ("clip_dir_sim", "clip_dir_consistency", "lpips_to_source", "a_lpips"):
        assert isinstance(m[k], float)
    assert m["lpips_to_source"] > 0


def test_pnr_eval_errors_are_one_line(ckpts, capsys):
    assert main(["eval", str(ckpts / "nope")]) == 2
    assert "no such edit folder" in capsys.readouterr().err
    assert main(["eval", str(ckpts / "edit")]) == 2  # no edit.json and no --source
    assert "--source" in capsys.readouterr().err


def test_evaluate_frames_identical_edit():
    """An 'edit' that changed nothing: zero LPIPS to the source, zero directional similarity."""
    from pnr.metrics.train_encoder import TOY_VOCAB
    from pnr.metrics.encoder import DomainEncoder, EncoderConfig

    enc = DomainEncoder(EncoderConfig(res=32, widths=(8, 16), blocks_per_stage=1, embed_dim=16, text_width=16,
                                      text_layers=1, text_heads=2, max_tokens=8, vocab=TOY_VOCAB)).eval()
    g = torch.Generator().manual_seed(0)
    src = torch.rand(4, 3, 32, 32, generator=g)
    m = evaluate_frames(enc, src, src.clone(), "a red disc", "a blue disc")
    assert m["lpips_to_source"] < 1e-7 and m["clip_dir_sim"] == 0.0
    assert m["a_lpips"] == pytest.approx(m["a_lpips_source"])
    assert "| edit" in format_table([{"name": "x", "metrics": m}])


def test_pnr_eval_bad_target_spec_and_json_path_are_one_line_errors(ckpts, capsys, tmp_path):
    """An explicit --target-spec that cannot be read is an error (it used to drop the ground truth silently);
    a --json path under a file is a one-line filesystem error, not a traceback."""
    base = ["eval", str(ckpts / "edit"), "--source", str(ckpts / "src"), "--views", "2", "--res", "32",
            "--samples", "8", "--device", "cpu"]
    assert main([*base, "--target-spec", "a purpel mug"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--target-spec 'a purpel mug'" in err and "purple" in err and "\n" not in err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main([*base, "--json", str(blocker / "r.json")]) == 2
    err = capsys.readouterr()
    assert "--json" in err.err and str(blocker) in err.err and "\n" not in err.err.strip()
    assert "CLIP dir sim" not in err.out  # refused before the evaluation, not after it
    assert main([*base, "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_pnr_eval_names_what_it_was_given_instead(tmp_path, capsys):
    """A dataset or an unrelated folder is not an edit: say which, not 'pass --source'."""
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "transforms.json").write_text("{}")
    (tmp_path / "other").mkdir()
    assert main(["eval", str(tmp_path / "ds")]) == 2
    assert "a dataset; pnr eval takes" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "other")]) == 2
    assert "not a pnr edit folder or checkpoint" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "other"), "--res", "16"]) == 2
    assert "--res 16" in capsys.readouterr().err
