import numpy as np
import pytest

import ontheline as otl
from ontheline.estimators.confidence import atc_thresholds, confidence_scores, fit_temperature


def official_atc_threshold(scores, correct):
    """The ATC repository's sweep: the score minimising |#incorrect above - #correct at or below|."""
    order = np.argsort(scores)
    s, c = scores[order], correct[order]
    best, threshold = len(s) + 1, None
    for k in range(len(s)):
        fp = np.sum(~c[k:])  # incorrect at or above s[k]
        fn = np.sum(c[:k])  # correct strictly below s[k]
        if abs(fp - fn) < best:
            best, threshold = abs(fp - fn), s[k]
    return threshold


def test_atc_threshold_matches_the_official_sweep_when_scores_are_distinct():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.random(50)
        correct = rng.random(50) < scores
        ours = atc_thresholds(scores[None], correct[None])[0]
        assert (scores >= ours).sum() == correct.sum()
        assert (scores >= official_atc_threshold(scores, correct)).sum() == pytest.approx(correct.sum(), abs=1)


def test_atc_reproduces_the_id_accuracy_on_the_id_data():
    id_probs, id_labels, _, _ = otl.make_line_zoo(n_models=5, n_samples=800, random_state=1)
    for score in ("max_confidence", "negative_entropy"):
        estimator = otl.ATC(score=score).fit(id_probs, id_labels)
        np.testing.assert_allclose(estimator.estimate(id_probs).ood_accuracy, estimator.id_accuracy_)


def test_atc_on_a_perfect_model_predicts_one_not_zero():
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])
    labels = np.array([0, 1, 0])
    for score in ("max_confidence", "negative_entropy"):
        result = otl.ATC(score=score).fit(probs, labels).estimate(probs)
        assert result.ood_accuracy[0] == 1.0


def test_atc_on_a_model_wrong_everywhere_predicts_zero():
    probs = np.array([[[0.9, 0.1], [0.2, 0.8]]])
    assert otl.ATC().fit(probs, [1, 0]).estimate(probs).ood_accuracy[0] == 0.0


def test_negative_entropy_matches_its_definition():
    p = np.array([[[0.5, 0.25, 0.25]]])
    np.testing.assert_allclose(confidence_scores(p, "negative_entropy"), [[-(0.5 * np.log(2) + 0.5 * np.log(4))]])


def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(20000, 4))
    true_t = 2.5
    p = np.exp(logits / true_t)
    p /= p.sum(1, keepdims=True)
    labels = (rng.random((20000, 1)) > p.cumsum(1)).sum(1)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)


def test_doc_and_ac_follow_their_definitions():
    id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=4, n_samples=500, random_state=2)
    doc = otl.DoC(calibrate=False).fit(id_probs, id_labels)
    ac_ood = ood_probs.max(-1).mean(1)
    expected = np.clip(doc.id_accuracy_ + ac_ood - id_probs.max(-1).mean(1), 0, 1)
    np.testing.assert_allclose(doc.estimate(ood_probs).ood_accuracy, expected)
    np.testing.assert_allclose(
        otl.AC(calibrate=False).fit(id_probs, id_labels).estimate(ood_probs).ood_accuracy, ac_ood
    )
    np.testing.assert_allclose(doc.estimate(id_probs).ood_accuracy, doc.id_accuracy_)


def test_calibration_makes_average_confidence_closer_to_id_accuracy():
    id_probs, id_labels, _, _ = otl.make_line_zoo(n_models=6, n_samples=2000, random_state=3)
    raw = otl.AC(calibrate=False).fit(id_probs, id_labels)
    calibrated = otl.AC().fit(id_probs, id_labels)  # temperature-scaled on ID by default
    gap_raw = np.abs(raw.estimate(id_probs).ood_accuracy - raw.id_accuracy_).mean()
    gap_cal = np.abs(calibrated.estimate(id_probs).ood_accuracy - calibrated.id_accuracy_).mean()
    assert gap_cal < gap_raw / 3


def test_gde_is_the_mean_agreement_with_the_other_models():
    preds = np.random.default_rng(3).integers(0, 3, (4, 100))
    agreement = otl.pairwise_agreement(preds)
    expected = [np.mean([agreement[i, j] for j in range(4) if j != i]) for i in range(4)]
    with pytest.warns(otl.AgreementNotLinearWarning, match="distinct pair agreements"):  # 4 models: 6 pairs at most
        result = otl.GDE().fit(preds, preds[0]).estimate(preds)
    np.testing.assert_allclose(result.ood_accuracy, expected)


def test_bad_confidence_settings_are_rejected():
    with pytest.raises(
        ValueError,
        match=r"The 'score' parameter of ATC must be one of \{'max_confidence', 'negative_entropy'\}. Got 'entropy' instead.",
    ):
        otl.ATC(score="entropy")
    with pytest.raises(
        ValueError, match=r"The 'calibrate' parameter of DoC must be one of \{True, False\}. Got 'yes' instead."
    ):
        otl.DoC(calibrate="yes")
