"""Confidence-based baselines: ATC (Garg et al., 2022), DoC (Guillory et al., 2021) and AC.

Each works model by model from softmax probabilities. By default each model is first
temperature-scaled on the labelled ID data (minimum negative log-likelihood; the ATC paper
does so, and uncalibrated confidences make AC and DoC far worse), and the same temperature
is applied to the OOD data; ``calibrate=False`` gives the raw variants.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from ontheline._validation import check_choice
from ontheline.agreement import DEFAULT_KEEP, DEFAULT_MIN_R2
from ontheline.estimators._base import Estimates, Estimator, Shift
from ontheline.predictions import Predictions

_SCORES = ("max_confidence", "negative_entropy")


def fit_temperature(log_probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of ``softmax(log_probs / T)`` on labelled data.

    Parameters
    ----------
    log_probs : ndarray of shape (n_samples, n_classes)
        Logits or log-probabilities of one model.
    labels : ndarray of shape (n_samples,)
        Class indices.

    Examples
    --------
    >>> logits = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
    >>> bool(fit_temperature(logits, np.array([0, 1, 1, 0])) > 1.0)  # overconfident: soften
    True
    """
    rows = np.arange(len(labels))
    z = log_probs.astype(np.float64)

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[rows, labels].mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded").x))


def scaled_probs(probs: np.ndarray, temperatures: np.ndarray | None) -> np.ndarray:
    """``softmax(log(probs) / T)`` per model; ``probs`` itself when ``temperatures`` is None."""
    if temperatures is None:
        return probs
    z = np.log(np.clip(probs.astype(np.float64), 1e-12, None)) / temperatures[:, None, None]
    z = z - z.max(axis=-1, keepdims=True)  # a stable softmax in array methods, so dask arrays stay lazy
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confidence_scores(probs: np.ndarray, score: str) -> np.ndarray:
    """``(n_models, n_samples)`` max-probability or negative-entropy scores of ``(n_models, n_samples, n_classes)`` probs."""
    if score == "max_confidence":
        return probs.max(axis=-1)
    p = probs if probs.dtype == np.float64 else probs.astype(np.float64)
    return (p * np.log(np.clip(p, 1e-20, None))).sum(axis=-1)


