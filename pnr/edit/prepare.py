"""One preparation path for an edit, shared by `pnr edit`, pnr.edit.showcase and scripts/.

    prep = prepare_edit("runs/mug", "with dots", preset("quick"), "runs/mug_dots")   # checks, loads, fits
    res, record = prep.run()                                                            # edit_to_dir

`prepare_edit` does, in this order: the cheap checks (empty prompt, --editor without idu, SOURCE exists,
--out is a writable folder), device resolution (`pnr.settings.resolve_device`), the prior (or the IDU image
editor), and the source (`load_source`: a checkpoint is loaded, a transforms.json dataset is fitted into
DIR/source first). `prepare_guide` turns prompts into a Guide and fills the prior-dependent settings
(`with_prior_defaults`, the one place for Δ_min and the identity scale). The source is recorded in edit.json
as fields (`EditSource`), which `pnr eval` reads back.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pnr.edit.config import EditConfig, SourceConfig, with_prior_defaults
from pnr.errors import DataError, PnrError
from pnr.io import check_writable
from pnr.settings import resolve_device

STATE_FILE = "state.pt"  # pnr.edit.state.STATE_FILE (not imported here: that pulls in torch)


@dataclass
class EditSource:
    """What an edit started from; edit.json's `source`."""

    path: str  # SOURCE as given
    kind: str  # "checkpoint" | "dataset"
    checkpoint: str  # the checkpoint the edit read (a dataset: the one fitted into DIR/source/checkpoint)
    caption: str | None = None  # stored with the source (checkpoint meta / transforms.json)
    field_config: dict = field(default_factory=dict)
    fit: dict | None = None  # a dataset: {"field": size preset, "steps": fit steps}
    # the world -> field frame the source was fitted in (pnr.data.scene; None = identity): copied into the edited
    # checkpoint so held-out photos, renders and exports of the edit use the source's frame
    scene_transform: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def dataset_json(src: Path) -> Path | None:
    """The transforms JSON of a dataset folder or file, or None when `src` is not a dataset."""
    if src.is_file() and src.suffix == ".json" and src.name != "config.json":
        return src
    for name in ("transforms.json", "transforms_train.json"):
        if src.is_dir() and (src / name).exists():
            return src / name
    return None


def is_checkpoint(src: Path) -> bool:
    return (src / "config.json").exists() or (src / "checkpoint" / "config.json").exists() or src.name == "config.json"


def fit_dataset(data, fit_dir: str | Path, device: str, source_cfg: SourceConfig = SourceConfig(),
                resume: bool | None = None, progress: bool = True, **fit_settings):
    """Fit a field (size `source_cfg.field`, `source_cfg.fit_steps` steps) to a TransformsDataset in `fit_dir`;
    resumes a fit found there unless resume=False. -> (field, occupancy, fit metrics)."""
    from pnr.field.config import field_preset
    from pnr.fit import FitConfig, fit

    fit_dir = Path(fit_dir)
    if resume is None:
        resume = (fit_dir / "checkpoint" / "config.json").exists()
    cfg = FitConfig(steps=source_cfg.fit_steps, device=str(device), **fit_settings)
    return fit(data, field_preset(source_cfg.field), cfg, fit_dir, resume=resume, progress=progress)


def load_source(source: str | Path, out_dir: str | Path, device: str, source_cfg: SourceConfig = SourceConfig(),
                progress: bool = True):
    """-> (field, occupancy, EditSource). A transforms.json dataset is fitted into OUT/source first (resumed if
    a fit is there)."""
    from pnr.field.checkpoint import load_checkpoint

    src = Path(source)
    if not src.exists():
        raise DataError(f"{src}: no such checkpoint or dataset")
    tjson = None if is_checkpoint(src) else dataset_json(src)
    if tjson is None:
        fld, occ, meta = load_checkpoint(src, device=device)
        return fld, occ, EditSource(str(src), "checkpoint", str(src), meta.get("caption"), fld.cfg.to_dict(),
                                    scene_transform=meta.get("scene_transform"))
    from pnr.data.transforms import load_transforms_dataset

    data = load_transforms_dataset(src)
    fit_dir = Path(out_dir) / "source"
    fld, occ, metrics = fit_dataset(data, fit_dir, device, source_cfg, progress=progress)
    return fld, occ, EditSource(str(src), "dataset", str(fit_dir / "checkpoint"), data.caption, fld.cfg.to_dict(),
                                {"field": source_cfg.field, "steps": source_cfg.fit_steps},
                                metrics.get("scene_transform"))


