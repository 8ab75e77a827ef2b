"""The paper's measures: relative gain, the compute multiplier (in log T), and forgetting."""

from __future__ import annotations

from typing import Any

import numpy as np


def _curve(name: str, values: Any, n: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) < 1 or (n is not None and len(array) != n):
        want = f"shape ({n},)" if n is not None else "a 1-D array"
        raise ValueError(f"{name} must be {want}, one value per budget; got shape {array.shape}. "
                         "Pass one number per pretraining budget, in the order of tokens.")  # fmt: skip
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; got {array.tolist()}. Drop the budgets whose runs failed.")
    return array


def relative_gain(npt_loss: Any, spt_loss: Any) -> Any:
    """R_gain = 100 * (L_NPT - L_SPT) / L_NPT, in percent (positive: SPT is better).

    Parameters
    ----------
    npt_loss, spt_loss : float or array
        Post-finetuning domain test losses of naive (delta = 0) and specialized pretraining; they
        broadcast.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> relative_gain(2.0, 1.96)
    2.0000000000000018
    >>> relative_gain([4.0, 2.0], [4.0, 2.1]).round(6).tolist()
    [0.0, -5.0]
    """
    npt, spt = np.asarray(npt_loss, dtype=float), np.asarray(spt_loss, dtype=float)
    if np.any(npt <= 0):
        raise ValueError(f"npt_loss must be positive (a loss); got {npt.tolist()}.")
    out = 100.0 * (npt - spt) / npt
    return float(out) if out.ndim == 0 else out


def tokens_to_reach(tokens: Any, loss: Any, target: float) -> float:
    """The pretraining tokens a loss-vs-tokens curve needs to reach ``target``, interpolated in log T.

    The first budget at which the curve is at or below ``target`` is found, and log T is
    interpolated linearly in the loss between it and the budget before. A curve already at or
    below ``target`` at its first budget returns that budget (an upper bound on what it needs);
    one that never reaches it returns ``inf``.

    Parameters
    ----------
    tokens : array of shape (n_budgets,)
        Increasing, positive.
    loss : array of shape (n_budgets,)
    target : float

    Examples
    --------
    >>> round(tokens_to_reach([1, 100], [3.0, 2.0], 2.5), 9)  # half-way in the loss: half-way in log T
    10.0
    >>> tokens_to_reach([1, 100], [3.0, 2.0], 1.0)
    inf
    """
    t = _curve("tokens", tokens)
    y = _curve("loss", loss, len(t))
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise ValueError(f"tokens must be positive and increasing; got {t.tolist()}. Sort the budgets.")
    below = np.nonzero(y <= target)[0]
    if len(below) == 0:
        return float("inf")
    i = int(below[0])
    if i == 0:
        return float(t[0])
    lo, hi = np.log(t[i - 1]), np.log(t[i])
    w = (y[i - 1] - target) / (y[i - 1] - y[i])
    return float(np.exp(lo + w * (hi - lo)))


def compute_multiplier(tokens: Any, npt_loss: Any, spt_loss: Any, target: float | None = None) -> dict[str, Any]:
    """How many times fewer pretraining tokens SPT needs than NPT to reach a post-finetuning loss.

    ``T_NPT(target) / T_SPT(target)``, both read off their curves by :func:`tokens_to_reach`
    (the first budget at which a curve reaches the target, interpolated in log T). The target
    is NPT's loss at its largest budget by default (the paper's reading: the tokens SPT needs
    to match NPT's final model). When NPT's curve does not fall, NPT reaches its own final
    loss before its largest budget, and ``T_NPT`` says so.

    Parameters
    ----------
    tokens : array of shape (n_budgets,)
    npt_loss, spt_loss : array of shape (n_budgets,)
        Post-finetuning domain test loss at each budget.
    target : float, optional

    Returns
    -------
    dict
        ``{"multiplier", "target", "npt_tokens", "spt_tokens", "lower_bound", "upper_bound"}``;
        ``lower_bound`` is True when SPT already reaches the target at its first budget (the
        multiplier is then at least the value given), ``upper_bound`` when NPT does and SPT
        does not (at most the value given). The multiplier is ``nan`` when a curve never reaches the
        target within the budgets, or when both reach it at the first budget (nothing can be
        read off then).

    Examples
    --------
    >>> r = compute_multiplier([1, 10, 100], [3.0, 2.5, 2.0], [2.75, 2.25, 1.75])
    >>> round(r["multiplier"], 6), r["lower_bound"]
    (3.162278, False)
    """
    t = _curve("tokens", tokens)
    npt = _curve("npt_loss", npt_loss, len(t))
    spt = _curve("spt_loss", spt_loss, len(t))
    target = float(npt[-1]) if target is None else float(target)
    tn, ts = tokens_to_reach(t, npt, target), tokens_to_reach(t, spt, target)
    readable = np.isfinite(tn) and np.isfinite(ts) and not (tn == ts == t[0])
    ratio = tn / ts if readable else float("nan")
    return {"multiplier": float(ratio), "target": target, "npt_tokens": tn, "spt_tokens": ts,
            "lower_bound": bool(readable and spt[0] <= target),
            "upper_bound": bool(readable and npt[0] <= target and ts > t[0])}  # fmt: skip


def forgetting(general_before: Any, general_after: Any) -> Any:
    """The rise of the general loss during finetuning: after - before (positive: forgetting).

    Examples
    --------
    >>> forgetting(2.0, 2.5)
    0.5
    """
    out = np.asarray(general_after, dtype=float) - np.asarray(general_before, dtype=float)
    return float(out) if out.ndim == 0 else out


__all__ = ["compute_multiplier", "forgetting", "relative_gain", "tokens_to_reach"]
