"""PnR: Perturb-and-Revise text-guided editing of 3D objects."""

__version__ = "0.1.0"
