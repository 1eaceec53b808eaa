"""An unbounded scene (spheres inside the unit ball + a textured background sphere at radius 8, cameras 3.5
units out, opaque images) that a bounded field cannot fit and a contracted one can; the bounded fit is
warned about, naming --unbounded; `pnr fit` picks the unbounded field by itself for such images."""

import functools
import tempfile
from dataclasses import replace
from pathlib import Path

from pnr.data.scene import detect_unbounded
from pnr.data.transforms import load_transforms_dataset
from pnr.field.config import FieldConfig
from pnr.fit import FitConfig, evaluate, fit
from tests.field.spheres import make_spheres_dataset
from tests.field.unbounded_scene import make_unbounded_dataset

FIELD = FieldConfig(levels=6, log2_table_size=14, base_resolution=8, max_resolution=128, hidden_dim=32)
CFG = FitConfig(steps=200, rays_per_batch=256, num_samples=32, occupancy_resolution=16, checkpoint_every=10**9,
                normalize="none")


@functools.lru_cache(maxsize=1)
def _fits():
    root = Path(tempfile.mkdtemp(prefix="pnr-unbounded-"))
    ds = load_transforms_dataset(make_unbounded_dataset(root / "data", n=32, res=16))
    out = {}
    for name, fc in (("bounded", FIELD), ("unbounded", replace(FIELD, contraction="mipnerf360"))):
        field, occ, m = fit(ds, fc, CFG, root / name, progress=False)
        train = evaluate(field, occ, ds.subset("train"), CFG.num_samples)["psnr"]
        out[name] = (m, train)
    return ds, out


def test_the_contracted_field_fits_an_unbounded_scene_the_bounded_one_cannot():
    _, out = _fits()
    (mb, train_b), (mu, train_u) = out["bounded"], out["unbounded"]
    print(f"train PSNR bounded {train_b:.2f} unbounded {train_u:.2f}; held-out {mb['heldout_psnr']:.2f} "
          f"{mu['heldout_psnr']:.2f}")
    assert train_u >= train_b + 5.0, (train_b, train_u)
    assert train_u >= 17.0, train_u
    assert mu["heldout_psnr"] >= mb["heldout_psnr"] + 1.5, (mb["heldout_psnr"], mu["heldout_psnr"])


def test_the_bounded_fit_is_warned_about_and_auto_detection_picks_unbounded(tmp_path):
    ds, out = _fits()
    warns = out["bounded"][0]["warnings"]
    assert any("--unbounded" in w for w in warns) and all("\n" not in w for w in warns)
    assert out["unbounded"][0]["warnings"] == []
    assert detect_unbounded(ds.images, ds.alpha, ds.scene)[0]
    masked = load_transforms_dataset(make_spheres_dataset(tmp_path / "s", n=4, res=8))
    assert not detect_unbounded(masked.images, masked.alpha, masked.scene)[0]  # objects with alpha stay bounded
