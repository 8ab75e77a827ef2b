"""GDE's calibration condition: CACE, the GDE gap and Theorem 4.2's bound |E[Dis] - E[Err]| <= CACE."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ontheline as otl
from ontheline.cli import main
from ontheline.estimators import (
    PAPER_BINS,
    calibration_curve,
    class_aggregated_calibration_error,
    class_wise_calibration_error,
    gde_diagnostics,
    gde_gap,
    vote_ensemble,
)


def _zoo(rng, n_models, n_samples, n_classes, consensus=0.6):
    """Votes of a zoo that agrees on a shared guess with probability ``consensus``, and labels near it."""
    base = rng.integers(0, n_classes, n_samples)
    votes = np.where(
        rng.random((n_models, n_samples)) < consensus, base, rng.integers(0, n_classes, (n_models, n_samples))
    )
    labels = np.where(rng.random(n_samples) < 0.7, base, rng.integers(0, n_classes, n_samples))
    return votes, labels


def test_the_expectations_are_the_zoos_mean_error_and_its_disagreement_over_pairs():
    votes, labels = _zoo(np.random.default_rng(0), 7, 300, 4)
    d = gde_diagnostics(votes, labels)
    assert d.expected_error == pytest.approx((votes != labels).mean(), abs=1e-12)
    agreement = otl.pairwise_agreement(votes)
    distinct = 1 - agreement[~np.eye(7, dtype=bool)].mean()
    with_self = 1 - agreement.mean()  # two models drawn with replacement: the theorem's expectation
    assert d.expected_disagreement_distinct == pytest.approx(distinct, abs=1e-12)
    assert d.expected_disagreement == pytest.approx(with_self, abs=1e-12)
    assert d.signed_gap == pytest.approx(gde_gap(vote_ensemble(votes, 4), labels), abs=1e-12)


def test_an_exactly_calibrated_ensemble_has_cace_zero_within_sampling_error():
    # The ensemble's labels are drawn from the ensemble's own vote shares: calibrated by construction.
    rng = np.random.default_rng(1)
    n_models, n_samples, n_classes = 9, 20_000, 4
    votes, _ = _zoo(rng, n_models, n_samples, n_classes, consensus=0.5)
    ensemble = vote_ensemble(votes, n_classes)
    labels = np.array([rng.choice(n_classes, p=p) for p in ensemble])
    cace = class_aggregated_calibration_error(ensemble, labels)
    # Each level's residual sums independent centred Bernoulli terms: E|S| = 0.8 sd for a normal S.
    sigma = 0.0
    for q in np.unique(ensemble):
        p = (ensemble * (ensemble == q)).sum(axis=1)  # the chance that the true class is one at level q
        sigma += np.sqrt((p * (1 - p)).sum())
    assert cace <= 2 * sigma / n_samples < 0.03  # about 2.5 times its expected size
    assert abs(gde_gap(ensemble, labels)) <= cace / 2
    sharpened = np.where(ensemble == ensemble.max(axis=1, keepdims=True), 1.0, 0.0)
    overconfident = np.array([rng.choice(n_classes, p=p / p.sum()) for p in sharpened])
    assert class_aggregated_calibration_error(ensemble, overconfident) > 10 * cace


def test_the_papers_easy_and_hard_points_satisfy_gde_exactly():
    # GDE paper, Section 4 (after N&B'20): easy points every model gets right; on hard ones the
    # binary ensemble splits evenly. GDE then holds point by point, and the ensemble is calibrated.
    n_models, easy, hard = 6, 30, 20
    labels = np.array([0, 1] * ((easy + hard) // 2))
    votes = np.tile(labels, (n_models, 1))
    votes[: n_models // 2, easy:] = 1 - labels[easy:]  # half the models wrong on every hard point
    d = gde_diagnostics(votes, labels)
    assert d.expected_error == pytest.approx(0.5 * hard / (easy + hard))
    assert d.gap == pytest.approx(0.0, abs=1e-15) and d.cace == pytest.approx(0.0, abs=1e-15)


def test_the_half_cace_bound_is_attained():
    # Every model always says class 0, which is always wrong: E[Err] = 1, E[Dis] = 0, CACE = 2.
    d = gde_diagnostics(np.zeros((3, 10), int), np.ones(10, int))
    assert (d.expected_error, d.expected_disagreement, d.cace, d.gap) == (1.0, 0.0, 2.0, 1.0)


@given(st.integers(1, 40), st.integers(1, 60), st.integers(2, 6), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_theorem_4_2_holds_exactly_on_random_ensembles(n_models, n_samples, n_classes, consensus, seed):
    votes, labels = _zoo(np.random.default_rng(seed), n_models, n_samples, n_classes, consensus)
    d = gde_diagnostics(votes, labels)
    assert d.gap <= d.cace / 2 + 1e-12 and d.bound_holds  # on the exact level sets, the empirical distribution's
    assert d.cwce >= d.cace - 1e-12
    # Binned (the paper's estimator): exact once the bins' width is paid for; equal when no bin holds two levels.
    assert d.gap <= d.cace_binned / 2 + d.expected_error / PAPER_BINS + 1e-12
    if n_models < PAPER_BINS:
        assert d.cace_binned == pytest.approx(d.cace, abs=1e-12)


@given(st.integers(1, 50), st.integers(2, 5), st.floats(0.05, 5.0), st.integers(0, 2**32 - 1))
def test_the_bound_holds_for_any_probabilistic_classifier(n_samples, n_classes, temperature, seed):
    # The paper's remark: the theorem needs no ensemble; a softmax's sampled predictions obey it too.
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_samples, n_classes)) / temperature
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, n_classes, n_samples)
    assert abs(gde_gap(probs, labels)) <= class_aggregated_calibration_error(probs, labels) / 2 + 1e-12


def test_binning_can_break_the_papers_form_of_the_bound():
    # 16 models, 15 bins: the levels 15/16 and 1 share the top bin (and 1/16 and 0 the bottom one).
    # Points 0-15: one model says 1, the label is 0 (underconfident); points 16-31: all say 0, one
    # label is 1 (overconfident). The bins' residuals cancel; the gap does not.
    votes = np.zeros((16, 32), int)
    votes[0, :16] = 1
    labels = np.zeros(32, int)
    labels[16] = 1
    d = gde_diagnostics(votes, labels)
    assert d.cace_binned == pytest.approx(0.0, abs=1e-12) and d.gap == pytest.approx(1 / 256)
    assert not d.bound_holds_binned
    assert d.bound_holds and d.gap <= d.cace / 2  # the exact level sets: CACE 1/8
    assert d.gap <= d.cace_binned / 2 + d.expected_error / PAPER_BINS  # the binned form, paid for the bins' width


def test_a_curve_weights_sum_to_the_number_of_classes_and_cwce_bounds_cace():
    votes, labels = _zoo(np.random.default_rng(2), 5, 200, 3)
    ensemble = vote_ensemble(votes, 3)
    curve = calibration_curve(ensemble, labels)
    assert curve.weight.sum() == pytest.approx(3) and set(curve.confidence) <= {k / 5 for k in range(6)}
    assert class_wise_calibration_error(ensemble, labels) >= class_aggregated_calibration_error(ensemble, labels)
    binned = calibration_curve(ensemble, labels, bins=2)
    assert len(binned.confidence) == 2


def test_a_true_class_no_model_predicts_counts_at_confidence_zero():
    d = gde_diagnostics(np.array([[0, 0], [0, 1]]), np.array([2, 0]))  # class 2 is never predicted
    assert d.expected_error == 0.75 and d.bound_holds


def test_bad_input_is_refused():
    with pytest.raises(otl.InputError):
        class_aggregated_calibration_error([[0.5, 0.6]], [0])
    with pytest.raises(otl.InputError):
        gde_diagnostics([[0, 1]], [0, 1], bins=0)


def test_the_bound_holds_on_every_zoo_and_shift_of_the_tiny_benchmark(bench_store):
    pytest.importorskip("torch", reason="the zoo's networks need the torch extra, which make test installs")
    from ontheline.bench.config import CONFIGS
    from ontheline.bench.predict import zoo_predictions
    from ontheline.store import Store

    preds, _ = zoo_predictions(CONFIGS["tiny"], "digits", store=Store(bench_store))
    checked = 0
    for zoo, mask in preds.zoo_parts().items():
        for split, probs in preds.probs.items():
            d = gde_diagnostics(probs[mask], preds.labels[split])
            assert d.bound_holds and d.gap <= d.cace / 2 + 1e-12, (zoo, split, d)
            assert d.bound_holds_binned  # fewer models than bins: the paper's estimate is exact here
            checked += 1
    assert checked == 3 * (2 + len(CONFIGS["tiny"].shifts("digits")))


def test_estimate_reports_cace_in_the_table_the_json_and_the_report(tmp_path, capsys):
    id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=6, random_state=0)
    models = [f"m{i}" for i in range(6)]
    np.savez(tmp_path / "id.npz", probs=id_probs, labels=id_labels, models=models)
    np.savez(tmp_path / "ood.npz", probs=ood_probs, models=models)
    args = ["estimate", "--id", str(tmp_path / "id.npz"), "--ood", str(tmp_path / "ood.npz"), "--method", "gde"]
    assert main([*args, "--format", "json"]) == 0
    diagnostics = json.loads(capsys.readouterr().out)["gde_diagnostics"]
    assert diagnostics["ood"] is None and diagnostics["id"]["bound_holds"] is True
    expected = gde_diagnostics(id_probs, id_labels)
    assert diagnostics["id"]["cace"] == pytest.approx(expected.cace, rel=1e-5)
    assert diagnostics["id"]["gap"] == pytest.approx(expected.gap, rel=1e-5, abs=1e-6)
    assert main([*args, "--report", str(tmp_path / "r.html")]) == 0
    table = capsys.readouterr().out
    assert f"GDE check on the ID data: CACE {expected.cace:.3f}" in table and "OOD data" not in table
    html = (tmp_path / "r.html").read_text()
    assert "Is GDE justified here?" in html and "ID vote ensemble" in html and "ID mean softmax" in html
