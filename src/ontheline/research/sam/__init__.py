"""Sharpness-aware minimisation under label noise: batch SAM, per-example 1-SAM, L-SAM and J-SAM, and the explicit
regulariser that replaces them (``ontheline repro sam``, ``docs/sam.md``)."""

from ontheline.research.sam.methods import (
    SAM,
    VARIANTS,
    fit_fractions,
    head_penalty,
    logit_weights,
    per_example_gradients,
    perturbations,
    sam_gradient,
    set_gradients,
)

__all__ = [
    "SAM",
    "VARIANTS",
    "fit_fractions",
    "head_penalty",
    "logit_weights",
    "per_example_gradients",
    "perturbations",
    "sam_gradient",
    "set_gradients",
]