def load_guidance(prior: str, editor: str | None, device: str, cfg: EditConfig):
    """-> (prior, editor): the prior by name or path (pnr.priors.load), or, with `editor`, an InstructPix2Pix
    image editor (IDU only; no prior)."""
    if editor:
        from pnr.priors.ip2p import IP2PConfig, load_ip2p

        return None, load_ip2p(editor, device=device, cfg=IP2PConfig(steps=cfg.idu_ddim_steps))
    from pnr.priors.load import load_prior

    return load_prior(prior, device=device), None


@dataclass
class PreparedGuide:
    guide: object  # pnr.edit.loop.Guide
    cfg: EditConfig  # with the prior's defaults filled in
    edit_text: str
    source_text: str | None


def prepare_guide(prior, source, source_occ, edit_prompt: str, source_prompt: str | None, cfg: EditConfig,
                  editor=None) -> PreparedGuide:
    """Prompts -> conditioning texts (PromptError for words the prior cannot represent) -> Guide, and the
    EditConfig with the prior-dependent settings filled (`with_prior_defaults`; with an image editor, views per
    group default to 4)."""
    from pnr.edit.loop import Guide
    from pnr.edit.prompts import resolve_prompts
    from pnr.edit.run import make_guide

    edit_text, source_text = resolve_prompts(None if editor is not None else prior, edit_prompt, source_prompt,
                                             cfg.method)
    if editor is None:
        guide = make_guide(prior, source, source_occ, edit_text, source_text)
    else:
        if cfg.method != "idu":
            raise ValueError(f"an image editor is used only by method idu, not {cfg.method!r}")
        guide = Guide(prior, None, None, None, source.eval(), source_occ, None,
                      editor=lambda imgs, src, g: editor.edit_images(imgs, edit_text, src, generator=g))
        cfg = cfg if cfg.views else replace(cfg, views=4)
    return PreparedGuide(guide, with_prior_defaults(cfg, prior), edit_text, source_text)


@dataclass
class PreparedEdit:
    """Everything an edit needs, loaded and checked; `run()` edits and writes DIR."""

    field: object
    occupancy: object
    prior: object
    editor: object
    source: EditSource
    cfg: EditConfig
    device: str
    out: Path
    prompt: str
    source_prompt: str | None
    record: dict  # extra edit.json fields (source, prior, editor, preset)
    replaces_finished: bool = False  # DIR held a finished edit, whose files the run replaces
    started_at: float = field(default_factory=time.time)

    def run(self, progress: bool = True, on_step=None):
        """-> (EditResult, the edit.json record); edit.json is written once, at the end."""
        from pnr.edit.run import edit_to_dir

        return edit_to_dir(self.field, self.occupancy, self.prior, self.prompt, self.source_prompt, self.cfg,
                           self.out, resume=True, progress=progress, editor=self.editor, extra_record=self.record,
                           on_step=on_step, started_at=self.started_at,
                           scene_transform=self.source.scene_transform)


def prepare_edit(source: str | Path, prompt: str, cfg: EditConfig, out: str | Path, *, prior: str = "builtin",
                 editor: str | None = None, device: str = "auto", source_prompt: str | None = None,
                 source_cfg: SourceConfig = SourceConfig(), restart: bool = False, progress: bool = True,
                 preset: str | None = None) -> PreparedEdit:
    """Check, resolve and load everything for one edit of SOURCE into OUT (see the module doc)."""
    t0 = time.time()
    if not prompt or not prompt.strip():
        raise PnrError("the edit prompt is empty: say what to change, e.g. \"sitting\" or \"in blue\"")
    if editor and cfg.method != "idu":
        raise PnrError(f"--editor is used only by --method idu (the dataset update's image editor), "
                       f"not --method {cfg.method}")
    device = resolve_device(device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PnrError(f"--out {out} exists and is not a folder")
    if not Path(source).exists():
        raise DataError(f"{source}: no such checkpoint or dataset")
    check_writable(out)
    if restart:
        (out / STATE_FILE).unlink(missing_ok=True)
    finished = (out / "edit.json").is_file() and not (out / STATE_FILE).exists()
    prior_obj, editor_obj = load_guidance(prior, editor, device, cfg)
    fld, occ, src = load_source(source, out, device, source_cfg, progress=progress)
    record = {"source": src.to_dict(), "prior": None if editor else prior, "editor": editor, "preset": preset}
    return PreparedEdit(fld, occ, prior_obj, editor_obj, src, cfg, device, out, prompt,
                        source_prompt or src.caption, record, finished, t0)
