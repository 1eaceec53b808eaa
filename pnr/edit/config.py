"""Settings of one edit, with the paper's values as defaults (`paper` preset) and named presets.

Every field is declared once with its help text (`pnr.settings.setting`), surfaced one-to-one as a `pnr edit`
option (`pnr.settings.add_options`) and recorded in edit.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from pnr.field.config import FIELD_PRESETS
from pnr.fit_config import FitConfig
from pnr.render.orbit import EDIT_ORBIT
from pnr.settings import ConfigError, bad, help_of, setting

METHODS = ("pnr", "sds", "pds", "idu", "regen")

# Defaults that depend on the prior (Δ_min, the identity-weight scale) are the prior's attributes
# (pnr/priors/builtin/prior.py for the built-in one, calibrated there); these are the paper's values for a prior
# without them.
DELTA_MIN_PAPER = 1000.0  # App. C, MVDream-threestudio loss units
# Settings that change how a run executes or what it writes at the end, not what it optimises: a partial run
# resumes under new values of these (e.g. one started before render_graphs became the CUDA default).
RESUME_MAY_CHANGE = ("render_graphs", "lazy_budget", "low_memory", "checkpoint_every", "turntable_frames", "turntable_res")


@dataclass
class EditConfig:
    method: str = setting("pnr", "pnr | sds | pds | idu | regen", choices=METHODS)
    eta: float | None = setting(None, "perturbation strength; None = choose by Alg. 2")
    eta_max: float = setting(0.6, "largest η the search may choose, App. C")
    delta_min: float | None = setting(None,
        "Alg. 2's loss-decrease scale; None = per prior: 281.03 (built-in, calibrated), the paper's 1000 "
        "(SD/MVDream)")
    search_steps: int = setting(50, "Alg. 2: 50 simulated SDS steps")
    edit_steps: int = setting(1500, "steps of the edit phase (score distillation from the perturbed field), App. E")
    revise_steps: int = setting(1000,
        "steps of the revise phase (with identity-preserving gradients), App. E; baselines spend them as more of "
        "their own steps")
    seed: int = setting(0, "θ_0, cameras, noise")
    # rendering / cameras (the prior's training distribution: MVDream's orbits)
    views: int = setting(0, "views per group; 0 = the prior's own (4 multi-view, 1 single-view)")
    groups: int = setting(1, "view groups per step")
    res_low: int = setting(32, "render resolution before the milestone")
    res_high: int = setting(64, "from the milestone on (App. E: milestone at half the editing steps)")
    milestone: float = setting(0.5, "fraction of the edit steps rendered at res_low, App. E")
    num_samples: int = setting(64, "samples per ray")
    render_graphs: bool = setting(True,
        "CUDA only (ignored on the CPU): replay the differentiable render + backward from CUDA graphs "
        "(pnr/render/graphed.py; H200 edit step 11.9 -> 7.0 ms, docs/speed.md). Not bit-identical to the eager "
        "render (no early ray termination, fixed sample budget), but on 72 test edits it differs from the "
        "committed benchmark no more than a plain eager rerun does (docs/speed.md, "
        "bench/results/render_graphs_check_2026-11-30/).")
    lazy_budget: bool = setting(False,
        "with render_graphs: choose the render's sample budget from the counts of earlier steps, read every 16 "
        "renders, instead of reading this step's count (a host sync before every render); a step whose samples "
        "overflow it is counted and the budget doubled. Experimental: not yet measured on a GPU (docs/speed.md)")
    low_memory: bool = setting(False,
        "render in chunks of rays whose activations are recomputed in the backward, and the same for the prior's "
        "image encoder (activation checkpointing: less GPU memory for the large priors' 256² renders, about one more "
        "render forward of time; pnr/render/low_memory.py); on, the CUDA-graph render is not used. A run stopped "
        "out of memory resumes with it")
    # guidance
    guidance_scale: float = setting(20.0, "classifier-free guidance for the built-in prior (dev split)")
    weighting: str = setting("x0", "\"x0\": paper Eq. 4 form; \"eps\": DreamFusion's w = sigma^2 (the SDS baseline)")
    t_start: tuple[float, float] = setting((0.75, 0.75), "timestep range Σ(0) at the first edit step, App. E")
    t_end: tuple[float, float] = setting((0.02, 0.40), "timestep range reached at t_anneal of the edit steps, App. E")
    t_anneal: float = setting(0.8, "fraction of the edit steps over which Σ anneals from t_start to t_end, App. E")
    # The paper and the official configs run Alg. 2's search and the revise phase at the edit phase's Σ(0); these
    # two let the edit start higher than the search probes (issue 19: the built-in prior keeps a source's pose up
    # to t ≈ 0.85, and at t 0.95 the search sees no loss decrease, so it would choose η = 0).
    t_search: tuple[float, float] | None = setting(None,
        "timestep range of Alg. 2's search steps (held fixed, official [50, 0.75, ...]); None = t_start")
    t_revise: tuple[float, float] | None = setting(None,
        "Σ(0) of the revise phase, annealed to t_end over its own steps (official [0, 0.75, 0.02, 800]); "
        "None = t_start")
    t_baseline: tuple[float, float] = setting((0.02, 0.98), "timestep range of SDS / PDS / IDU / regen, App. E")
    recon_std_rescale: float = setting(0.0,
        "PnR's x0 estimate blended with its copy std-matched to the conditional x0 (MVDream-threestudio's "
        "recon_std_rescale, 0.5 in the official configs; 0 = off)")
    # identity-preserving gradient (revise phase)
    # identity weights: the authors' mvdream-pnr-ipg.yaml (lambda_l1 30000, lambda_p 300) and Table 4; App. E's text
    # swaps the two names
    lambda_l1: float = setting(30000.0, "weight of the L1 identity term (revise phase), official config / Table 4")
    lambda_p: float = setting(300.0,
        "weight of the perceptual (LPIPS) identity term (revise phase), official config / Table 4")
    ipg_anneal: float = setting(0.5, "λ -> 0 at half the revise steps, App. E")
    identity_scale: float | None = setting(None,
        "multiplies (λ_L1, λ_p): the official values were set for MVDream's latent SDS at 256²; None = the "
        "prior's calibrated scale (1 for SD / MVDream)")
    identity_views: str = setting("sds",
        "cameras of the identity term: \"sds\" = the SDS views of the same step (the authors' mvdream_pnr_ipg.py "
        "renders the source at the batch's cameras; dev ablation: edit acc 1.00 vs 0.83); \"random\" = one random "
        "camera ψ (Eq. 5's text)")
    carry_adam: bool = setting(False,
        "keep the Adam moments of Alg. 2's search steps after the perturbation (the authors' code runs the search "
        "on the real optimiser, then overwrites the geometry; False = a fresh Adam)")
    fresh_density_shift: float = setting(0.0,
        "PnR only: added to the fresh θ_0's density bias before the perturbation, so θ_0 renders empty (e.g. -4) "
        "instead of as a box of uniform fog; plays the role of threestudio's blob_magic3d density bias, which the "
        "authors' perturbation leaves untouched (pnr/edit/perturb.py, docs/edit.md); 0 = θ_0 is the field's own "
        "init")
    occ_warmup: int = setting(0,
        "steps from the start of the edit during which every occupancy cell counts as occupied (so an edit can "
        "grow outside the source's footprint); 0 = the grid is rebuilt from the perturbed field at step 0 (η > 0) "
        "or is the source's (η = 0)")
    lambda_sparsity: float | None = setting(None,
        "weight of the mean opacity of random points in the box, added to every step's loss of every method "
        "(pnr/edit/sparsity.py; against over-growth, issue 19; threestudio's lambda_sparsity, 0 in the official "
        "configs); None = the prior's value (built-in prior 1e4, chosen on dev2; the large priors 0), 0 = off")
    # optimiser (threestudio's hash-grid NeRF: Adam, 1e-2 for the tables, 1e-3 for the MLPs)
    lr_encoding: float = setting(0.01, "Adam learning rate of the hash tables")
    lr_mlp: float = setting(0.001, "Adam learning rate of the MLPs")
    # iterative dataset update (Instruct-NeRF2NeRF with SDEdit as the image editor)
    idu_groups: int = setting(6, "dataset size in view groups")
    idu_every: int = setting(10, "replace one group every this many steps (IN2N: 10)")
    idu_t: tuple[float, float] = setting((0.4, 0.7), "SDEdit noise level range")
    idu_ddim_steps: int = setting(20, "denoising steps of each SDEdit / InstructPix2Pix edit")
    # bookkeeping
    checkpoint_every: int = setting(100, "steps between writes of DIR/state.pt (resumable runs)")
    turntable_frames: int = setting(EDIT_ORBIT.frames, "frames of the source | edit turntable.mp4 (0: none)")
    turntable_res: int = setting(EDIT_ORBIT.res, "its resolution in pixels")

    def __post_init__(self):
        """Out-of-range settings fail here, named as on the CLI, instead of deep in the loop (or not at all)."""
        import math

        def bad_(name, why, v):
            bad(EditConfig, name, why, v)

        if self.method not in METHODS:
            raise ConfigError(EditConfig, "method", f"{self.method!r}: unknown method; expected one of "
                              f"{', '.join(METHODS)}")
        if self.weighting not in ("x0", "eps"):
            bad_("weighting", "must be x0 or eps", repr(self.weighting))
        for name in ("eta", "eta_max", "milestone", "t_anneal", "ipg_anneal"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
                bad_(name, "must be in [0, 1]", v)
        for name in ("t_start", "t_end", "t_baseline", "idu_t", "t_search", "t_revise"):
            if getattr(self, name) is None:
                continue
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 1.0):
                bad_(name, "must be LO HI with 0 <= LO <= HI <= 1", f"{lo} {hi}")
        if self.identity_views not in ("random", "sds"):
            bad_("identity_views", "must be random or sds", repr(self.identity_views))
        if not (math.isfinite(self.fresh_density_shift) and self.fresh_density_shift <= 0.0):
            bad_("fresh_density_shift", "must be a number <= 0", self.fresh_density_shift)
        if not (math.isfinite(self.recon_std_rescale) and 0.0 <= self.recon_std_rescale <= 1.0):
            bad_("recon_std_rescale", "must be in [0, 1]", self.recon_std_rescale)
        if self.identity_scale is not None and not (math.isfinite(self.identity_scale) and self.identity_scale >= 0):
            bad_("identity_scale", "must be a number >= 0", self.identity_scale)
        for name in ("search_steps", "edit_steps", "revise_steps", "views", "turntable_frames", "occ_warmup"):
            if getattr(self, name) < 0:
                bad_(name, "must be >= 0", getattr(self, name))
        for name in ("groups", "num_samples", "checkpoint_every", "idu_groups", "idu_every", "idu_ddim_steps"):
            if getattr(self, name) < 1:
                bad_(name, "must be >= 1", getattr(self, name))
        for name in ("res_low", "res_high", "turntable_res"):
            if getattr(self, name) < 8:
                bad_(name, "must be >= 8 pixels", getattr(self, name))
        for name in ("guidance_scale", "lr_encoding", "lr_mlp"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                bad_(name, "must be a positive number", v)
        for name in ("lambda_l1", "lambda_p", "lambda_sparsity"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                bad_(name, "must be a number >= 0", v)
        if self.method == "pnr" and self.eta is None and self.search_steps < 1:
            bad_("search_steps", "must be >= 1 when η is chosen automatically (Alg. 2; or pass --eta)",
                self.search_steps)
        if self.delta_min is not None and not (math.isfinite(self.delta_min) and self.delta_min > 0):
            bad_("delta_min", "must be a positive number", self.delta_min)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @staticmethod
    def from_dict(d: dict) -> "EditConfig":
        known = {f.name for f in fields(EditConfig)}
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return EditConfig(**d)


@dataclass(frozen=True)
class Preset:
    """A named EditConfig: what it is for, and the config itself."""

    name: str
    description: str
    config: EditConfig

    def overrides(self) -> dict:
        """{setting: value} where this preset differs from EditConfig's defaults."""
        base = EditConfig()
        return {f.name: getattr(self.config, f.name) for f in fields(EditConfig)
                if getattr(self.config, f.name) != getattr(base, f.name)}


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("paper", "the paper's counts (App. E): 50 + 1500 + 1000 steps, milestone at half the edit steps",
           EditConfig()),
    # The README's first command: <= 60 s of edit time on the 2-core CPU (issue 21). The built-in prior's CFG forward
    # (~0.45 s a step there, ~70 % of a step) sets the cost, so the steps are few (12 + 30 + 12, was 12 + 70 + 30) and
    # the learning rates 3x the paper's so the colour still converges in them (the sample's blue edit: dir sim 0.883,
    # PSNR to the true blue mug 19.13 dB, vs 0.904 / 21.01 with 12 + 70 + 30 steps at 1x). 12 search steps keep Alg. 2's
    # first/last-2 window of before (k = 2) and so the same η (0.0 for the sample's colour edit).
    Preset("quick", "about a minute or less on a 2-core CPU with the built-in prior (the README's first command): "
           "12 + 30 + 12 steps at 3x the learning rates",
           EditConfig(search_steps=12, edit_steps=30, revise_steps=12, res_low=32, res_high=48, num_samples=48,
                      lr_encoding=0.03, lr_mlp=0.003, checkpoint_every=25, turntable_frames=12, turntable_res=64,
                      idu_groups=3, idu_every=5, idu_ddim_steps=8)),
    # ~1,200 runs over the test split (100 edits x 12 method/seed variants) must fit a GPU-time budget of hours,
    # not days, so every phase is shortened by the same factor ~5 against the paper's 50 + 1500 + 1000 while
    # keeping its proportions: η search as in Alg. 2 (50 steps), edit : revise = 3 : 2, resolution milestone at
    # half the edit steps, baselines get edit + revise = 500 steps of their own. No turntable/checkpoints: the
    # harness evaluates in memory.
    Preset("bench", "the quality benchmark (bench/quality.py): the paper's phases ~5x shorter in the same "
           "proportions (50 + 300 + 200 steps), no turntable or checkpoints",
           EditConfig(search_steps=50, edit_steps=300, revise_steps=200, milestone=0.5, checkpoint_every=10**9,
                      turntable_frames=0)),
)}


