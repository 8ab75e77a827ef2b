"""GDE (Jiang, Nagarajan, Baek, Kolter, ICLR 2022): accuracy from agreement with other models.

The Generalization Disagreement Equality says that, for models from one training recipe
that differ by seed, data order or data, the expected disagreement between two of them
equals their expected test error. The estimate of a model's OOD accuracy is therefore its
OOD agreement with the other models, averaged over them.
"""

from __future__ import annotations

import numpy as np

from ontheline.estimators._base import Estimates, Estimator, Shift


def mean_agreement_with_others(agreement: np.ndarray) -> np.ndarray:
    """``(n_models,)`` mean of each row of an agreement matrix, leaving out the diagonal.

    Examples
    --------
    >>> mean_agreement_with_others(np.array([[1.0, 0.75, 0.5], [0.75, 1.0, 0.25], [0.5, 0.25, 1.0]])).tolist()
    [0.625, 0.5, 0.375]
    """
    n_models = agreement.shape[0]
    return (agreement.sum(axis=1) - np.diag(agreement)) / (n_models - 1)


class GDE(Estimator):
    """Average OOD agreement of each model with every other model in the zoo.

    Works from hard labels alone. It assumes the zoo's models come from one training recipe;
    in a heterogeneous zoo a strong model's agreement with weak ones understates its accuracy.

    Parameters
    ----------
    keep, min_r2 :
        See :class:`Estimator` (they set only the agreement-line diagnostics here).

    References
    ----------
    .. [1] Y. Jiang, V. Nagarajan, C. Baek and J. Z. Kolter, "Assessing Generalization of SGD via
       Disagreement", ICLR 2022, arXiv:2106.13799.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=8, random_state=0)
    >>> otl.GDE().fit(id_preds, id_labels).estimate(ood_preds).ood_accuracy.shape
    (8,)
    """

    names = {None: "gde"}
    min_models = 2

    def _estimate(self, shift: Shift) -> Estimates:
        assert shift.agreement is not None  # GDE fits on at least 2 models
        return Estimates(mean_agreement_with_others(shift.agreement))
