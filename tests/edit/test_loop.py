import json
import math

import pytest
import torch

from pnr.edit.config import EditConfig, preset
from pnr.edit.loop import STATE_FILE, load_state
from pnr.edit.prompts import resolve_prompts
from pnr.edit.run import edit_to_dir
from pnr.errors import CheckpointError, NumericalError, PromptError
from pnr.field.checkpoint import load_checkpoint
from pnr.field.config import FieldConfig
from pnr.field.field import Field
from tests.edit.toy_prior import ToyDenoiser


def _cfg(**kw) -> EditConfig:
    base = dict(search_steps=5, edit_steps=4, revise_steps=2, res_low=8, res_high=8, num_samples=8,
                checkpoint_every=2, turntable_frames=0, lambda_p=0.0)
    base.update(kw)
    return EditConfig(**base)


def _source() -> Field:
    return Field(FieldConfig.tiny(), seed=4)


def test_end_to_end_tiny_loop_yields_a_loadable_checkpoint(tmp_path):
    den = ToyDenoiser(num_views=2)
    res, rec = edit_to_dir(_source(), None, den, "blue", None, _cfg(turntable_frames=2, turntable_res=16), tmp_path, progress=False,
                           turntable_samples=16)
    field, _, meta = load_checkpoint(tmp_path / "checkpoint")
    p = field.params_dict()
    assert all(torch.equal(p[k], v) for k, v in res.field.params_dict().items())
    saved = json.loads((tmp_path / "edit.json").read_text())
    assert saved["method"] == "pnr" and saved["eta_auto"] and len(saved["eta_trace"]) == 5
    assert 0.0 <= saved["eta"] <= 0.6 and saved["eta"] == res.eta
    assert len(saved["losses"]) == 6 and saved["config"]["edit_steps"] == 4 and saved["seed"] == 0
    assert (tmp_path / "turntable.mp4").stat().st_size > 0 and (tmp_path / "contact.png").exists()
    assert not (tmp_path / STATE_FILE).exists()  # finished runs leave no partial state
    assert meta["edit"]["method"] == "pnr"


@pytest.mark.parametrize("method", ["sds", "pds", "idu", "regen"])
def test_baselines_run_through_the_same_loop(method, tmp_path):
    den = ToyDenoiser(num_views=2)
    cfg = _cfg(method=method, edit_steps=2, revise_steps=1, idu_groups=2, idu_every=2, idu_ddim_steps=2)
    res, rec = edit_to_dir(_source(), None, den, "blue", "red", cfg, tmp_path, progress=False)
    assert len(res.losses) == 3 and rec["eta"] == {"regen": 1.0}.get(method, 0.0)
    assert all(torch.isfinite(torch.tensor(res.losses)))


def _interrupted_run(den, cfg: EditConfig, out) -> None:
    """An edit stopped (KeyboardInterrupt) after edit step 2 — its state was written, step 3's was not."""

    def kill(phase, step, loss):
        if phase == "edit" and step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        edit_to_dir(_source(), None, den, "green", None, cfg, out, progress=False, on_step=kill)


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    den = ToyDenoiser(num_views=2)
    cfg = _cfg()
    ref, _ = edit_to_dir(_source(), None, den, "green", None, cfg, tmp_path / "a", progress=False)

    _interrupted_run(den, cfg, tmp_path / "b")
    st = load_state(tmp_path / "b")
    assert st is not None and st["step"] == 2
    res, _ = edit_to_dir(_source(), None, den, "green", None, cfg, tmp_path / "b", progress=False)
    assert res.eta == ref.eta and res.losses == ref.losses
    assert ref.resumed_from == 0 and res.resumed_from == 2
    a, b = ref.field.params_dict(), res.field.params_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_source_or_settings(tmp_path):
    den = ToyDenoiser(num_views=2)

    _interrupted_run(den, _cfg(), tmp_path)
    with pytest.raises(CheckpointError, match="another source"):
        edit_to_dir(Field(FieldConfig.tiny(), seed=99), None, den, "green", None, _cfg(), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="other settings"):
        edit_to_dir(_source(), None, den, "green", None, _cfg(seed=3), tmp_path, progress=False)


def test_resume_of_a_run_started_before_a_setting_existed(tmp_path):
    """A state.pt written before a setting was added (here ipg_anneal) resumes when that setting is at its
    default, and is refused when it is not."""
    den = ToyDenoiser(num_views=2)

    _interrupted_run(den, _cfg(), tmp_path)
    st = torch.load(tmp_path / STATE_FILE, weights_only=True)
    del st["config"]["ipg_anneal"]
    torch.save(st, tmp_path / STATE_FILE)
    with pytest.raises(CheckpointError, match="ipg_anneal"):
        edit_to_dir(_source(), None, den, "green", None, _cfg(ipg_anneal=0.3), tmp_path, progress=False)
    res, _ = edit_to_dir(_source(), None, den, "green", None, _cfg(), tmp_path, progress=False)
    assert len(res.losses) > 0


