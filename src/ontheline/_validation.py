"""Shared checks and their wording. Every public entry point validates here, once."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np


class NotFittedError(ValueError, AttributeError):
    """Raised when ``estimate`` is called before ``fit``.

    Examples
    --------
    >>> import ontheline as otl
    >>> try:
    ...     otl.GDE().estimate([[0, 1, 1], [0, 1, 0]])
    ... except otl.NotFittedError as exc:
    ...     print(exc)
    This GDE instance is not fitted yet. Call 'fit' with ID predictions and labels before 'estimate'.
    """


class InputError(ValueError):
    """What the user passed cannot be used (a file, a path, a value); the message names it, says
    what was expected and what arrived, and how to fix it. The command line reports it as one
    line with exit status 2.

    Examples
    --------
    >>> import ontheline as otl
    >>> try:
    ...     raise otl.InputError("--id file 'id.npz' does not exist; pass the path of an NPZ file.")
    ... except ValueError as exc:  # an InputError is a ValueError too
    ...     print(f"{type(exc).__name__}: {exc}")
    InputError: --id file 'id.npz' does not exist; pass the path of an NPZ file.
    """


class EstimationError(ValueError):
    """A method cannot estimate this zoo on this shift (too few usable model pairs, say); the
    input itself is valid, so other methods may still run.

    Examples
    --------
    >>> import ontheline as otl
    >>> try:
    ...     otl.ALineD().fit([[0, 1, 1, 0], [0, 1, 0, 0]], [0, 1, 1, 0])
    ... except otl.EstimationError as exc:
    ...     print(exc)
    ALineD needs at least 3 models; id_preds has 2.
    """


class AgreementNotLinearWarning(UserWarning):
    """Agreement-on-the-line cannot be trusted for this shift (weakly linear, or too few distinct pairs).

    Examples
    --------
    >>> import warnings
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=3, n_samples=500)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     result = otl.ALineS(n_bootstrap=0).fit(id_preds, id_labels).estimate(ood_preds)
    >>> [w.category.__name__ for w in caught], result.trusted  # 3 models make only 3 pairs
    (['AgreementNotLinearWarning'], False)
    """


class ModelFallbackWarning(UserWarning):
    """Some models could not be estimated by the requested method and used a fallback.

    ALine-D gives the models it cannot identify ALine-S's estimate, says which in the result's
    ``notes`` and issues this warning.

    Examples
    --------
    >>> import warnings
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=8)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", otl.ModelFallbackWarning)  # a fallback becomes an error
    ...     result = otl.ALineD(n_bootstrap=0).fit(id_preds, id_labels).estimate(ood_preds)
    >>> result.notes  # every model was estimated by ALine-D itself
    ()
    """


def check_choice(owner: str, name: str, value: Any, choices: Collection[Any]) -> None:
    if value not in choices:
        shown = "{" + ", ".join(repr(c) for c in choices) + "}"
        raise InputError(f"The '{name}' parameter of {owner} must be one of {shown}. Got {value!r} instead.")


def check_number(
    owner: str, name: str, value: Any, *, low: float | None = None, high: float | None = None, integer: bool = False
) -> None:
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type or not np.isfinite(value):
        raise InputError(f"The '{name}' parameter of {owner} must be {kind}. Got {value!r} instead.")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise InputError(f"The '{name}' parameter of {owner} must be in [{lo}, {hi}]. Got {value!r} instead.")


def check_interval(owner: str, name: str, value: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(
            f"The '{name}' parameter of {owner} must be a pair (low, high). Got {value!r} instead."
        ) from None
    if not 0.0 < low < high < 1.0:
        raise InputError(f"The '{name}' parameter of {owner} must satisfy 0 < low < high < 1. Got {value!r} instead.")
    return low, high


def check_finite(name: str, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{name} contains {bad} NaN or infinite values; remove or repair those samples first.")
