"""Fitting reaches >= 28 dB on held-out 64x64 views; --resume continues exactly where it stopped."""

import json

import torch

from pnr.data.transforms import load_transforms_dataset
from pnr.field.checkpoint import load_checkpoint
from pnr.fit import FitConfig, fit
from tests.field.spheres import TEST_FIELD, fitted_spheres, make_spheres_dataset


def test_fit_reaches_28db_on_heldout_views():
    ds, field, occ, metrics, run = fitted_spheres()
    assert ds.images.shape[1:3] == (64, 64) and metrics["heldout_views"] == len(ds.splits["test"]) >= 4
    assert metrics["heldout_psnr"] >= 28.0, metrics["heldout_psnr"]
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["heldout_psnr"] == metrics["heldout_psnr"]
    g, occ2, meta = load_checkpoint(run)
    assert meta["step"] == metrics["step"] and torch.equal(g.encoding_tables, field.encoding_tables)


def test_resume_continues_where_it_stopped(tmp_path):
    ds = load_transforms_dataset(make_spheres_dataset(tmp_path / "d", n=9, res=16))
    c = dict(steps=6, rays_per_batch=64, num_samples=32, checkpoint_every=2, occupancy_resolution=8)
    straight, _, m1 = fit(ds, TEST_FIELD, FitConfig(**c), tmp_path / "a", progress=False)
    _, _, mid = fit(ds, TEST_FIELD, FitConfig(**c, stop_after=3), tmp_path / "b", progress=False)
    assert mid["step"] == 3 and load_checkpoint(tmp_path / "b")[2]["step"] == 3
    resumed, _, m2 = fit(ds, TEST_FIELD, FitConfig(**c), tmp_path / "b", resume=True, progress=False)
    assert m2["step"] == 6
    a, b = straight.params_dict(), resumed.params_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # optimizer, RNG and occupancy state all restored
