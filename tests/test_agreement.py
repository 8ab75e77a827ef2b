import numpy as np
import pytest

import ontheline as otl
from ontheline.agreement import _CHUNK_SAMPLES, agreement_counts, fit_agreement_line, fit_line


def slow_agreement(labels):
    n = len(labels)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = np.mean([a == b for a, b in zip(labels[i], labels[j])])
    return out


@pytest.mark.parametrize(
    ("n_models", "n_samples", "n_classes"),
    [(2, 1, 2), (5, 63, 2), (7, 130, 10), (4, 257, 3), (9, 1000, 300), (3, 200, 1)],
)
def test_pairwise_agreement_matches_the_double_loop(n_models, n_samples, n_classes):
    labels = np.random.default_rng(n_samples).integers(0, n_classes, (n_models, n_samples))
    np.testing.assert_array_equal(otl.pairwise_agreement(labels), slow_agreement(labels))


def test_agreement_is_exact_across_sample_chunks_and_threads():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (6, 2 * _CHUNK_SAMPLES + 77)).astype(np.uint8)
    labels[1] = labels[0]  # a pair that agrees everywhere
    expected = np.array([[(a == b).sum() for b in labels] for a in labels])
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(agreement_counts(labels, n_threads=threads), expected)


def test_agreement_is_symmetric_with_a_unit_diagonal():
    labels = np.random.default_rng(2).integers(0, 10, (12, 500))
    agreement = otl.pairwise_agreement(labels)
    np.testing.assert_array_equal(agreement, agreement.T)
    np.testing.assert_array_equal(np.diag(agreement), 1.0)
    assert agreement.min() >= 0 and agreement.max() <= 1


def test_agreement_of_probabilities_uses_their_argmax():
    probs = np.random.default_rng(3).dirichlet(np.ones(5), size=(4, 90))
    np.testing.assert_array_equal(otl.pairwise_agreement(probs), slow_agreement(probs.argmax(-1)))


def test_accuracy_matches_a_loop_and_accepts_string_labels():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, (5, 40))
    truth = rng.integers(0, 3, 40)
    expected = [sum(p == t for p, t in zip(row, truth)) / 40 for row in labels]
    np.testing.assert_allclose(otl.accuracy(labels, truth), expected)
    names = np.array(["cat", "dog", "emu"])
    np.testing.assert_allclose(otl.accuracy(names[labels], names[truth]), expected)


def test_accuracy_rejects_labels_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"labels must have one label per sample: expected shape \(3,\), got \(2,\)"):
        otl.accuracy([[0, 1, 1]], [0, 1])


def test_probit_clips_accuracies_of_zero_and_one_to_finite_values():
    values = otl.probit([0.0, 1.0], n_samples=200)
    assert np.isfinite(values).all()
    np.testing.assert_allclose(values, [-otl.probit(1 - 1 / 400), otl.probit(1 - 1 / 400)])
    assert np.isinf(otl.probit(1.0))


def test_fit_line_matches_polyfit():
    rng = np.random.default_rng(5)
    x = rng.normal(size=50)
    y = 0.7 * x - 0.2 + 0.1 * rng.normal(size=50)
    slope, bias, r2 = fit_line(x, y)
    np.testing.assert_allclose([slope, bias], np.polyfit(x, y, 1))
    np.testing.assert_allclose(r2, np.corrcoef(x, y)[0, 1] ** 2)


def test_agreement_line_keeps_only_pairs_inside_the_filter():
    id_agreement = np.array([[1.0, 0.5, 0.99], [0.5, 1.0, 0.6], [0.99, 0.6, 1.0]])
    ood_agreement = np.array([[1.0, 0.4, 0.9], [0.4, 1.0, 0.03], [0.9, 0.03, 1.0]])
    with pytest.raises(ValueError, match="1 pairs were kept"):
        fit_agreement_line(id_agreement, ood_agreement)
    line, mask = fit_agreement_line(id_agreement, ood_agreement, keep=(0.01, 0.995))
    assert line.n_pairs == 3 and mask.sum() == 3 and not mask[1, 0]


def test_a_true_class_that_no_model_predicts_is_a_valid_label():
    np.testing.assert_allclose(otl.accuracy([[0, 1, 1], [1, 1, 1]], [0, 1, 300]), [2 / 3, 1 / 3])
