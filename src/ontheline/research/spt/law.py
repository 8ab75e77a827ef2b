"""The overfitting scaling law of specialized pretraining (Baek et al., 2026, Section 5; ``others.md`` §1.1).

The domain test loss after ``T`` pretraining tokens with a domain fraction ``delta`` is the
train loss plus a train-test gap, each a power law in ``T`` whose coefficients depend on delta
(``x = T / t_ref``; ``t_ref`` a fixed reference budget that only rescales the amplitudes):

- ``L_train(T, delta) = A_train * x**b_train(delta) + C_train(delta)``;
- ``L_gap(T, delta) = A_gap(delta) * x**b_gap(delta)``;
- ``L_test = L_train + L_gap``;
- ``b_x(delta) = delta * b_{x,s} + (1 - delta) * b_{x,g}`` for x in {train, gap};
- ``A_gap(delta) = a1 * delta**a2 * exp(a3 * delta)`` (a Gamma-kernel shape);
- ``C_train(delta) = k0 - k1 * log(delta + k2) - k3 * delta``.

:func:`fit_law` fits the twelve parameters jointly to measured train and test curves with
``scipy.optimize.least_squares`` on log losses, with bounds on the signs of the exponents
(``b_train_s, b_train_g <= 0``, ``b_gap_s >= 0 >= b_gap_g``), of the amplitudes, and of ``k0, k1 >= 0``
(a non-negative loss floor that falls as the domain share grows), from a few
starting points (the lowest cost wins). The post-finetuning correction
``Delta(T) = a * x**b + c`` (the drop of the test loss during finetuning) is fitted per delta by
:func:`fit_correction`; the predicted post-finetuning loss is ``L_test - Delta``, and
:func:`optimal_delta` takes its argmin over a grid of deltas. :func:`overfitting_onset` is the
root of ``dL_test/dT`` (closed form). :func:`recommend_delta` does all of it for a user.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The law's parameters, in the order of the fitted vector.
PARAMS = ("A_train", "b_train_s", "b_train_g", "k0", "k1", "k2", "k3", "a1", "a2", "a3", "b_gap_s", "b_gap_g")

_LOWER = np.array([1e-6, -3.0, -3.0, 0.0, 0.0, 1e-4, -200.0, 1e-8, 0.0, -200.0, 0.0, -5.0])
_UPPER = np.array([1e3, 0.0, 0.0, 50.0, 50.0, 10.0, 200.0, 1e4, 5.0, 200.0, 5.0, 0.0])


@dataclass(frozen=True)
class Law:
    """The overfitting scaling law with its parameters (see the module).

    Attributes
    ----------
    params : dict of str to float
        The twelve parameters of :data:`PARAMS`.
    t_ref : float
        The reference budget, in tokens (``x = T / t_ref``).
    r2 : float
        The coefficient of determination on the fitted losses (train and test together), nan
        for a law made by hand.
    r2_test : float
        The same on the test losses alone.

    Examples
    --------
    >>> law = Law(dict(zip(PARAMS, [1.0, -0.6, -0.2, 1.5, 0.3, 0.05, 2.0, 3.0, 1.5, -4.0, 3.0, -0.5])), t_ref=1e6)
    >>> round(float(law.test(1e6, 0.1)), 4) == round(float(law.train(1e6, 0.1) + law.gap(1e6, 0.1)), 4)
    True
    """

    params: Mapping[str, float]
    t_ref: float = 1.0
    r2: float = float("nan")
    r2_test: float = float("nan")

    def _p(self) -> np.ndarray:
        return np.array([self.params[k] for k in PARAMS], dtype=float)

    def train(self, tokens: Any, delta: Any) -> np.ndarray:
        """L_train at budgets ``tokens`` and fractions ``delta`` (they broadcast)."""
        return _train(self._p(), np.asarray(tokens, dtype=float) / self.t_ref, np.asarray(delta, dtype=float))

    def gap(self, tokens: Any, delta: Any) -> np.ndarray:
        """L_gap = A_gap(delta) * x**b_gap(delta)."""
        return _gap(self._p(), np.asarray(tokens, dtype=float) / self.t_ref, np.asarray(delta, dtype=float))

    def test(self, tokens: Any, delta: Any) -> np.ndarray:
        """L_test = L_train + L_gap."""
        return self.train(tokens, delta) + self.gap(tokens, delta)

    def to_dict(self) -> dict[str, Any]:
        return {"params": {k: float(v) for k, v in self.params.items()}, "t_ref": float(self.t_ref),
                "r2": float(self.r2), "r2_test": float(self.r2_test)}  # fmt: skip


def _positive(name: str, value: Any) -> float:
    """``value`` as a float, refused unless it is a finite positive number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number; got {value!r}.")
    return float(value)


