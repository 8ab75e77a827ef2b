"""Rate reduction: MCR², its variational form V-MCR² (:mod:`.objectives`), and ReduNet built in closed form and
grown class by class (:mod:`.redunet`) (``ontheline repro vmcr2``, ``ontheline repro incremental``)."""

from ontheline.research.mcr2.objectives import (
    DICTIONARY_METHODS,
    ClassStatistics,
    VariationalMCR2,
    class_blocks,
    class_moments,
    coding_rate,
    compression_rate,
    dictionary_penalty,
    gradient_dictionary_step,
    logdet_pd,
    mcr2_loss,
    optimal_codes,
    rate_of_moments,
    rate_reduction,
    ritz_atoms,
    smaller_moment,
    variational_compression,
    variational_objective,
)
from ontheline.research.mcr2.redunet import ReduLayer, ReduNet, nearest_subspace

__all__ = [
    "ClassStatistics",
    "DICTIONARY_METHODS",
    "ReduLayer",
    "ReduNet",
    "VariationalMCR2",
    "class_blocks",
    "class_moments",
    "coding_rate",
    "compression_rate",
    "dictionary_penalty",
    "gradient_dictionary_step",
    "logdet_pd",
    "mcr2_loss",
    "nearest_subspace",
    "optimal_codes",
    "rate_of_moments",
    "rate_reduction",
    "ritz_atoms",
    "smaller_moment",
    "variational_compression",
    "variational_objective",
]
