"""`python bench/quality.py run|merge|table|...` is `pnr bench quality ...`: the benchmark is pnr/bench/quality/."""
import pathlib, sys  # noqa: E401
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # also from a checkout without an installed pnr
from pnr.bench.quality import main  # noqa: E402
if __name__ == "__main__":  # the guard `--workers K` (processes backend) needs: its workers import this file again
    raise SystemExit(main())
