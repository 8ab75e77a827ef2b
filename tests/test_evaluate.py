"""The one evaluation loop: which result the verdict comes from, what reaches the user, what is computed once."""

import numpy as np
import pytest

import ontheline as otl
from ontheline.agreement import AgreementLine
from ontheline.estimators import EstimateResult


def result(method, flags=()):
    line = AgreementLine(1.0, 0.0, r2=0.99, n_pairs=28, n_distinct=28, spread=3.0)
    values = np.array([0.5, 0.6, 0.7])
    return EstimateResult(method, ("a", "b", "c"), values, values.copy(), line, flags=flags)


def test_the_trust_verdict_is_the_ranking_methods_whatever_ran_first():
    evaluation = otl.Evaluation({"gde": result("gde"), "aline-d": result("aline-d", flags=("fragile",))}, None)
    assert evaluation.ranking_method == "aline-d"
    assert not evaluation.trusted and evaluation.to_dict()["trust_issues"] == ["fragile"]
    assert "fragile" in evaluation.trust_message()


def test_every_methods_notes_reach_the_json():
    from test_aline import near_identical_zoo

    preds, truth = near_identical_zoo(flips=(8, 8, 9, 13))
    evaluation = otl.evaluate(preds, truth, preds, methods=["aline-s"], n_bootstrap=100)  # warnings collected
    notes = evaluation.to_dict()["notes"]["aline-s"]
    assert any("bootstrap resamples kept too few pairs" in n for n in notes)


def test_on_failure_raise_raises_when_fitting_fails_too():
    id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=2, n_samples=200)
    with pytest.raises(otl.EstimationError, match="ALineD needs at least 3 models"):
        otl.evaluate(id_probs, id_labels, ood_probs, methods=["aline-d"], on_failure="raise")
    skipped = otl.evaluate(id_probs, id_labels, ood_probs, methods=["aline-d", "gde"]).skipped
    assert "ALineD needs at least 3 models" in skipped["aline-d"]


def test_named_ood_predictions_in_another_order_are_aligned_once_for_every_method(monkeypatch):
    from ontheline import agreement

    id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=6, n_samples=300)
    names = [f"m{i}" for i in range(6)]
    calls = []
    real = agreement.agreement_counts
    monkeypatch.setattr(agreement, "agreement_counts", lambda *a, **k: calls.append(1) or real(*a, **k))
    otl.evaluate(dict(zip(names, id_probs)), id_labels, dict(zip(names[::-1], ood_probs[::-1])), n_bootstrap=0)
    assert len(calls) == 2  # the ID agreement and the OOD agreement, each once for all nine methods
