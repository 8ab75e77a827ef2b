import numpy as np

import ontheline as otl
from ontheline.estimators._base import EstimateResult


def result(estimates, interval=None):
    n = len(estimates)
    return EstimateResult(
        "aline-d", tuple(f"m{i}" for i in range(n)), np.array(estimates), np.full(n, 0.9), None,
        None if interval is None else np.array(interval),
    )  # fmt: skip


def test_models_are_ranked_by_estimated_ood_accuracy_with_stable_ties():
    ranking = otl.rank_models(result([0.5, 0.8, 0.5, 0.9]))
    assert [r.name for r in ranking] == ["m3", "m1", "m0", "m2"]
    assert [r.rank for r in ranking] == [1, 2, 3, 4]
    assert [r.tied_with_best for r in ranking] == [True, False, False, False]


def test_models_whose_interval_reaches_the_best_estimate_are_tied_with_it():
    ranking = otl.rank_models(result([0.70, 0.68, 0.50], [[0.66, 0.74], [0.64, 0.71], [0.45, 0.55]]))
    assert [(r.name, r.tied_with_best) for r in ranking] == [("m0", True), ("m1", True), ("m2", False)]
    assert ranking[1].low == 0.64 and ranking[1].high == 0.71


def test_ranking_by_aline_d_matches_the_true_order_on_a_generated_zoo():
    id_preds, id_labels, ood_preds, ood_labels = otl.make_line_zoo(n_models=10, random_state=5)
    res = otl.ALineD(n_bootstrap=0).fit(id_preds, id_labels).estimate(ood_preds)
    truth = otl.accuracy(ood_preds, ood_labels)
    best = otl.rank_models(res)[0]
    assert truth[res.models.index(best.name)] >= np.sort(truth)[-2]  # the best, or a close second
