"""Label-free OOD accuracy estimators on one contract, and a registry of their CLI names.

>>> list(METHODS)
['aline-d', 'aline-s', 'atc-mc', 'atc-ne', 'doc', 'ac', 'cot', 'cott', 'gde']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from ontheline._validation import InputError
from ontheline.estimators._base import EstimateResult, Estimator
from ontheline.estimators.aline import ALineD, ALineS
from ontheline.estimators.calibration import (
    PAPER_BINS,
    CalibrationCurve,
    calibration_curve,
    class_aggregated_calibration_error,
    class_wise_calibration_error,
    gde_gap,
    vote_ensemble,
)
from ontheline.estimators.confidence import AC, ATC, DoC
from ontheline.estimators.dis2 import DIS2, BoundResult
from ontheline.estimators.gde import GDE
from ontheline.estimators.gde_check import GDEDiagnostics, gde_diagnostics
from ontheline.estimators.transport import COT, COTT

#: CLI name -> a factory for that estimator with its default settings, in display order.
METHODS: dict[str, Callable[..., Estimator]] = {
    "aline-d": ALineD,
    "aline-s": ALineS,
    "atc-mc": partial(ATC, score="max_confidence"),
    "atc-ne": partial(ATC, score="negative_entropy"),
    "doc": DoC,
    "ac": AC,
    "cot": COT,
    "cott": COTT,
    "gde": GDE,
}


#: Bound name -> a factory for that bound with its default settings: lower bounds on each model's
#: OOD accuracy (:class:`BoundResult`), beside the estimates of :data:`METHODS`.
BOUNDS: dict[str, Callable[..., DIS2]] = {"dis2": DIS2}


#: The methods that temperature-scale each model on the ID data (``calibrate``): the confidence
#: and transport baselines.
CALIBRATABLE = tuple(m for m, factory in METHODS.items() if "calibrate" in inspect.signature(factory).parameters)


def _estimator_class(factory: Callable[..., Estimator]) -> type[Estimator]:
    """The class a :data:`METHODS` factory makes (a class, or a ``functools.partial`` of one)."""
    return factory.func if isinstance(factory, partial) else factory  # type: ignore[return-value]


#: The methods that estimate each model from its own predictions alone, whatever the rest of the zoo.
PER_MODEL = tuple(m for m, factory in METHODS.items() if _estimator_class(factory).per_model)


def make_estimator(name: str, **settings: Any) -> Estimator:
    """The estimator called ``name`` in :data:`METHODS`, with those of ``settings`` that it takes.

    Settings shared by a family go to every member that has them: ``n_bootstrap`` to the ALine
    methods, ``calibrate`` to the confidence and transport baselines, ``keep`` and ``min_r2`` to all.

    Examples
    --------
    >>> make_estimator("atc-ne", calibrate=False, n_bootstrap=0)
    ATC(score='negative_entropy', calibrate=False, keep=(0.05, 0.98), min_r2=0.95)
    >>> make_estimator("aline-d", n_bootstrap=0, calibrate=False).n_bootstrap
    0
    """
    if name not in METHODS:
        raise InputError(f"Unknown method {name!r}; choose from {list(METHODS)}.")
    factory = METHODS[name]
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in settings.items() if k in accepted})


__all__ = [
    "AC",
    "ATC",
    "BOUNDS",
    "BoundResult",
    "CALIBRATABLE",
    "ALineD",
    "ALineS",
    "COT",
    "COTT",
    "CalibrationCurve",
    "DIS2",
    "DoC",
    "EstimateResult",
    "Estimator",
    "GDE",
    "GDEDiagnostics",
    "METHODS",
    "PAPER_BINS",
    "PER_MODEL",
    "calibration_curve",
    "class_aggregated_calibration_error",
    "class_wise_calibration_error",
    "gde_diagnostics",
    "gde_gap",
    "make_estimator",
    "vote_ensemble",
]
