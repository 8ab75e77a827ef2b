"""Rate reduction: MCR², its variational form V-MCR² (:mod:`.rates`, :mod:`.variational`), and ReduNet built in closed form and
grown class by class (:mod:`.redunet`) (``ontheline repro vmcr2``, ``ontheline repro incremental``)."""

from ontheline.research.mcr2.rates import (
    ClassStatistics,
    class_blocks,
    class_moments,
    coding_rate,
    compression_rate,
    logdet_pd,
    mcr2_loss,
    rate_of_moments,
    rate_reduction,
    smaller_moment,
    textbook_rate_reduction,
)
from ontheline.research.mcr2.redunet import ReduLayer, ReduNet, nearest_subspace
from ontheline.research.mcr2.variational import (
    DICTIONARY_METHODS,
    VariationalMCR2,
    dictionary_penalty,
    gradient_dictionary_step,
    optimal_codes,
    ritz_atoms,
    variational_compression,
    variational_objective,
)

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
    "textbook_rate_reduction",
    "variational_compression",
    "variational_objective",
]
