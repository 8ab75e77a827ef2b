"""The DIS² critic: its surrogate losses, their gradient, its convex fit, and the bound's arithmetic.

A critic ``h'`` is trained to agree with a model ``h`` on ID samples and disagree with it on OOD
samples (Rosenfeld and Garg, NeurIPS 2023, arXiv:2306.00312). Here it is the paper's *logits*
variant: a linear map (``K x K`` weights and a bias) of the model's own log-probabilities. Both
losses are convex in its parameters, so L-BFGS finds the global optimum, deterministically.
:class:`~ontheline.estimators.dis2.DIS2` runs these pieces model by model.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax

#: The probability of failure of each model's bound (the paper's experiments use 0.01).
DEFAULT_DELTA = 0.01

_AGREEMENT = ("cross_entropy", "margin")
_LOG_FLOOR = 1e-12


def logit_margin(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``z_y - mean_{k != y} z_k`` per row: how much the critic's logits favour class ``y``.

    Parameters
    ----------
    z : ndarray of shape (n_samples, n_classes)
        The critic's logits.
    y : ndarray of shape (n_samples,)
        Class indices (the model's predicted labels).

    Examples
    --------
    >>> logit_margin(np.array([[3.0, 1.0, 2.0]]), np.array([0]))
    array([1.5])
    """
    k = z.shape[1]
    picked = z[np.arange(len(y)), y]
    return (k * picked - z.sum(axis=1)) / (k - 1)


def disagreement_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The paper's disagreement loss ``log(1 + exp(z_y - mean_{k != y} z_k))`` per sample, ``(n_samples,)``.

    Small when the critic's logits ``z`` ``(n_samples, n_classes)`` put class ``y`` below the
    average of the others; convex in ``z``.

    Examples
    --------
    >>> z = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> disagreement_loss(z, np.array([0, 0])).round(3)  # agreeing costs more than disagreeing
    array([2.127, 0.127])
    """
    return np.logaddexp(0.0, logit_margin(z, y))


def agreement_loss(z: np.ndarray, y: np.ndarray, kind: str = "cross_entropy") -> np.ndarray:
    """The loss that makes the critic agree with label ``y`` on ID data, per sample ``(n_samples,)``.

    ``'cross_entropy'``: ``-log softmax(z)_y`` (what the authors' released code uses);
    ``'margin'``: ``log(1 + exp(mean_{k != y} z_k - z_y))``, the disagreement loss with the
    margin's sign flipped. Both are convex in ``z``.

    Examples
    --------
    >>> z = np.array([[2.0, 0.0]])
    >>> agreement_loss(z, np.array([0])).round(3), agreement_loss(z, np.array([0]), "margin").round(3)
    (array([0.127]), array([0.127]))
    """
    if kind == "margin":
        return np.logaddexp(0.0, -logit_margin(z, y))
    return -log_softmax(z, axis=1)[np.arange(len(y)), y]


def _margin_grad(z: np.ndarray, y: np.ndarray, sign: float) -> np.ndarray:
    """d/dz of ``log(1 + exp(sign * margin))`` per row (``(n, K)``)."""
    n, k = z.shape
    weight = expit(sign * logit_margin(z, y)) * sign / (k - 1)
    grad = np.repeat(-weight[:, None], k, axis=1)
    grad[np.arange(n), y] += weight * k
    return grad


def critic_objective(
    params: np.ndarray,
    id_x: np.ndarray,
    id_y: np.ndarray,
    ood_x: np.ndarray,
    ood_y: np.ndarray,
    l2: float,
    agreement: str = "cross_entropy",
) -> tuple[float, np.ndarray]:
    """The critic's training loss and its gradient.

    ``mean_ID agreement_loss + mean_OOD disagreement_loss + l2/2 * ||W||²`` for the linear
    critic ``z = x @ W + b``; convex in ``params``.

    Parameters
    ----------
    params : ndarray of shape (n_features * n_classes + n_classes,)
        ``W`` (row-major, ``(n_features, n_classes)``) then ``b``.
    id_x, ood_x : ndarray of shape (n, n_features)
        Critic inputs on ID and OOD samples.
    id_y, ood_y : ndarray of shape (n,)
        The model's predicted labels on them.
    l2 : float
        Weight of the L2 penalty on ``W`` (the bias is not penalised).
    agreement : {'cross_entropy', 'margin'}
        See :func:`agreement_loss`.

    Returns
    -------
    loss : float
    grad : ndarray, shaped like ``params``

    Examples
    --------
    >>> x, y = np.eye(2), np.array([0, 1])
    >>> loss, grad = critic_objective(np.zeros(6), x, y, x, y, l2=0.0)
    >>> round(loss, 4), grad.shape  # log 2 for each term at zero
    (1.3863, (6,))
    """
    d = id_x.shape[1]
    k = params.size // (d + 1)
    w, b = params[: d * k].reshape(d, k), params[d * k :]
    z_id, z_ood = id_x @ w + b, ood_x @ w + b
    if agreement == "margin":
        g_id = _margin_grad(z_id, id_y, -1.0)
    else:
        g_id = softmax(z_id, axis=1)
        g_id[np.arange(len(id_y)), id_y] -= 1.0
    g_ood = _margin_grad(z_ood, ood_y, 1.0)
    g_id /= len(id_y)
    g_ood /= len(ood_y)
    loss = agreement_loss(z_id, id_y, agreement).mean() + disagreement_loss(z_ood, ood_y).mean()
    loss += 0.5 * l2 * float(np.sum(w * w))
    grad_w = id_x.T @ g_id + ood_x.T @ g_ood + l2 * w
    grad_b = g_id.sum(axis=0) + g_ood.sum(axis=0)
    return float(loss), np.concatenate([grad_w.ravel(), grad_b])


def train_critic(
    id_x: np.ndarray,
    id_y: np.ndarray,
    ood_x: np.ndarray,
    ood_y: np.ndarray,
    *,
    n_classes: int,
    l2: float = 1e-3,
    agreement: str = "cross_entropy",
    max_iter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the linear critic that agrees with the model on ID and disagrees with it on OOD.

    Minimises :func:`critic_objective` with L-BFGS-B from ``W = 0, b = 0``; the problem is
    convex, so the start matters only for speed. Deterministic.

    Parameters
    ----------
    id_x, ood_x : ndarray of shape (n, n_features)
    id_y, ood_y : ndarray of shape (n,)
        The model's predicted labels (class indices < ``n_classes``).
    n_classes : int
    l2, agreement, max_iter :
        The L2 weight, the agreement loss (:func:`agreement_loss`) and the iteration cap.

    Returns
    -------
    weights : ndarray of shape (n_features, n_classes)
    bias : ndarray of shape (n_classes,)

    Examples
    --------
    A critic on 1-D inputs learns to flip the model's label where only OOD samples lie:

    >>> id_x = np.array([[-3.0], [-2.0], [-1.0], [1.0], [2.0], [3.0]]); id_y = np.array([0, 0, 0, 1, 1, 1])
    >>> ood_x = np.array([[-8.0], [-9.0]]); ood_y = np.array([1, 1])  # the model says 1 far on the left
    >>> w, b = train_critic(id_x, id_y, ood_x, ood_y, n_classes=2)
    >>> (id_x @ w + b).argmax(axis=1), (ood_x @ w + b).argmax(axis=1)  # agrees on ID, not far on the left
    (array([0, 0, 0, 1, 1, 1]), array([0, 0]))
    >>> disagreement_discrepancy(w, b, id_x, id_y, ood_x, ood_y)
    1.0
    """
    d = id_x.shape[1]
    x0 = np.zeros(d * n_classes + n_classes)
    res = minimize(
        critic_objective, x0, args=(id_x, id_y, ood_x, ood_y, l2, agreement), jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter},
    )  # fmt: skip
    return res.x[: d * n_classes].reshape(d, n_classes), res.x[d * n_classes :]