def test_resume_under_new_execution_settings_gives_the_same_edit(tmp_path):
    """A run started with render_graphs off (the default until 2026-11-30) and other checkpoint/turntable
    settings resumes under the new ones, and on the CPU ends exactly where an uninterrupted run does."""
    den = ToyDenoiser(num_views=2)
    old = _cfg(render_graphs=False, checkpoint_every=2)
    ref, _ = edit_to_dir(_source(), None, den, "green", None, _cfg(), tmp_path / "a", progress=False)
    _interrupted_run(den, old, tmp_path / "b")
    res, _ = edit_to_dir(_source(), None, den, "green", None, _cfg(render_graphs=True, checkpoint_every=3),
                         tmp_path / "b", progress=False)
    assert res.losses == ref.losses
    a, b = ref.field.params_dict(), res.field.params_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    _interrupted_run(den, old, tmp_path / "c")
    with pytest.raises(CheckpointError, match="lr_mlp"):  # an optimisation setting still may not change
        edit_to_dir(_source(), None, den, "green", None, _cfg(lr_mlp=0.002), tmp_path / "c", progress=False)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_state(tmp_path):
    den = ToyDenoiser(num_views=2, nan_after=9)  # 5 search calls (CFG batched) + a few edit steps
    with pytest.raises(NumericalError, match="last good state"):
        edit_to_dir(_source(), None, den, "green", None, _cfg(checkpoint_every=1), tmp_path, progress=False)
    st = load_state(tmp_path)
    assert st is not None and st["step"] >= 1
    assert all(torch.isfinite(v).all() for v in st["params"].values())


def test_prompt_errors():
    den = ToyDenoiser()
    with pytest.raises(PromptError, match="empty"):
        resolve_prompts(den, "   ", None, "pnr")
    with pytest.raises(PromptError, match="source"):
        resolve_prompts(den, "blue", None, "pds")
    with pytest.raises(PromptError, match="unknown"):
        den.encode_text(["a purple mug"])


def test_builtin_prior_prompts_compose_with_the_source_caption():
    from pnr.data.domain.grammar import vocabulary
    from pnr.priors.builtin.model import PriorConfig
    from pnr.priors.builtin.prior import BuiltinPrior

    prior = BuiltinPrior(PriorConfig.tiny(vocabulary()))
    text, src = resolve_prompts(prior, "sitting", "a red figure standing", "pnr")
    assert "sitting" in text and "red figure" in text and "standing" in src
    assert resolve_prompts(prior, "a blue mug", None, "pnr") == ("a blue mug", None)
    with pytest.raises(PromptError, match="close"):
        resolve_prompts(prior, "wearing a hatt", None, "pnr")


def test_presets():
    assert preset("paper").edit_steps == 1500 and preset("paper").revise_steps == 1000
    assert preset("paper").search_steps == 50 and preset("paper").lambda_l1 == 30000.0
    assert preset("paper").lambda_p == 300.0  # the official config's order (App. E's text swaps the names)
    q = preset("quick", seed=2)
    assert q.seed == 2 and q.edit_steps < 200
    with pytest.raises(ValueError):
        preset("nope")
    with pytest.raises(ValueError):
        EditConfig(method="magic")


def test_identity_term_adds_to_the_revise_loss_only(tmp_path):
    """The IPG view is rendered in the SDS pass; its L1 to the source render (Eq. 5) enters the revise steps."""
    den = ToyDenoiser(num_views=2)
    runs = {}
    for lam in (0.0, 1000.0):
        cfg = _cfg(eta=0.3, search_steps=0, revise_steps=2, lambda_l1=lam, ipg_anneal=1.0)
        res, _ = edit_to_dir(_source(), None, den, "blue", None, cfg, tmp_path / str(lam), progress=False)
        runs[lam] = res.losses
    assert runs[0.0][:4] == runs[1000.0][:4]  # edit phase: same random draws, no identity term
    assert runs[1000.0][4] > runs[0.0][4] + 1.0  # first revise step: + w * λ_L1 * L1 with L1 > 0 after the edit


def test_resume_refuses_another_prompt(tmp_path):
    """The prompts are part of what a partial run is: resuming "green" into a run started for "blue" is refused
    (it would mix both edits under one label), and the same prompt resumes."""
    den = ToyDenoiser(num_views=2)
    _interrupted_run(den, _cfg(), tmp_path)  # started for "green"
    with pytest.raises(CheckpointError, match="'green'.*not.*'blue'"):
        edit_to_dir(_source(), None, den, "blue", None, _cfg(), tmp_path, progress=False)
    res, rec = edit_to_dir(_source(), None, den, "green", None, _cfg(), tmp_path, progress=False)
    assert len(res.losses) > 0 and rec["conditioning_text"] == "green"