def atc_thresholds(scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Per model, the threshold t with exactly as many ID scores >= t as correct ID predictions.

    A model right on every ID sample gets its lowest ID score (so ID accuracy 1 maps to 1,
    not to 0 as in the official code); one right on none gets +inf.

    Parameters
    ----------
    scores : ndarray of shape (n_models, n_samples)
    correct : ndarray of shape (n_models, n_samples), bool
    """
    n_samples = scores.shape[1]
    padded = np.concatenate([np.sort(scores, axis=1), np.full((scores.shape[0], 1), np.inf)], axis=1)
    index = n_samples - correct.sum(axis=1)
    return np.take_along_axis(padded, index[:, None], axis=1)[:, 0]


class _Confidence(Estimator):
    needs_probs = True
    per_model = True

    def __init__(
        self, *, calibrate: bool = True, keep: tuple[float, float] = DEFAULT_KEEP, min_r2: float = DEFAULT_MIN_R2
    ) -> None:
        self.calibrate = calibrate
        super().__init__(keep=keep, min_r2=min_r2)

    def _check_params(self) -> None:
        super()._check_params()
        check_choice(type(self).__name__, "calibrate", self.calibrate, (True, False))

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        assert preds.probs is not None
        self.temperatures_ = None
        if self.calibrate:
            log_p = np.log(np.clip(preds.probs, 1e-12, None))
            # One model's ID log-probabilities in memory at a time (a dask array is computed per model).
            self.temperatures_ = np.array([fit_temperature(np.asarray(m), labels) for m in log_p])

    def _scaled(self, preds: Predictions) -> np.ndarray:
        """``preds``' probabilities, temperature-scaled when fitted so (``needs_probs``: never None here)."""
        assert preds.probs is not None
        return scaled_probs(preds.probs, self.temperatures_)


class ATC(_Confidence):
    """Average Thresholded Confidence.

    On ID, choose per model the score threshold above which the fraction of samples equals the
    ID accuracy; predict the OOD accuracy as the fraction of OOD samples above it.

    Parameters
    ----------
    score : {'max_confidence', 'negative_entropy'}, default 'max_confidence'
        ATC-MC or ATC-NE.
    calibrate : bool, default True
        Temperature-scale each model on the ID data first (as the ATC paper does); False gives the raw variant.
    keep, min_r2 :
        See :class:`Estimator`.

    References
    ----------
    .. [1] S. Garg, S. Balakrishnan, Z. C. Lipton, B. Neyshabur and H. Sedghi, "Leveraging Unlabeled
       Data to Predict Out-of-Distribution Performance", ICLR 2022, arXiv:2201.04234.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=8, random_state=0)
    >>> otl.ATC(score="negative_entropy").fit(id_probs, id_labels).estimate(ood_probs).method
    'atc-ne'
    """

    names = {"max_confidence": "atc-mc", "negative_entropy": "atc-ne"}
    variant = "score"

    def __init__(
        self,
        *,
        score: str = "max_confidence",
        calibrate: bool = True,
        keep: tuple[float, float] = DEFAULT_KEEP,
        min_r2: float = DEFAULT_MIN_R2,
    ) -> None:
        self.score = score
        super().__init__(calibrate=calibrate, keep=keep, min_r2=min_r2)

    def _check_params(self) -> None:
        super()._check_params()
        check_choice("ATC", "score", self.score, _SCORES)

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        super()._fit(preds, labels)
        # The thresholds sort every model's ID scores, so these are held in memory even for dask input.
        scores = np.asarray(confidence_scores(self._scaled(preds), self.score))
        self.thresholds_ = atc_thresholds(scores, np.asarray(preds.labels == labels))

    def _estimate(self, shift: Shift) -> Estimates:
        scores = confidence_scores(self._scaled(shift.preds), self.score)
        return Estimates((scores >= self.thresholds_[:, None]).mean(axis=1))


class AC(_Confidence):
    """Average Confidence: the mean maximum probability on the OOD data.

    Parameters
    ----------
    calibrate : bool, default True
        Temperature-scale each model on the ID data first (as the ATC paper does); False gives the raw variant.
    keep, min_r2 :
        See :class:`Estimator`.

    References
    ----------
    .. [1] D. Guillory, V. Shankar, S. Ebrahimi, T. Darrell and L. Schmidt, "Predicting with Confidence
       on Unseen Distributions", ICCV 2021, arXiv:2107.03315 (AC is their baseline).
    .. [2] D. Hendrycks and K. Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
       Examples in Neural Networks", ICLR 2017, arXiv:1610.02136.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=8, random_state=0)
    >>> truth = otl.accuracy(ood_probs, ood_labels)
    >>> raw = otl.AC(calibrate=False).fit(id_probs, id_labels).estimate(ood_probs)
    >>> scaled = otl.AC().fit(id_probs, id_labels).estimate(ood_probs)  # temperature-scaled on ID
    >>> bool(abs(scaled.ood_accuracy - truth).mean() < abs(raw.ood_accuracy - truth).mean())  # calibration helps
    True
    """

    names = {None: "ac"}

    def _estimate(self, shift: Shift) -> Estimates:
        return Estimates(self._scaled(shift.preds).max(axis=-1).mean(axis=1))


class DoC(_Confidence):
    """Difference of Confidences: ``acc_ID + (AC_OOD - AC_ID)``, clipped to [0, 1].

    Parameters
    ----------
    calibrate : bool, default True
        Temperature-scale each model on the ID data first (as the ATC paper does); False gives the raw variant.
    keep, min_r2 :
        See :class:`Estimator`.

    References
    ----------
    .. [1] D. Guillory, V. Shankar, S. Ebrahimi, T. Darrell and L. Schmidt, "Predicting with Confidence
       on Unseen Distributions", ICCV 2021, arXiv:2107.03315.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=8, random_state=0)
    >>> result = otl.DoC().fit(id_probs, id_labels).estimate(ood_probs)
    >>> result.method, bool((result.ood_accuracy <= result.id_accuracy).all())  # confidence dropped on OOD
    ('doc', True)
    """

    names = {None: "doc"}

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        super()._fit(preds, labels)
        self.id_confidence_ = np.asarray(self._scaled(preds).max(axis=-1).mean(axis=1))

    def _estimate(self, shift: Shift) -> Estimates:
        ood_confidence = self._scaled(shift.preds).max(axis=-1).mean(axis=1)
        return Estimates(np.clip(self.id_accuracy_ + ood_confidence - self.id_confidence_, 0.0, 1.0))