def _b(ps: float, pg: float, delta: np.ndarray) -> np.ndarray:
    return delta * ps + (1 - delta) * pg


def _train(p: np.ndarray, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
    a, bs, bg, k0, k1, k2, k3 = p[:7]
    return a * x ** _b(bs, bg, delta) + k0 - k1 * np.log(delta + k2) - k3 * delta


def _gap(p: np.ndarray, x: np.ndarray, delta: np.ndarray) -> np.ndarray:
    a1, a2, a3, bs, bg = p[7:]
    with np.errstate(divide="ignore", invalid="ignore"):
        amplitude = np.where(delta > 0, a1 * np.abs(delta) ** a2 * np.exp(a3 * delta), 0.0)
    return amplitude * x ** _b(bs, bg, delta)


def _grid(tokens: Any, deltas: Any, train_loss: Any, test_loss: Any) -> tuple[np.ndarray, ...]:
    t = np.asarray(tokens, dtype=float)
    d = np.asarray(deltas, dtype=float)
    if t.ndim != 1 or len(t) < 3 or np.any(t <= 0):
        raise ValueError(f"tokens must be a 1-D array of at least 3 positive budgets; got {t.tolist()}. "
                         "Pass the pretraining tokens of each checkpoint.")  # fmt: skip
    if d.ndim != 1 or len(d) < 2 or np.any((d <= 0) | (d > 1)):
        raise ValueError(f"deltas must be a 1-D array of at least 2 domain fractions in (0, 1]; got {d.tolist()}. "
                         "The law is fitted on SPT runs (delta = 0 has no train loss on the domain): drop delta = 0.")  # fmt: skip
    out = [t, d]
    for name, values in (("train_loss", train_loss), ("test_loss", test_loss)):
        array = np.asarray(values, dtype=float)
        if array.shape != (len(d), len(t)):
            raise ValueError(f"{name} must have shape (n_deltas, n_budgets) = {(len(d), len(t))}; got {array.shape}. "
                             "Give one row per delta, one column per budget.")  # fmt: skip
        if not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise ValueError(f"{name} must be finite and positive (losses in nats).")
        out.append(array)
    return tuple(out)


def _starts(d: np.ndarray, tr: np.ndarray, te: np.ndarray) -> list[np.ndarray]:
    floor = float(tr.min()) * 0.8
    span = max(float(tr.max() - tr.min()), 1e-3)
    gap = max(float((te - tr).mean()), 1e-3)
    starts = []
    for b_tr, b_gs, a2 in ((-0.3, 1.0, 1.0), (-0.8, 2.0, 0.5), (-0.1, 0.5, 2.0), (-0.5, 3.0, 1.5)):
        starts.append(np.array([span, b_tr * 2, b_tr, floor, 0.1, 0.1, 0.0, gap / np.mean(d) ** a2, a2, 0.0,
                                b_gs, -0.3]))  # fmt: skip
    return [np.clip(s, _LOWER + 1e-9, _UPPER - 1e-9) for s in starts]


def fit_law(tokens: Any, deltas: Any, train_loss: Any, test_loss: Any, *, t_ref: float | None = None) -> Law:
    """Fit the overfitting scaling law to measured domain train and test loss curves.

    Parameters
    ----------
    tokens : array of shape (n_budgets,)
        Pretraining tokens of each checkpoint (positive).
    deltas : array of shape (n_deltas,)
        Domain fractions in (0, 1] (delta = 0 is not an SPT run: leave it out).
    train_loss, test_loss : array of shape (n_deltas, n_budgets)
        Domain loss on the train set (the repeated domain data) and on held-out domain data.
    t_ref : float, optional
        The reference budget (the geometric mean of ``tokens`` by default).

    Returns
    -------
    Law
        With ``r2`` (train and test losses together) and ``r2_test``.

    Raises
    ------
    ValueError
        On shapes or values that cannot be fitted (the message says which argument and how to fix it).
    """
    from scipy.optimize import least_squares

    t, d, tr, te = _grid(tokens, deltas, train_loss, test_loss)
    t_ref = float(np.exp(np.log(t).mean())) if t_ref is None else _positive("t_ref", t_ref)
    x, dd = np.meshgrid(t / t_ref, d)

    def residuals(p: np.ndarray) -> np.ndarray:
        ptr = _train(p, x, dd)
        pte = ptr + _gap(p, x, dd)
        return np.concatenate(
            [np.log(np.maximum(ptr, 1e-9)) - np.log(tr), np.log(np.maximum(pte, 1e-9)) - np.log(te)]
        ).ravel()

    best = None
    for p0 in _starts(d, tr, te):
        r = least_squares(residuals, p0, bounds=(_LOWER, _UPPER), method="trf", x_scale="jac", max_nfev=400,
                          ftol=1e-12, xtol=1e-12, gtol=1e-12)  # fmt: skip
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None
    p = best.x
    ptr = _train(p, x, dd)
    pte = ptr + _gap(p, x, dd)
    return Law(dict(zip(PARAMS, map(float, p))), t_ref=t_ref, r2=_r2(np.concatenate([tr, te]), np.concatenate([ptr, pte])),
               r2_test=_r2(te, pte))  # fmt: skip


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else float("nan")


def overfitting_onset(law: Law, delta: float) -> float:
    """The budget T* where the law's test loss stops falling: the root of dL_test/dT (``inf`` if none).

    With ``u = b_train(delta) < 0 < v = b_gap(delta)``, ``dL_test/dx = 0`` at
    ``x**(v - u) = -A_train * u / (A_gap * v)``; without a positive gap exponent the loss falls
    for ever.

    Examples
    --------
    >>> law = Law(dict(zip(PARAMS, [1.0, -0.5, -0.5, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5])), t_ref=1.0)
    >>> round(overfitting_onset(law, 1.0), 6)  # x**1 = 1 * 0.5 / (1 * 0.5): x = 1
    1.0
    """
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 <= delta <= 1:
        raise ValueError(f"delta must be one fraction in [0, 1] (0.05 for 5%); got {delta!r}.")
    p = law._p()
    d = np.asarray(delta, dtype=float)
    u, v = _b(p[1], p[2], d), _b(p[10], p[11], d)
    amp = float(_gap(p, np.asarray(1.0), d))
    if not (v > 0 and u < 0 and amp > 0):
        return float("inf")
    ratio = -p[0] * u / (amp * v)
    return float(law.t_ref * ratio ** (1.0 / (v - u)))


def measured_onset(tokens: Any, test_loss: Any) -> float | None:
    """Where a measured test-loss curve has its minimum, refined by a parabola in log T; None if at the last budget.

    Examples
    --------
    >>> round(measured_onset([1, 10, 100, 1000], [3.0, 2.0, 2.0, 3.0]), 6)  # symmetric around 10**1.5
    31.622777
    >>> measured_onset([1, 10, 100], [3.0, 2.0, 1.0]) is None
    True
    """
    t = np.log(np.asarray(tokens, dtype=float))
    y = np.asarray(test_loss, dtype=float)
    i = int(np.argmin(y))
    if i == len(y) - 1:
        return None
    if i == 0:
        return float(np.exp(t[0]))
    a, b, _ = np.polyfit(t[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    return float(np.exp(-b / (2 * a))) if a > 0 else float(np.exp(t[i]))


def fit_correction(tokens: Any, drop: Any, *, t_ref: float = 1.0) -> tuple[float, float, float]:
    """Fit the post-finetuning correction ``Delta(T) = a * (T / t_ref)**b + c`` to measured drops (one delta).

    Parameters
    ----------
    tokens : array of shape (n_budgets,)
    drop : array of shape (n_budgets,)
        ``L_test(pretrained) - L_test(pretrained + finetuned)`` at each budget.
    t_ref : float

    Returns
    -------
    (a, b, c)
    """
    from scipy.optimize import least_squares

    t = np.asarray(tokens, dtype=float) / _positive("t_ref", t_ref)
    y = np.asarray(drop, dtype=float)
    if t.ndim != 1 or y.shape != t.shape or len(t) < 2:
        raise ValueError(
            f"tokens and drop must be 1-D arrays of the same length >= 2; got {t.shape} and {y.shape}. "
            "Pass one drop per finetuned budget, at two budgets or more."
        )
    if not (np.all(t > 0) and np.all(np.isfinite(y))):
        raise ValueError("tokens must be positive and drop finite; check the budgets and the measured losses.")
    if len(t) == 2:  # two points: a line in log T is all the data says
        b = 0.0
        slope = (y[1] - y[0]) / np.log(t[1] / t[0])
        return float(slope), float(b), float(y[0] - slope * np.log(t[0]))  # a * log x + c, flagged by b == 0

    def residuals(p: np.ndarray) -> np.ndarray:
        return p[0] * t ** p[1] + p[2] - y

    best = None
    for b0 in (-1.0, -0.3, 0.3, 1.0):
        r = least_squares(residuals, [y[0] - y[-1] or 0.1, b0, y[-1]], bounds=([-1e3, -3.0, -1e3], [1e3, 3.0, 1e3]))
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None
    return tuple(float(v) for v in best.x)  # type: ignore[return-value]


def correction(abc: Sequence[float], tokens: Any, t_ref: float = 1.0) -> np.ndarray:
    """``Delta(T)`` of a fitted ``(a, b, c)`` (``b == 0`` from two points: ``a * log x + c``)."""
    a, b, c = abc
    x = np.asarray(tokens, dtype=float) / t_ref
    return a * np.log(x) + c if b == 0 else a * x**b + c


def predict_post_ft(law: Law, corrections: Mapping[float, Sequence[float]], tokens: Any, delta: float) -> np.ndarray:
    """The predicted post-finetuning loss ``L_test(T, delta) - Delta(T, delta)``.

    ``corrections`` maps each measured delta to its ``(a, b, c)``; between measured deltas
    ``Delta`` is interpolated linearly in delta (and held constant beyond the ends) -- an
    assumption of this implementation, not of the paper, which fits it per measured delta.
    """
    ds = np.array(sorted(corrections), dtype=float)
    t = np.asarray(tokens, dtype=float)
    values = np.array([correction(corrections[k], t, law.t_ref) for k in sorted(corrections)])
    drop = np.array([np.interp(delta, ds, values[:, j]) for j in range(values.shape[1])]) if values.ndim == 2 else \
        np.interp(delta, ds, values)  # fmt: skip
    return law.test(t, delta) - drop


def optimal_delta(
    law: Law, tokens: float, grid: Any = None, corrections: Mapping[float, Sequence[float]] | None = None
) -> tuple[float, float]:
    """The delta of ``grid`` with the lowest predicted loss at budget ``tokens``, and that loss.

    Post-finetuning loss when ``corrections`` are given (:func:`predict_post_ft`), else the
    pretraining test loss ``L_test``. The grid defaults to 0.5% to 30% in steps of 0.5%.
    """
    grid, losses = _predicted(law, tokens, grid, corrections)
    i = int(np.argmin(losses))
    return float(grid[i]), float(losses[i])


def _predicted(
    law: Law, tokens: float, grid: Any, corrections: Mapping[float, Sequence[float]] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The delta grid (0.5% to 30% by default) and the predicted loss at each of its deltas, budget ``tokens``."""
    grid = np.arange(0.005, 0.3001, 0.005) if grid is None else np.asarray(grid, dtype=float)
    if grid.ndim != 1 or len(grid) == 0 or np.any((grid <= 0) | (grid > 1)):
        raise ValueError(f"grid must be a non-empty 1-D array of fractions in (0, 1]; got {grid!r}.")
    if corrections:
        losses = np.array([float(np.ravel(predict_post_ft(law, corrections, [tokens], d))[0]) for d in grid])
    else:
        losses = np.array([float(law.test(tokens, d)) for d in grid])
    return grid, losses


@dataclass(frozen=True)
class Recommendation:
    """What :func:`recommend_delta` found.

    Attributes
    ----------
    delta : float
        The recommended domain fraction for the budget.
    predicted_loss : float
        The law's predicted loss there (post-finetuning when finetuned losses were given).
    budget : float
    law : Law
    grid : ndarray of shape (n_grid,)
    curve : ndarray of shape (n_grid,)
        The predicted loss at each delta of the grid.
    onsets : dict of float to float
        The predicted overfitting onset T* of each measured delta.
    """

    delta: float
    predicted_loss: float
    budget: float
    law: Law
    grid: np.ndarray
    curve: np.ndarray
    onsets: dict[float, float]


def recommend_delta(
    tokens: Any,
    deltas: Any,
    train_loss: Any,
    test_loss: Any,
    budget: float,
    *,
    post_ft_loss: Any = None,
    grid: Any = None,
) -> Recommendation:
    """Fit the overfitting law to a few measured SPT curves and recommend a domain fraction for a budget.

    Measure, for a few domain fractions (at least 3 is wise; the law has 12 parameters),
    the domain train and held-out test loss at several pretraining budgets (the checkpoints
    of one constant-learning-rate run per delta serve). Optionally also the post-finetuning
    held-out loss at the same budgets: then the recommendation minimises the predicted
    post-finetuning loss, else the pretraining test loss.

    Assumptions: the curves follow the law's functional form (power laws in T with exponents
    linear in delta, a Gamma-kernel gap amplitude, a log-shaped constant); the finetuning
    drop is a power law in T per delta and varies linearly between the measured deltas; the
    budget is not far outside the measured range (the law extrapolates, but how far it can be
    trusted depends on the data); all runs share model, data and optimizer settings.

    Parameters
    ----------
    tokens : array of shape (n_budgets,)
    deltas : array of shape (n_deltas,)
        Fractions in (0, 1].
    train_loss, test_loss : array of shape (n_deltas, n_budgets)
    budget : float
        The pretraining tokens to plan for.
    post_ft_loss : array of shape (n_deltas, n_budgets), optional
    grid : array, optional
        The candidate deltas (0.5% to 30% by 0.5% by default).

    Returns
    -------
    Recommendation

    Examples
    --------
    >>> truth = Law(dict(zip(PARAMS, [1.0, -0.6, -0.2, 1.5, 0.3, 0.05, 2.0, 3.0, 1.5, -4.0, 3.0, -0.5])), t_ref=1e6)
    >>> tokens, deltas = np.geomspace(1e5, 1e7, 8), np.array([0.02, 0.05, 0.1, 0.2])
    >>> t, d = np.meshgrid(tokens, deltas)
    >>> rec = recommend_delta(tokens, deltas, truth.train(t, d), truth.test(t, d), budget=1e7)
    >>> rec.delta == optimal_delta(truth, 1e7)[0]
    True
    """
    budget = _positive("budget (tokens)", budget)
    law = fit_law(tokens, deltas, train_loss, test_loss)
    corrections = None
    if post_ft_loss is not None:
        post = np.asarray(post_ft_loss, dtype=float)
        te = np.asarray(test_loss, dtype=float)
        if post.shape != te.shape or not np.all(np.isfinite(post)):
            raise ValueError(f"post_ft_loss must be finite, with the shape of test_loss {te.shape}; got {post.shape}.")
        corrections = {float(d): fit_correction(tokens, te[i] - post[i], t_ref=law.t_ref) for i, d in enumerate(deltas)}
    grid, curve = _predicted(law, budget, grid, corrections)
    i = int(np.argmin(curve))
    onsets = {float(d): overfitting_onset(law, float(d)) for d in deltas}
    return Recommendation(float(grid[i]), float(curve[i]), budget, law, grid, curve, onsets)


__all__ = ["PARAMS", "Law", "Recommendation", "correction", "fit_correction", "fit_law", "measured_onset",
           "optimal_delta", "overfitting_onset", "predict_post_ft", "recommend_delta"]  # fmt: skip
