"""COT and COTT: OOD accuracy from optimal transport of the softmax outputs onto the label distribution.

Confidence optimal transport (Lu et al., NeurIPS 2023) moves a model's OOD softmax vectors
``p_i`` (each of weight ``1/n``) onto the one-hot vectors of the classes, weighted by the label
distribution ``pi`` (taken from the labelled ID data: no label shift is assumed), at the cost
``||p_i - e_k||_1 / 2 = 1 - p_ik``. The least total cost is COT's error estimate. Unlike average
confidence, it counts the mass a model puts on classes beyond what ``pi`` allows, so it
underestimates less under pseudo-label shift. COTT thresholds each sample's cost in the optimal
plan instead, at the threshold that reproduces the ID error (as ATC does with confidences).

The plan is solved exactly (POT's network simplex, the ``ot`` extra) with the class weights
``pi`` themselves, not ``n`` labels sampled from them as the official code does, so the result
is deterministic. Both are fitted on temperature-scaled probabilities by default, as the
official code does.
"""

from __future__ import annotations

import numpy as np

from ontheline._optional import extra
from ontheline.estimators._base import Estimates, Shift
from ontheline.estimators.confidence import _Confidence, atc_thresholds
from ontheline.predictions import Predictions


def transport_costs(probs: np.ndarray, label_distribution: np.ndarray) -> np.ndarray:
    """Each sample's cost in the optimal transport of its probabilities onto the label distribution.

    The ``n`` rows of ``probs`` weigh ``1/n`` each; class ``k`` receives ``label_distribution[k]``;
    moving row ``i`` to class ``k`` costs ``1 - probs[i, k]`` (half the L1 distance to the one-hot
    vector). Returns ``n * sum_k plan[i, k] * (1 - probs[i, k])``: the mean is the total cost.

    Parameters
    ----------
    probs : ndarray of shape (n_samples, n_classes)
    label_distribution : ndarray of shape (n_classes,)
        Non-negative, summing to 1.

    Returns
    -------
    ndarray of shape (n_samples,), values in [0, 1]

    Examples
    --------
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    >>> transport_costs(probs, np.array([0.5, 0.5])).round(3).tolist()  # one of the two must go to class 1
    [0.1, 0.8]
    """
    with extra("ot"):
        import ot

    n_samples = probs.shape[0]
    cost = 1.0 - np.asarray(probs, dtype=np.float64)
    plan = ot.emd(np.full(n_samples, 1.0 / n_samples), np.asarray(label_distribution, np.float64), cost)
    return np.clip(n_samples * (plan * cost).sum(axis=1), 0.0, 1.0)


def label_distribution(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The share of each class among ``labels`` (class indices), ``(n_classes,)``.

    Examples
    --------
    >>> label_distribution(np.array([0, 0, 1, 2]), 4).tolist()
    [0.5, 0.25, 0.25, 0.0]
    """
    counts = np.bincount(labels, minlength=n_classes)[:n_classes].astype(np.float64)
    return counts / counts.sum()


class _Transport(_Confidence):
    """The shared part of COT and COTT: the ID label distribution, and each model's costs on a set."""

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        super()._fit(preds, labels)
        self.label_distribution_ = label_distribution(labels, len(preds.classes))

    def _costs(self, preds: Predictions, distribution: np.ndarray) -> np.ndarray:
        """``(n_models, n_samples)`` per-sample transport costs, one model in memory at a time."""
        probs = self._scaled(preds)
        return np.stack([transport_costs(np.asarray(model), distribution) for model in probs])


class COT(_Transport):
    """Confidence optimal transport: one minus the least cost of moving the OOD softmax outputs onto the labels.

    ``acc_OOD_hat = 1 - W(softmax outputs on OOD, one-hot labels ~ pi)``, the Wasserstein
    distance with the cost ``1 - p_ik``; ``pi`` is the class distribution of the ID labels.

    Parameters
    ----------
    calibrate : bool, default True
        Temperature-scale each model on the ID data first, as the official code does.
    keep, min_r2 :
        See :class:`~ontheline.estimators.Estimator` (the agreement line is reported beside the estimates).

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=8, random_state=0)
    >>> result = otl.COT().fit(id_probs, id_labels).estimate(ood_probs)
    >>> result.method, bool(abs(result.ood_accuracy - otl.accuracy(ood_probs, ood_labels)).mean() < 0.1)
    ('cot', True)

    References
    ----------
    Yuzhe Lu, Yilong Qin, Runtian Zhai, Andrew Shen, Ketong Chen, Zhenlin Wang, Soheil Kolouri,
    Simon Stepputtis, Joseph Campbell, Katia Sycara, "Characterizing Out-of-Distribution Error
    via Optimal Transport", NeurIPS 2023, arXiv:2305.15640.
    """

    names = {None: "cot"}

    def _estimate(self, shift: Shift) -> Estimates:
        return Estimates(1.0 - self._costs(shift.preds, self.label_distribution_).mean(axis=1))


class COTT(_Transport):
    """Confidence optimal transport with thresholding: the share of OOD samples whose transport cost
    stays below a threshold that reproduces the ID accuracy.

    On the ID data, each sample's cost in the optimal transport onto its own labels' distribution
    sets, per model, the threshold above which as many samples lie as the model gets wrong (as
    ATC does with confidences); on OOD, the estimate is the share of samples whose cost, in the
    transport onto ``pi``, does not exceed it.

    Parameters
    ----------
    calibrate : bool, default True
        Temperature-scale each model on the ID data first, as the official code does.
    keep, min_r2 :
        See :class:`~ontheline.estimators.Estimator`.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=8, random_state=0)
    >>> result = otl.COTT().fit(id_probs, id_labels).estimate(ood_probs)
    >>> result.method, bool(abs(result.ood_accuracy - otl.accuracy(ood_probs, ood_labels)).mean() < 0.1)
    ('cott', True)

    References
    ----------
    Yuzhe Lu, Yilong Qin, Runtian Zhai, Andrew Shen, Ketong Chen, Zhenlin Wang, Soheil Kolouri,
    Simon Stepputtis, Joseph Campbell, Katia Sycara, "Characterizing Out-of-Distribution Error
    via Optimal Transport", NeurIPS 2023, arXiv:2305.15640.
    """

    names = {None: "cott"}

    def _fit(self, preds: Predictions, labels: np.ndarray) -> None:
        super()._fit(preds, labels)
        costs = self._costs(preds, self.label_distribution_)
        # Scores are negated costs, so a sample "passes" when its cost is at most the threshold.
        self.thresholds_ = atc_thresholds(-costs, np.asarray(preds.labels == labels))

    def _estimate(self, shift: Shift) -> Estimates:
        costs = self._costs(shift.preds, self.label_distribution_)
        return Estimates((-costs >= self.thresholds_[:, None]).mean(axis=1))


__all__ = ["COT", "COTT", "label_distribution", "transport_costs"]
