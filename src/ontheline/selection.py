"""Label-free model selection: rank a zoo by estimated OOD accuracy, with intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ontheline.estimators._base import EstimateResult


@dataclass(frozen=True)
class RankedModel:
    """One row of a ranking.

    ``tied_with_best`` is True when the model's interval reaches the best model's estimate:
    the data cannot tell it apart from the top choice. Without intervals only the best is tied.
    """

    rank: int
    name: str
    estimate: float
    low: float | None
    high: float | None
    tied_with_best: bool


def rank_models(result: EstimateResult) -> list[RankedModel]:
    """Models ordered from the highest to the lowest estimated OOD accuracy (rank 1 is best).

    Ties in the estimate keep the zoo's order.

    Examples
    --------
    >>> import ontheline as otl
    >>> id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=5, random_state=0)
    >>> result = otl.ALineD(n_bootstrap=50).fit(id_preds, id_labels).estimate(ood_preds)
    >>> best = rank_models(result)[0]
    >>> best.rank, best.tied_with_best
    (1, True)
    """
    order = np.argsort(-result.ood_accuracy, kind="stable")
    best = float(result.ood_accuracy[order[0]])
    ranking = []
    for rank, i in enumerate(order, start=1):
        low = high = None
        if result.interval is not None:
            low, high = (float(v) for v in result.interval[i])
        tied = rank == 1 or (high is not None and high >= best)
        ranking.append(RankedModel(rank, result.models[i], float(result.ood_accuracy[i]), low, high, tied))
    return ranking