@dataclass(frozen=True)
class SourceConfig:
    """How `pnr edit` (pnr.edit.prepare.load_source) turns a transforms.json SOURCE into a field first."""

    field: str = setting("small", "field size when SOURCE is a dataset", choices=tuple(FIELD_PRESETS))
    fit_steps: int = setting(FitConfig.__dataclass_fields__["steps"].default, "steps when SOURCE is a dataset")

    def __post_init__(self):
        if self.fit_steps <= 0:
            bad(SourceConfig, "fit_steps", "must be positive", self.fit_steps)


def field_docs() -> dict[str, str]:
    """{setting: its help text} — declared once, with the field (`setting(default, help)`), reused as the CLI
    help."""
    return help_of(EditConfig)


def with_prior_defaults(cfg: EditConfig, prior) -> EditConfig:
    """The one place where settings left None take the prior's value: Δ_min (the prior's `delta_min`, calibrated
    in its loss units; the paper's 1000 for a prior that has none) and the identity-term scale (the prior's
    `identity_scale`; 1 = the official weights) and the opacity penalty (the prior's `lambda_sparsity`; 0 = off,
    as in the official configs)."""
    if cfg.delta_min is None:
        cfg = replace(cfg, delta_min=float(getattr(prior, "delta_min", DELTA_MIN_PAPER)))
    if cfg.identity_scale is None:
        cfg = replace(cfg, identity_scale=float(getattr(prior, "identity_scale", 1.0)))
    if cfg.lambda_sparsity is None:
        cfg = replace(cfg, lambda_sparsity=float(getattr(prior, "lambda_sparsity", 0.0)))
    return cfg


def preset(name: str, **overrides) -> EditConfig:
    """The preset's EditConfig with `overrides` (setting=value) applied."""
    if name not in PRESETS:
        raise ConfigError(Preset, "preset", f"{name!r}: unknown preset; expected one of {', '.join(PRESETS)}")
    return replace(PRESETS[name].config, **overrides)
