"""pass@k, maj@k, best@k and the bias-variance split of pass@k for sampled answers (``ontheline passk``)."""

from ontheline.research.passk.metrics import (
    Decomposition,
    Samples,
    best_at_k,
    group_samples,
    maj_at_k,
    pass_at_k,
    pass_at_k_decomposition,
)

__all__ = ["Decomposition", "Samples", "best_at_k", "group_samples", "maj_at_k", "pass_at_k", "pass_at_k_decomposition"]
