"""The built-in camera-conditioned multi-view diffusion prior (64x64 pixels, object-domain vocabulary)."""

from pnr.priors.builtin.model import MultiViewUNet, PriorConfig
from pnr.priors.builtin.prior import BuiltinPrior, load_builtin_prior, save_prior
from pnr.priors.builtin.sample import ddim_sample, default_views

__all__ = ["BuiltinPrior", "MultiViewUNet", "PriorConfig", "ddim_sample", "default_views", "load_builtin_prior",
           "save_prior"]