def test_resumed_run_reports_the_time_of_all_its_sessions(tmp_path):
    """edit.json's total covers every session, so it is never below the sum of its phases."""
    den = ToyDenoiser(num_views=2)
    _interrupted_run(den, _cfg(), tmp_path)
    _, rec = edit_to_dir(_source(), None, den, "green", None, _cfg(), tmp_path, progress=False)
    s = rec["seconds"]
    assert s["total"] >= s["search"] + s["edit+revise"]


def test_out_of_gpu_memory_names_the_settings_to_lower(tmp_path, monkeypatch):
    """torch's OOM in a step (raised here by hand: the CPU cannot run out of CUDA memory) becomes a one-line
    DeviceMemoryError naming --res-high / --num-samples / --groups with their values; the saved state is kept."""
    from pnr.edit import methods
    from pnr.errors import DeviceMemoryError

    real = methods.Method.loss
    calls = {"n": 0}

    def loss(self, s):
        calls["n"] += 1
        if calls["n"] == 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, s)

    monkeypatch.setattr(methods.Method, "loss", loss)
    with pytest.raises(DeviceMemoryError) as e:
        edit_to_dir(_source(), None, ToyDenoiser(num_views=2), "blue", None, _cfg(method="sds"), tmp_path,
                    progress=False)
    msg = str(e.value)
    assert "out of GPU memory at step 3" in msg and "--res-high (now 8)" in msg and "--num-samples (now 8)" in msg
    assert "--groups (now 1)" in msg and "Tried to allocate 2.00 GiB" in msg and str(tmp_path / STATE_FILE) in msg
    assert "Add --low-memory" in msg and (tmp_path / STATE_FILE).exists()


def test_out_of_memory_in_the_turntable_keeps_the_edit_and_a_rerun_only_writes_the_outputs(tmp_path, monkeypatch):
    from pnr.edit import run
    from pnr.errors import DeviceMemoryError

    real = run.turntable_frames

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    monkeypatch.setattr(run, "turntable_frames", oom)
    with pytest.raises(DeviceMemoryError) as e:
        edit_to_dir(_source(), None, ToyDenoiser(num_views=2), "blue", None, _cfg(turntable_frames=4, turntable_res=16),
                    tmp_path, progress=False)
    msg = str(e.value)
    assert "rendering the turntable (4 frames at 16 px" in msg and "--turntable-res" in msg and "1.00 GiB" in msg
    assert (tmp_path / "checkpoint").is_dir() and (tmp_path / STATE_FILE).exists()
    monkeypatch.setattr(run, "turntable_frames", real)
    res, rec = edit_to_dir(_source(), None, ToyDenoiser(num_views=2), "blue", None,
                           _cfg(turntable_frames=4, turntable_res=16), tmp_path, progress=False)
    assert res.resumed_from == 6 and "turntable.mp4" in rec["outputs"] and not (tmp_path / STATE_FILE).exists()


def test_low_memory_edit_runs_and_resumes_a_run_started_without_it(tmp_path):
    """--low-memory (checkpointed render + encoder) optimises the field like the default path and may be switched
    on when resuming (it is how a run stopped out of memory continues)."""
    src = _source()
    res, _ = edit_to_dir(src, None, ToyDenoiser(num_views=2), "blue", None, _cfg(low_memory=True), tmp_path / "a",
                         progress=False)
    assert all(math.isfinite(v) for v in res.losses) and len(res.losses) == 6
    moved = sum(float((a - b).detach().abs().sum()) for a, b in zip(res.field.parameters(), src.parameters()))
    assert moved > 0
    # a run interrupted after step 2 on the default path resumes with low_memory and finishes from there
    den = ToyDenoiser(num_views=2)
    _interrupted_run(den, _cfg(), tmp_path / "b")
    res, _ = edit_to_dir(_source(), None, den, "green", None, _cfg(low_memory=True), tmp_path / "b", progress=False)
    assert res.resumed_from == 2 and len(res.losses) == 6 and all(math.isfinite(v) for v in res.losses)


def test_losses_are_read_in_batches_and_the_first_non_finite_one_is_named():
    """The loop reads its losses every READ_EVERY steps (no host sync per step); the values are exact and a NaN is
    reported at its own step, not at the step that happened to read it."""
    from pnr.edit.loop import _LossReader

    got: list[float] = []
    r = _LossReader(got, None, every=3)
    assert not r.add(torch.tensor(1.5), "edit", 0) and not r.add(torch.tensor(2.25), "edit", 1) and got == []
    assert r.add(torch.tensor(0.1), "edit", 2) and got == [1.5, 2.25, float(torch.tensor(0.1))]
    assert r.add(torch.tensor(4.0), "edit", 3, force=True) and got[-1] == 4.0  # forced: before a checkpoint
    r.add(torch.tensor(float("nan")), "revise", 4)
    with pytest.raises(NumericalError, match="revise loss became nan at step 4"):
        r.add(torch.tensor(5.0), "revise", 5, force=True)
    assert len(got) == 4  # nothing of the failed batch is kept
