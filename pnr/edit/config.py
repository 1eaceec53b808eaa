"""Settings of one edit, with the paper's values as defaults (`paper` preset) and named presets.

Every field is surfaced one-to-one as a `pnr edit` option and recorded in edit.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

METHODS = ("pnr", "sds", "pds", "idu", "regen")

# Defaults that depend on the prior (Δ_min, the identity-weight scale) are the prior's attributes
# (pnr/priors/builtin/prior.py for the built-in one, calibrated there); these are the paper's values for a prior
# without them.
DELTA_MIN_PAPER = 1000.0  # App. C, MVDream-threestudio loss units
# Settings that change how a run executes or what it writes at the end, not what it optimises: a partial run
# resumes under new values of these (e.g. one started before render_graphs became the CUDA default).
RESUME_MAY_CHANGE = ("render_graphs", "checkpoint_every", "turntable_frames", "turntable_res")


@dataclass
class EditConfig:
    method: str = "pnr"  # pnr | sds | pds | idu | regen
    eta: float | None = None  # perturbation strength; None = choose by Alg. 2
    eta_max: float = 0.6  # largest η the search may choose, App. C
    # Alg. 2's loss-decrease scale; None = per prior: 281.03 (built-in, calibrated), the paper's 1000 (SD/MVDream)
    delta_min: float | None = None
    search_steps: int = 50  # Alg. 2: 50 simulated SDS steps
    edit_steps: int = 1500  # steps of the edit phase (score distillation from the perturbed field), App. E
    # steps of the revise phase (with identity-preserving gradients), App. E; baselines spend them as more of their
    # own steps
    revise_steps: int = 1000
    seed: int = 0  # θ_0, cameras, noise
    # rendering / cameras (the prior's training distribution: MVDream's orbits)
    views: int = 0  # views per group; 0 = the prior's own (4 multi-view, 1 single-view)
    groups: int = 1  # view groups per step
    res_low: int = 32  # render resolution before the milestone
    res_high: int = 64  # from the milestone on (App. E: milestone at half the editing steps)
    milestone: float = 0.5  # fraction of the edit steps rendered at res_low, App. E
    num_samples: int = 64  # samples per ray
    # CUDA only (ignored on the CPU): replay the differentiable render + backward from CUDA graphs
    # (pnr/render/graphed.py; H200 edit step 11.9 -> 7.0 ms, docs/speed.md). Not bit-identical to the eager render
    # (no early ray termination, fixed sample budget), but on 72 test edits it differs from the committed benchmark
    # no more than a plain eager rerun does (docs/speed.md, bench/results/render_graphs_check_2026-11-30/).
    render_graphs: bool = True
    # guidance
    guidance_scale: float = 20.0  # classifier-free guidance for the built-in prior (dev split)
    weighting: str = "x0"  # "x0": paper Eq. 4 form; "eps": DreamFusion's w = sigma^2 (the SDS baseline)
    t_start: tuple[float, float] = (0.75, 0.75)  # timestep range Σ(0) at the first edit step, App. E
    t_end: tuple[float, float] = (0.02, 0.40)  # timestep range reached at t_anneal of the edit steps, App. E
    t_anneal: float = 0.8  # fraction of the edit steps over which Σ anneals from t_start to t_end, App. E
    t_baseline: tuple[float, float] = (0.02, 0.98)  # timestep range of SDS / PDS / IDU / regen, App. E
    # PnR's x0 estimate blended with its copy std-matched to the conditional x0 (MVDream-threestudio's
    # recon_std_rescale, 0.5 in the official configs; 0 = off)
    recon_std_rescale: float = 0.0
    # identity-preserving gradient (revise phase)
    # identity weights: the authors' mvdream-pnr-ipg.yaml (lambda_l1 30000, lambda_p 300) and Table 4; App. E's text
    # swaps the two names
    lambda_l1: float = 30000.0  # weight of the L1 identity term (revise phase), official config / Table 4
    lambda_p: float = 300.0  # weight of the perceptual (LPIPS) identity term (revise phase), official config / Table 4
    ipg_anneal: float = 0.5  # λ -> 0 at half the revise steps, App. E
    # multiplies (λ_L1, λ_p): the official values were set for MVDream's latent SDS at 256²; None = the prior's
    # calibrated scale (1 for SD / MVDream)
    identity_scale: float | None = None
    # cameras of the identity term: "sds" = the SDS views of the same step (the authors' mvdream_pnr_ipg.py renders the
    # source at the batch's cameras; dev ablation: edit acc 1.00 vs 0.83); "random" = one random camera ψ (Eq. 5's text)
    identity_views: str = "sds"
    # keep the Adam moments of Alg. 2's search steps after the perturbation (the authors' code runs the search on
    # the real optimiser, then overwrites the geometry; False = a fresh Adam)
    carry_adam: bool = False
    # steps from the start of the edit during which every occupancy cell counts as occupied (so an edit can grow
    # outside the source's footprint); 0 = the grid is rebuilt from the perturbed field at step 0 (η > 0) or is the
    # source's (η = 0)
    occ_warmup: int = 0
    # optimiser (threestudio's hash-grid NeRF: Adam, 1e-2 for the tables, 1e-3 for the MLPs)
    lr_encoding: float = 0.01  # Adam learning rate of the hash tables
    lr_mlp: float = 0.001  # Adam learning rate of the MLPs
    # iterative dataset update (Instruct-NeRF2NeRF with SDEdit as the image editor)
    idu_groups: int = 6  # dataset size in view groups
    idu_every: int = 10  # replace one group every this many steps (IN2N: 10)
    idu_t: tuple[float, float] = (0.4, 0.7)  # SDEdit noise level range
    idu_ddim_steps: int = 20  # denoising steps of each SDEdit / InstructPix2Pix edit
    # bookkeeping
    checkpoint_every: int = 100  # steps between writes of DIR/state.pt (resumable runs)
    turntable_frames: int = 24  # frames of the source | edit turntable.mp4 (0: none)
    turntable_res: int = 96  # its resolution in pixels

    def __post_init__(self):
        """Out-of-range settings fail here, named as on the CLI, instead of deep in the loop (or not at all)."""
        import math

        def bad(name, why, v):
            raise ValueError(f"--{name.replace('_', '-')} {why}, got {v}")

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.weighting not in ("x0", "eps"):
            bad("weighting", "must be x0 or eps", repr(self.weighting))
        for name in ("eta", "eta_max", "milestone", "t_anneal", "ipg_anneal"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
                bad(name, "must be in [0, 1]", v)
        for name in ("t_start", "t_end", "t_baseline", "idu_t"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo <= hi <= 1.0):
                bad(name, "must be LO HI with 0 <= LO <= HI <= 1", f"{lo} {hi}")
        if self.identity_views not in ("random", "sds"):
            bad("identity_views", "must be random or sds", repr(self.identity_views))
        if not (math.isfinite(self.recon_std_rescale) and 0.0 <= self.recon_std_rescale <= 1.0):
            bad("recon_std_rescale", "must be in [0, 1]", self.recon_std_rescale)
        if self.identity_scale is not None and not (math.isfinite(self.identity_scale) and self.identity_scale >= 0):
            bad("identity_scale", "must be a number >= 0", self.identity_scale)
        for name in ("search_steps", "edit_steps", "revise_steps", "views", "turntable_frames", "occ_warmup"):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0", getattr(self, name))
        for name in ("groups", "num_samples", "checkpoint_every", "idu_groups", "idu_every", "idu_ddim_steps"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1", getattr(self, name))
        for name in ("res_low", "res_high", "turntable_res"):
            if getattr(self, name) < 8:
                bad(name, "must be >= 8 pixels", getattr(self, name))
        for name in ("guidance_scale", "lr_encoding", "lr_mlp"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                bad(name, "must be a positive number", v)
        for name in ("lambda_l1", "lambda_p"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                bad(name, "must be a number >= 0", v)
        if self.method == "pnr" and self.eta is None and self.search_steps < 1:
            bad("search_steps", "must be >= 1 when η is chosen automatically (Alg. 2; or pass --eta)",
                self.search_steps)
        if self.delta_min is not None and not (math.isfinite(self.delta_min) and self.delta_min > 0):
            bad("delta_min", "must be a positive number", self.delta_min)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @staticmethod
    def from_dict(d: dict) -> "EditConfig":
        known = {f.name for f in fields(EditConfig)}
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return EditConfig(**d)


PRESETS: dict[str, dict] = {
    # the paper's counts (App. E): 50 + 1500 + 1000 steps, milestone at half the edit steps
    "paper": {},
    # finishes in under 5 minutes on a 2-core CPU with the built-in prior (the README's first command)
    "quick": {"search_steps": 12, "edit_steps": 70, "revise_steps": 30, "res_low": 32, "res_high": 48,
              "num_samples": 48, "checkpoint_every": 25, "turntable_frames": 12, "turntable_res": 64, "idu_groups": 3,
              "idu_every": 5, "idu_ddim_steps": 8},
    # the quality benchmark (bench/quality.py): ~1,200 runs over the test split (100 edits x 12 method/seed
    # variants) must fit a GPU-time budget of hours, not days, so every phase is shortened by the same
    # factor ~5 against the paper's 50 + 1500 + 1000 while keeping its proportions: η search as in Alg. 2
    # (50 steps), edit : revise = 3 : 2, resolution milestone at half the edit steps, baselines get
    # edit + revise = 500 steps of their own. No turntable/checkpoints: the harness evaluates in memory.
    "bench": {"search_steps": 50, "edit_steps": 300, "revise_steps": 200, "milestone": 0.5,
              "checkpoint_every": 10**9, "turntable_frames": 0},
}


def field_docs() -> dict[str, str]:
    """{setting: its comment in EditConfig's source} — the one place each setting is explained, reused as the
    CLI help. A trailing comment wins; otherwise the comment lines right above the field."""
    import inspect
    import re

    docs, above = {}, []
    for line in inspect.getsource(EditConfig).splitlines():
        s = line.strip()
        if s.startswith("#"):
            above.append(s.lstrip("# ").strip())
            continue
        m = re.match(r"(\w+): [^=]+=[^#]*(?:#\s*(.*))?$", s)
        if m and not s.startswith(("def ", "return")):
            docs[m.group(1)] = (m.group(2) or " ".join(above)).strip()
        above = []
    return docs


def with_prior_defaults(cfg: EditConfig, prior) -> EditConfig:
    """The one place where settings left None take the prior's value: Δ_min (the prior's `delta_min`, calibrated
    in its loss units; the paper's 1000 for a prior that has none) and the identity-term scale (the prior's
    `identity_scale`; 1 = the official weights)."""
    if cfg.delta_min is None:
        cfg = replace(cfg, delta_min=float(getattr(prior, "delta_min", DELTA_MIN_PAPER)))
    if cfg.identity_scale is None:
        cfg = replace(cfg, identity_scale=float(getattr(prior, "identity_scale", 1.0)))
    return cfg


def preset(name: str, **overrides) -> EditConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return replace(EditConfig(), **{**PRESETS[name], **overrides})
