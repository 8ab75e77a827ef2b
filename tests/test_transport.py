"""COT and COTT against brute-force transport and the invariants of the optimal plan."""

import itertools

import numpy as np
import pytest

import ontheline as otl

pytest.importorskip("ot", reason="COT and COTT need the ot extra, which make test installs")

from ontheline.estimators.transport import label_distribution, transport_costs  # noqa: E402


def brute_force_cost(probs, labels):
    """The least mean cost of matching each sample to one label of the multiset ``labels``: every permutation."""
    n = len(labels)
    return min(
        np.mean([1.0 - probs[i, labels[j]] for i, j in enumerate(perm)]) for perm in itertools.permutations(range(n))
    )


def linear_program_cost(probs, distribution):
    """The transportation problem as a plain linear program (scipy's HiGHS): obviously correct, slow."""
    from scipy.optimize import linprog

    n, k = probs.shape
    cost = (1.0 - probs).ravel()
    rows = np.kron(np.eye(n), np.ones(k))  # each sample sends 1/n
    columns = np.kron(np.ones(n), np.eye(k))  # each class receives its share
    result = linprog(cost, A_eq=np.vstack([rows, columns]), b_eq=np.concatenate([np.full(n, 1 / n), distribution]))
    return result.fun


@pytest.mark.parametrize("seed", range(20))
def test_the_transport_cost_equals_the_best_matching_of_samples_to_labels(seed):
    rng = np.random.default_rng(seed)
    n, k = rng.integers(2, 7), rng.integers(2, 4)
    probs = rng.dirichlet(np.full(k, 0.5), n)
    labels = rng.integers(0, k, n)
    costs = transport_costs(probs, label_distribution(labels, k))
    assert costs.mean() == pytest.approx(brute_force_cost(probs, labels), abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_the_transport_cost_equals_the_linear_program_for_any_label_distribution(seed):
    rng = np.random.default_rng(100 + seed)
    probs = rng.dirichlet(np.ones(4), 30)
    distribution = rng.dirichlet(np.ones(4))
    assert transport_costs(probs, distribution).mean() == pytest.approx(
        linear_program_cost(probs, distribution), abs=1e-9
    )


@pytest.mark.filterwarnings("ignore::ontheline.AgreementNotLinearWarning")  # a 4-model zoo: no line to trust
def test_cot_never_exceeds_average_confidence_and_meets_it_without_pseudo_label_shift():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(3, 0.3), (4, 200))
    labels = rng.integers(0, 3, 200)
    cot = otl.COT(calibrate=False).fit(probs, labels).estimate(probs).ood_accuracy
    ac = otl.AC(calibrate=False).fit(probs, labels).estimate(probs).ood_accuracy
    assert (cot <= ac + 1e-12).all()
    # When every model predicts each class exactly as often as the labels say, COT is AC.
    matched = np.stack([np.eye(3)[np.roll(labels, s)] * 0.8 + 0.2 / 3 for s in range(4)])
    cot = otl.COT(calibrate=False).fit(matched, labels).estimate(matched).ood_accuracy
    ac = otl.AC(calibrate=False).fit(matched, labels).estimate(matched).ood_accuracy
    np.testing.assert_allclose(cot, ac, atol=1e-12)


@pytest.mark.filterwarnings("ignore::ontheline.AgreementNotLinearWarning")
def test_uniform_outputs_give_chance_and_one_hot_outputs_that_match_the_labels_give_one():
    labels = np.arange(300) % 3
    uniform = np.full((3, 300, 3), 1 / 3)
    assert otl.COT(calibrate=False).fit(uniform, labels).estimate(uniform).ood_accuracy == pytest.approx(1 / 3)
    one_hot = np.stack([np.eye(3)[np.roll(labels, s)] for s in range(3)])
    np.testing.assert_allclose(otl.COT(calibrate=False).fit(one_hot, labels).estimate(one_hot).ood_accuracy, 1.0)


def test_cott_reproduces_the_id_accuracy_on_the_id_data():
    id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=6, n_samples=800, random_state=4)
    for calibrate in (True, False):
        cott = otl.COTT(calibrate=calibrate).fit(id_probs, id_labels)
        np.testing.assert_allclose(cott.estimate(id_probs).ood_accuracy, cott.id_accuracy_, atol=2 / 800)


def test_cot_and_cott_follow_the_accuracy_under_a_shift():
    id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=10, n_samples=3000, random_state=5)
    truth = otl.accuracy(ood_probs, ood_labels)
    for method in (otl.COT(), otl.COTT()):
        estimate = method.fit(id_probs, id_labels).estimate(ood_probs).ood_accuracy
        assert np.abs(estimate - truth).mean() < 0.1, method.name  # a baseline: close, not exact
        assert np.corrcoef(estimate, truth)[0, 1] > 0.95


def test_the_label_distribution_comes_from_the_id_labels_and_covers_unused_classes():
    np.testing.assert_allclose(label_distribution(np.array([0, 0, 2]), 4), [2 / 3, 0, 1 / 3, 0])