def disagreement_discrepancy(
    weights: np.ndarray, bias: np.ndarray, id_x: np.ndarray, id_y: np.ndarray, ood_x: np.ndarray, ood_y: np.ndarray
) -> float:
    """``Δ̂ = dis_OOD - dis_ID``: how much more often the critic disagrees with the model's labels on OOD than on ID.

    Parameters
    ----------
    weights : ndarray of shape (n_features, n_classes)
    bias : ndarray of shape (n_classes,)
    id_x, ood_x : ndarray of shape (n, n_features)
    id_y, ood_y : ndarray of shape (n,)
        The model's predicted labels.

    Examples
    --------
    >>> x = np.eye(2)
    >>> disagreement_discrepancy(np.eye(2), np.zeros(2), x, np.array([0, 1]), x, np.array([1, 1]))
    0.5
    """
    dis_id = float(np.mean((id_x @ weights + bias).argmax(axis=1) != id_y))
    dis_ood = float(np.mean((ood_x @ weights + bias).argmax(axis=1) != ood_y))
    return dis_ood - dis_id


def finite_sample_slack(n_id: int, n_ood: int, delta: float = DEFAULT_DELTA) -> float:
    """``sqrt((n_S + 4 n_T) log(1/δ) / (2 n_S n_T))``, the bound's finite-sample term (held-out sizes).

    Examples
    --------
    >>> round(finite_sample_slack(750, 750, 0.01), 4)
    0.1239
    """
    return math.sqrt((n_id + 4 * n_ood) * math.log(1.0 / delta) / (2.0 * n_id * n_ood))


def dis2_bound(id_error: float, discrepancy: float, n_id: int, n_ood: int, delta: float = DEFAULT_DELTA) -> float:
    """The bound on the OOD error: ``ε̂_S + Δ̂ + sqrt((n_S + 4 n_T) log(1/δ) / (2 n_S n_T))`` (not clipped).

    Parameters
    ----------
    id_error : float
        The model's error on the held-out ID samples, ``ε̂_S``.
    discrepancy : float
        The critic's disagreement discrepancy on the held-out samples, ``Δ̂``.
    n_id, n_ood : int
        Held-out ID and OOD sample counts, ``n_S`` and ``n_T``.
    delta : float
        The probability that the bound fails (given the assumption).

    Examples
    --------
    >>> round(dis2_bound(0.05, 0.20, 750, 750, 0.01), 4)
    0.3739
    """
    return id_error + discrepancy + finite_sample_slack(n_id, n_ood, delta)


def critic_features(probs: np.ndarray) -> np.ndarray:
    """The critic's input for one model: its log-probabilities ``(n_samples, n_classes)``.

    Not centred per sample: the mean log-probability is a confidence score the critic can use
    (centring would hide it). A floor of 1e-12 on the probabilities keeps the logs finite.

    Examples
    --------
    >>> critic_features(np.array([[0.5, 0.5]])).round(4).tolist()
    [[-0.6931, -0.6931]]
    """
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _LOG_FLOOR, None))
