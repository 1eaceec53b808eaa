"""The README's Python API block runs as written, with fewer steps (so the docs cannot drift from the code)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_api_block_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    fast = 'preset("quick", method="pnr", search_steps=2, edit_steps=4, revise_steps=2, turntable_frames=2)'
    assert 'preset("quick", method="pnr")' in code
    code = code.replace('preset("quick", method="pnr")', fast).replace("views=8, res=64", "views=4, res=32")
    code = code.replace('src = "pnr/assets/sample/red_mug"', f'src = "{ROOT / "pnr/assets/sample/red_mug"}"')
    monkeypatch.chdir(tmp_path)  # "runs/mug_blue" lands in tmp_path
    exec(compile(code, "README.md (Python API)", "exec"), {})
    out = capsys.readouterr().out.split("\n")
    assert "a blue mug" in out[0] and "edit.json" in out[0]
    assert (tmp_path / "runs" / "mug_blue" / "edit.json").is_file()
    dir_sim, lpips_src, acc = (float(x) for x in out[1].split())
    assert 0 <= lpips_src < 1 and -1 <= dir_sim <= 1 and 0 <= acc <= 1
