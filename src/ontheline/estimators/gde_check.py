"""GDE's check on a zoo: the vote ensemble's calibration (CACE) against the GDE gap, on labelled data.

:func:`gde_diagnostics` is what :func:`ontheline.evaluate` (and ``ontheline estimate``) runs on
the ID data, and on the OOD data when it is labelled; the measures themselves are in
:mod:`ontheline.estimators.calibration`, whose text states the theorem and its exact
finite-sample form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontheline._validation import InputError
from ontheline.agreement import encode_labels
from ontheline.estimators.calibration import (
    PAPER_BINS,
    CalibrationCurve,
    _pad,
    calibration_curve,
    class_aggregated_calibration_error,
    class_wise_calibration_error,
    vote_ensemble,
)
from ontheline.predictions import as_predictions


@dataclass(frozen=True)
class GDEDiagnostics:
    """The GDE check of one zoo on one labelled set: the ensemble's calibration against the GDE gap.

    Made by :func:`gde_diagnostics`; every quantity is the paper's (see :mod:`ontheline.estimators.calibration`), on the
    vote ensemble, except ``softmax_cace`` (the mean softmax's, when probabilities are given).

    Attributes
    ----------
    n_models, n_samples : int
    expected_error : float
        ``E_h[Err(h)]``: the zoo's mean error.
    expected_disagreement : float
        ``E_{h,h'}[Dis(h, h')]`` over independent draws (``h = h'`` included): Theorem 4.2's.
    expected_disagreement_distinct : float
        The mean disagreement of distinct pairs (what the GDE estimator averages); NaN for one model.
    gap : float
        ``|E[Dis] − E[Err]|``.
    signed_gap : float
        ``E[Dis] − E[Err]``.
    cace : float
        CACE over the vote ensemble's exact level sets (binning-free).
    cace_binned : float
        CACE in ``bins`` equal-width bins, the paper's estimator.
    cwce : float
        The class-wise calibration error (exact level sets).
    bins : int
    softmax_cace : float or None
        CACE of the mean softmax in ``bins`` bins (None without probabilities).
    curve : CalibrationCurve
        The vote ensemble's reliability curve (exact level sets).
    softmax_curve : CalibrationCurve or None

    Examples
    --------
    >>> votes = np.array([[0, 1, 1, 0], [0, 1, 0, 0]])  # 2 models, 4 samples
    >>> d = gde_diagnostics(votes, [0, 1, 1, 1])
    >>> d.expected_error, d.expected_disagreement, d.bound_holds
    (0.375, 0.125, True)
    """

    n_models: int
    n_samples: int
    expected_error: float
    expected_disagreement: float
    expected_disagreement_distinct: float
    gap: float
    signed_gap: float
    cace: float
    cace_binned: float
    cwce: float
    bins: int
    softmax_cace: float | None
    curve: CalibrationCurve = field(repr=False)
    softmax_curve: CalibrationCurve | None = field(repr=False, default=None)

    @property
    def bound_holds(self) -> bool:
        """Theorem 4.2, ``gap <= cace`` (exact on the level sets; up to float rounding)."""
        return self.gap <= self.cace + 1e-12

    @property
    def bound_holds_binned(self) -> bool:
        """``gap <= cace_binned``: the paper's binned estimate, which can fail when a bin mixes level sets."""
        return self.gap <= self.cace_binned + 1e-12

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``gde_diagnostics`` of ``ontheline estimate --format json``)."""
        nan_free = self.expected_disagreement_distinct == self.expected_disagreement_distinct
        return {
            "cace": self.cace,
            "gap": self.gap,
            "bound_holds": self.bound_holds,
            "signed_gap": self.signed_gap,
            "expected_error": self.expected_error,
            "expected_disagreement": self.expected_disagreement,
            "expected_disagreement_distinct": self.expected_disagreement_distinct if nan_free else None,
            "cace_binned": self.cace_binned,
            "bound_holds_binned": self.bound_holds_binned,
            "cwce": self.cwce,
            "softmax_cace": self.softmax_cace,
            "bins": self.bins,
            "n_models": self.n_models,
            "n_samples": self.n_samples,
            "ensemble": "votes",
            "reliability": self.curve.to_dict(),
        }


def gde_diagnostics(preds: Any, labels: Any, *, bins: int = PAPER_BINS) -> GDEDiagnostics:
    """The GDE check of a zoo on labelled data: CACE, the GDE gap, and Theorem 4.2's bound.

    Parameters
    ----------
    preds : Predictions, array-like or mapping
        The zoo's predictions (labels ``(n_models, n_samples)`` or probabilities
        ``(n_models, n_samples, n_classes)``; see :func:`ontheline.as_predictions`).
    labels : array-like of shape (n_samples,)
        The true labels (ID validation data, or OOD data when it is labelled).
    bins : int
        Bins of the paper's CACE estimate (and of the mean softmax's).

    Returns
    -------
    GDEDiagnostics

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, _, _ = otl.make_line_zoo(n_models=8, random_state=0)
    >>> d = gde_diagnostics(id_probs, id_labels)
    >>> bool(d.gap <= d.cace / 2 <= d.cace), d.bound_holds, d.n_models
    (True, True, 8)
    """
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise InputError(f"bins must be a positive integer; got {bins!r}.")
    p = as_predictions(preds, name="preds")
    y = encode_labels(p, labels, "labels")
    y = y.astype(np.int64)
    n_classes = max(len(p.classes), int(y.max()) + 1)
    votes = vote_ensemble(p.labels, n_classes)
    m = p.n_models
    error = float(1 - votes[np.arange(len(y)), y].mean())
    disagreement = float(1 - (votes**2).sum(axis=1).mean())
    softmax = softmax_curve = None
    if p.probs is not None:
        mean = _pad(p.probs.mean(axis=0), n_classes)
        softmax = class_aggregated_calibration_error(mean, y, bins=bins)
        softmax_curve = calibration_curve(mean, y, bins=bins)
    return GDEDiagnostics(
        n_models=m, n_samples=len(y), expected_error=error, expected_disagreement=disagreement,
        expected_disagreement_distinct=disagreement * m / (m - 1) if m > 1 else float("nan"),
        gap=abs(disagreement - error), signed_gap=disagreement - error,
        cace=class_aggregated_calibration_error(votes, y), cace_binned=class_aggregated_calibration_error(votes, y, bins=bins),
        cwce=class_wise_calibration_error(votes, y), bins=int(bins), softmax_cace=softmax,
        curve=calibration_curve(votes, y), softmax_curve=softmax_curve,
    )  # fmt: skip


__all__ = ["GDEDiagnostics", "gde_diagnostics"]
