"""The learning-rate schedules of :func:`ontheline.research.lm.train`: linear warm-up, then cosine, linear, constant or WSD."""

from __future__ import annotations

import math

#: The learning-rate schedules :func:`train` knows (after the linear warm-up).
SCHEDULES = ("cosine", "linear", "constant", "wsd")


def lr_factor(
    step: int, steps: int, warmup: int, schedule: str = "cosine", *, min_lr_ratio: float = 0.0, decay: float = 0.2
) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based) of ``steps``.

    A linear warm-up over the first ``warmup`` steps (``(step + 1) / warmup``), then:
    ``cosine`` (half a cosine down to ``min_lr_ratio``), ``linear`` (a line down to it),
    ``constant``, or ``wsd`` (warm-up, stable, decay: constant, then a line down to it over
    the last ``decay`` share of the steps, so every checkpoint before the decay is a valid
    constant-rate model).

    Examples
    --------
    >>> [round(lr_factor(s, 10, 2, "cosine"), 3) for s in range(10)]
    [0.5, 1.0, 1.0, 0.962, 0.854, 0.691, 0.5, 0.309, 0.146, 0.038]
    >>> [round(lr_factor(s, 10, 0, "wsd", decay=0.3), 3) for s in range(10)]
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.667, 0.333]
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}.")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "wsd":
        start = wsd_decay_start(steps, warmup, decay)
        if step < start:
            return 1.0
        p = (step - start) / max(1, steps - start)
        return min_lr_ratio + (1 - min_lr_ratio) * (1 - p)
    p = (step - warmup) / max(1, steps - warmup)
    if schedule == "linear":
        return min_lr_ratio + (1 - min_lr_ratio) * (1 - p)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def wsd_decay_start(steps: int, warmup: int, decay: float = 0.2) -> int:
    """The first (0-based) step of WSD's decay: checkpoints up to this step are constant-rate models.

    Examples
    --------
    >>> wsd_decay_start(1600, 50)
    1280
    """
    return max(warmup, steps - max(1, round(decay * steps)))


__all__ = ["SCHEDULES", "lr_factor", "wsd_decay_start"]
