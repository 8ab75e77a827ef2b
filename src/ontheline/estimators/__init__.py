"""Label-free OOD accuracy estimators on one contract, and a registry of their CLI names.

>>> list(METHODS)
['aline-d', 'aline-s', 'atc-mc', 'atc-ne', 'doc', 'ac', 'gde']
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ontheline.agreement import DEFAULT_KEEP, DEFAULT_MIN_R2
from ontheline.estimators._base import EstimateResult, Estimator
from ontheline.estimators.aline import ALineD, ALineS
from ontheline.estimators.confidence import AC, ATC, DoC
from ontheline.estimators.gde import GDE

#: CLI name -> a factory for that estimator with its default settings, in display order.
METHODS: dict[str, Callable[..., Estimator]] = {
    "aline-d": ALineD,
    "aline-s": ALineS,
    "atc-mc": partial(ATC, score="max_confidence"),
    "atc-ne": partial(ATC, score="negative_entropy"),
    "doc": DoC,
    "ac": AC,
    "gde": GDE,
}


def make_estimator(
    name: str, *, min_r2: float = DEFAULT_MIN_R2, n_bootstrap: int = 200, keep: tuple[float, float] = DEFAULT_KEEP
) -> Estimator:
    """The estimator called ``name`` in :data:`METHODS`; ``n_bootstrap`` applies to the ALine methods.

    Examples
    --------
    >>> make_estimator("atc-ne")
    ATC(score='negative_entropy', calibrate=False, keep=(0.05, 0.98), min_r2=0.95)
    >>> make_estimator("aline-d", n_bootstrap=0).n_bootstrap
    0
    """
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}; choose from {list(METHODS)}.")
    if name.startswith("aline"):
        return METHODS[name](min_r2=min_r2, n_bootstrap=n_bootstrap, keep=keep)
    return METHODS[name](min_r2=min_r2, keep=keep)


__all__ = ["AC", "ATC", "ALineD", "ALineS", "DoC", "EstimateResult", "Estimator", "GDE", "METHODS", "make_estimator"]
