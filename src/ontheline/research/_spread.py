"""The mean and spread of a number over seeds, as the multi-seed reproductions report it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The keys of every multi-seed number in a reproduction's JSON.
SPREAD_KEYS = ("mean", "std", "min", "max", "per_seed")


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "min", "max", "per_seed"}`` of one number over seeds.

    ``std`` is the sample standard deviation (``ddof=1``), 0 for a single seed; ``per_seed``
    keeps the values in the order of the seeds.

    Examples
    --------
    >>> spread([1.0, 3.0, 2.0])
    {'mean': 2.0, 'std': 1.0, 'min': 1.0, 'max': 3.0, 'per_seed': [1.0, 3.0, 2.0]}
    >>> spread([2.0])["std"]
    0.0
    """
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"spread needs one or more numbers, one per seed; got shape {array.shape}.")
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
        "per_seed": [float(v) for v in array],
    }


def pm(value: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    """``mean ± std [min, max]`` of a :func:`spread`, times ``scale``, for the tables.

    Examples
    --------
    >>> pm(spread([0.5, 0.7, 0.6]), digits=2)
    '0.60 ± 0.10 [0.50, 0.70]'
    """
    mean, std, low, high = (scale * value[key] for key in ("mean", "std", "min", "max"))
    return f"{mean:.{digits}f} ± {std:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
