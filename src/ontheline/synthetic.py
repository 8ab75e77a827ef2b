"""A generated zoo whose accuracies and agreements lie on a known probit line.

Data: ``n_classes`` Gaussian classes in ``n_features`` dimensions, ``x = mu_y + noise``. The OOD
set is a *scaling* shift of the ID set, ``x = contrast * mu_y + noise_scale * noise``: the
shift under which agreement-on-the-line is derived for linear models on Gaussian data (Baek et
al., 2022, section 4). The zoo is the Bayes linear classifier with random weight perturbations
of many sizes, so ID accuracies spread over a wide range.
"""

from __future__ import annotations

import numpy as np

from ontheline._validation import check_number


def make_line_zoo(
    n_models: int = 30,
    n_samples: int = 4000,
    n_classes: int = 10,
    *,
    n_features: int = 256,
    contrast: float = 0.7,
    noise_scale: float = 1.0,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate ID and OOD probabilities of a zoo of linear classifiers under a scaling shift.

    Parameters
    ----------
    n_models : int, default 30
    n_samples : int, default 4000
        Samples in each of the ID and the OOD set.
    n_classes : int, default 10
    n_features : int, default 256
    contrast, noise_scale : float, default 0.7 and 1.0
        The OOD set is ``x = contrast * mu_y + noise_scale * noise``: a smaller contrast or a larger
        noise scale is a stronger shift.
    random_state : int, default 0
        The same seed gives the same models (and data).

    Returns
    -------
    id_probs : ndarray of shape (n_models, n_samples, n_classes)
    id_labels : ndarray of shape (n_samples,)
    ood_probs : ndarray of shape (n_models, n_samples, n_classes)
    ood_labels : ndarray of shape (n_samples,)

    References
    ----------
    .. [1] C. Baek, Y. Jiang, A. Raghunathan and J. Z. Kolter, "Agreement-on-the-Line: Predicting the
       Performance of Neural Networks under Distribution Shift", NeurIPS 2022, arXiv:2206.13089
       (section 4: agreement-on-the-line for linear models under a scaling shift).

    Examples
    --------
    >>> id_probs, id_labels, ood_probs, ood_labels = make_line_zoo(n_models=4, n_samples=100)
    >>> id_probs.shape, ood_labels.shape
    ((4, 100, 10), (100,))
    """
    check_number("make_line_zoo", "n_models", n_models, low=1, integer=True)
    check_number("make_line_zoo", "n_samples", n_samples, low=1, integer=True)
    check_number("make_line_zoo", "n_classes", n_classes, low=2, integer=True)
    check_number("make_line_zoo", "n_features", n_features, low=1, integer=True)
    check_number("make_line_zoo", "contrast", contrast, low=0.0)
    check_number("make_line_zoo", "noise_scale", noise_scale, low=0.0)
    rng = np.random.default_rng(random_state)
    means = rng.normal(size=(n_classes, n_features)) * (3.0 / np.sqrt(n_features))
    perturbation = np.geomspace(0.05, 1.5, n_models)[:, None, None] * rng.normal(size=(n_models, n_classes, n_features))
    weights = means[None] + perturbation * np.linalg.norm(means, axis=1).mean()
    # Perturbed models keep the Bayes model's weight norms, so their confidence stays plausible.
    weights *= np.linalg.norm(means, axis=1)[None, :, None] / np.linalg.norm(weights, axis=-1, keepdims=True)

    def predict(scale_mean: float, scale_noise: float) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, n_classes, n_samples)
        x = scale_mean * means[labels] + scale_noise * rng.normal(size=(n_samples, n_features))
        logits = np.einsum("mkf,nf->mnk", weights, x)  # the Bayes posterior's logits for the unperturbed model
        logits -= logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=-1, keepdims=True), labels

    id_probs, id_labels = predict(1.0, 1.0)
    ood_probs, ood_labels = predict(contrast, noise_scale)
    return id_probs, id_labels, ood_probs, ood_labels


__all__ = ["make_line_zoo"]
