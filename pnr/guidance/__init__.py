"""Guidance: functions of (renders in the prior's space, cameras, conditioning, t) -> image-space gradients."""
