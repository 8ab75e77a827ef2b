import warnings

import numpy as np
import pytest
from scipy.special import ndtr

import ontheline as otl
from ontheline.agreement import fit_agreement_line, probit
from ontheline.estimators.aline import aline_d, aline_s


def statistics_on_a_line(n_models, slope, bias, seed=0):
    """Accuracies and agreements that lie exactly on one probit line."""
    rng = np.random.default_rng(seed)
    id_acc = rng.uniform(0.3, 0.9, n_models)
    id_agr = rng.uniform(0.3, 0.9, (n_models, n_models))
    id_agr = np.triu(id_agr, 1) + np.triu(id_agr, 1).T + np.eye(n_models)
    ood_agr = ndtr(slope * probit(id_agr) + bias)
    np.fill_diagonal(ood_agr, 1.0)
    return id_acc, id_agr, ood_agr, ndtr(slope * probit(id_acc) + bias)


def slow_aline_d(id_acc, id_agr, ood_agr, slope, keep=(0.05, 0.98)):
    """The official algorithm: one dense least-squares row per kept pair."""
    n = len(id_acc)
    rows, rhs = [], []
    for i in range(n):
        for j in range(i + 1, n):
            if keep[0] <= id_agr[i, j] <= keep[1] and keep[0] <= ood_agr[i, j] <= keep[1]:
                row = np.zeros(n)
                row[[i, j]] = 0.5
                rows.append(row)
                rhs.append(
                    probit(ood_agr[i, j])
                    + slope * (0.5 * probit(id_acc[i]) + 0.5 * probit(id_acc[j]) - probit(id_agr[i, j]))
                )
    w = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return ndtr(w)


@pytest.mark.parametrize(("slope", "bias"), [(1.0, 0.0), (0.7, -0.4), (1.3, 0.25)])
def test_aline_recovers_slope_bias_and_accuracy_on_a_line(slope, bias):
    id_acc, id_agr, ood_agr, ood_acc = statistics_on_a_line(12, slope, bias)
    line, mask = fit_agreement_line(id_agr, ood_agr)
    np.testing.assert_allclose([line.slope, line.bias, line.r2], [slope, bias, 1.0], atol=1e-9)
    np.testing.assert_allclose(aline_s(id_acc, 10**6, line.slope, line.bias), ood_acc, atol=1e-6)
    solution = aline_d(id_acc, 10**6, id_agr, ood_agr, mask, line.slope)
    np.testing.assert_allclose(solution.ood_accuracy, ood_acc, atol=1e-6)


def test_aline_d_normal_equations_match_the_dense_least_squares_of_the_official_code():
    rng = np.random.default_rng(7)
    id_acc, id_agr, ood_agr, _ = statistics_on_a_line(15, 0.8, -0.1)
    noise = rng.normal(scale=0.02, size=ood_agr.shape)
    ood_agr = np.clip(ood_agr + np.triu(noise, 1) + np.triu(noise, 1).T, 0, 1)
    ood_agr[0, 5] = ood_agr[5, 0] = 0.99  # filtered out
    line, mask = fit_agreement_line(id_agr, ood_agr)
    fast = aline_d(id_acc, 10**6, id_agr, ood_agr, mask, line.slope).ood_accuracy
    np.testing.assert_allclose(fast, slow_aline_d(id_acc, id_agr, ood_agr, line.slope), atol=1e-10)


def test_aline_s_returns_an_accuracy_not_a_probit_value():
    id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=10, n_samples=1500, random_state=3)
    res = otl.ALineS(n_bootstrap=0).fit(id_preds, id_labels).estimate(ood_preds)
    assert ((res.ood_accuracy > 0) & (res.ood_accuracy < 1)).all()
    expected = ndtr(res.slope * probit(res.id_accuracy, 1500) + res.bias)
    np.testing.assert_allclose(res.ood_accuracy, expected)


def test_aline_estimates_are_close_to_the_truth_on_a_generated_zoo():
    id_preds, id_labels, ood_preds, ood_labels = otl.make_line_zoo(random_state=1)
    truth = otl.accuracy(ood_preds, ood_labels)
    for estimator in (otl.ALineD(n_bootstrap=0), otl.ALineS(n_bootstrap=0)):
        res = estimator.fit(id_preds, id_labels).estimate(ood_preds)
        assert res.trusted
        assert np.abs(res.ood_accuracy - truth).mean() < 0.02


def test_a_model_with_id_accuracy_of_exactly_zero_or_one_gives_finite_estimates():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 400)
    noisy = [np.where(rng.random(400) < p, truth, rng.integers(0, 5, 400)) for p in np.linspace(0.2, 0.9, 8)]
    wrong = (truth + 1) % 5
    id_preds = np.stack([truth, wrong, *noisy])  # accuracy exactly 1 and exactly 0
    ood_preds = np.stack([np.where(rng.random(400) < 0.8, p, rng.integers(0, 5, 400)) for p in id_preds])
    for estimator in (otl.ALineD(n_bootstrap=20), otl.ALineS(n_bootstrap=20)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", otl.AgreementNotLinearWarning)
            warnings.simplefilter("ignore", otl.ModelFallbackWarning)
            res = estimator.fit(id_preds, truth).estimate(ood_preds)
        assert np.isfinite(res.ood_accuracy).all()


def zoo_with_an_outsider(seed=0):
    """Six similar models and one that agrees with none of them above 5% (its pairs are all filtered)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 600)
    models = [np.where(rng.random(600) < p, truth, rng.integers(0, 5, 600)) for p in np.linspace(0.5, 0.95, 6)]
    outsider = truth + 5  # classes nobody else predicts
    outsider[:12] = models[0][:12]  # 2% agreement with one model: still below the filter
    return np.stack([*models, outsider]), truth


def test_an_isolated_model_falls_back_to_aline_s_with_a_warning_instead_of_getting_one_half():
    preds, truth = zoo_with_an_outsider()
    estimator = otl.ALineD(n_bootstrap=0).fit(preds, truth)
    with pytest.warns(
        otl.ModelFallbackWarning, match=r"models \['model_6'\] agree with no other model inside \[0.05, 0.98\]"
    ):
        res = estimator.estimate(preds)
    line_only = otl.ALineS(n_bootstrap=0).fit(preds, truth).estimate(preds)
    assert res.ood_accuracy[6] == pytest.approx(line_only.ood_accuracy[6])
    assert res.ood_accuracy[6] != pytest.approx(0.5)
    assert any("ALine-S used for 1 models" in note for note in res.notes)


def test_a_bipartite_pair_graph_is_detected_and_explained():
    # Four models whose kept pairs form a 4-cycle: w is not identifiable (rank 3 of 4).
    id_agr = np.array([[1, 0.4, 0.99, 0.7], [0.4, 1, 0.5, 0.99], [0.99, 0.5, 1, 0.6], [0.7, 0.99, 0.6, 1]])
    ood_agr = id_agr * 0.9 + 0.1 * np.eye(4)
    line, mask = fit_agreement_line(id_agr, ood_agr, keep=(0.05, 0.98))
    solution = aline_d(np.full(4, 0.7), 1000, id_agr, ood_agr, mask, line.slope)
    assert solution.bipartite.all() and np.isnan(solution.ood_accuracy).all()


def test_aline_d_explains_a_pair_graph_without_a_triangle():
    # Three models whose only kept pairs are (0,1) and (1,2): a path, which is bipartite.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 1000)
    a = np.where(rng.random(1000) < 0.7, truth, 1 - truth)
    b = np.where(rng.random(1000) < 0.1, a, 1 - a)  # agrees 10% with a
    c = 1 - b
    c[:20] = b[:20]  # agrees 2% with b (filtered), about 90% with a
    preds = np.stack([a, b, c])
    with pytest.raises(
        ValueError,
        match=r"form a connected, non-bipartite graph; models \[.model_0., .model_1., .model_2.\] form a bipartite pair graph",
    ):
        otl.ALineD(n_bootstrap=0).fit(preds, truth).estimate(preds)


def test_aline_needs_three_models():
    with pytest.raises(ValueError, match="ALineD needs at least 3 models; id_preds has 2"):
        otl.ALineD().fit([[0, 1, 1], [1, 1, 0]], [0, 1, 1])


def test_aline_warns_when_agreement_is_not_linear():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 3000)
    id_preds = np.stack(
        [np.where(rng.random(3000) < p, truth, rng.integers(0, 10, 3000)) for p in np.linspace(0.3, 0.9, 10)]
    )
    ood_preds = rng.integers(0, 10, (10, 3000))  # agreement unrelated to ID agreement
    ood_preds[:5] = ood_preds[0]
    with pytest.warns(otl.AgreementNotLinearWarning, match=r"weakly linear \(R²=0\.\d\d\d after probit"):
        res = otl.ALineS(n_bootstrap=0).fit(id_preds, truth).estimate(ood_preds)
    assert not res.trusted and res.agreement_r2 < 0.95


def test_bootstrap_interval_brackets_the_estimate_and_the_truth_most_of_the_time():
    id_preds, id_labels, ood_preds, ood_labels = otl.make_line_zoo(n_models=12, n_samples=3000, random_state=2)
    res = otl.ALineD(n_bootstrap=100).fit(id_preds, id_labels).estimate(ood_preds)
    low, high = res.interval.T
    assert (low <= res.ood_accuracy + 1e-12).mean() > 0.9 and (res.ood_accuracy <= high + 1e-12).mean() > 0.9
    assert ((high - low) > 0).all() and ((high - low) < 0.1).all()
    truth = otl.accuracy(ood_preds, ood_labels)
    assert ((low - 0.01 <= truth) & (truth <= high + 0.01)).mean() >= 0.75


def test_bootstrap_is_reproducible_with_a_seed():
    id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=6, n_samples=800, random_state=4)
    first = otl.ALineD(n_bootstrap=30, random_state=5).fit(id_preds, id_labels).estimate(ood_preds)
    again = otl.ALineD(n_bootstrap=30, random_state=5).fit(id_preds, id_labels).estimate(ood_preds)
    np.testing.assert_array_equal(first.interval, again.interval)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"keep": (0.5, 0.2)},
            r"The 'keep' parameter of ALineD must satisfy 0 < low < high < 1. Got \(0.5, 0.2\) instead.",
        ),
        ({"min_r2": 2}, r"The 'min_r2' parameter of ALineD must be in \[0.0, 1.0\]. Got 2 instead."),
        ({"n_bootstrap": -1}, r"The 'n_bootstrap' parameter of ALineD must be in \[0, inf\]. Got -1 instead."),
        ({"n_bootstrap": 1.5}, r"The 'n_bootstrap' parameter of ALineD must be an integer. Got 1.5 instead."),
        ({"confidence": 1.5}, r"The 'confidence' parameter of ALineD must be in \[0.0, 1.0\]"),
        ({"n_groups": 1}, r"The 'n_groups' parameter of ALineD must be in \[2, inf\]"),
    ],
)
def test_bad_hyperparameters_are_rejected_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        otl.ALineD(**kwargs)


def test_a_disconnected_pair_graph_whose_components_have_triangles_is_solved_exactly():
    id_acc, id_agr, ood_agr, ood_acc = statistics_on_a_line(6, 0.9, -0.2, seed=3)
    for a in range(3):
        for b in range(3, 6):  # no kept pair between {0, 1, 2} and {3, 4, 5}
            id_agr[a, b] = id_agr[b, a] = ood_agr[a, b] = ood_agr[b, a] = 0.01
    line, mask = fit_agreement_line(id_agr, ood_agr)
    solution = aline_d(id_acc, 10**6, id_agr, ood_agr, mask, line.slope)
    assert not solution.isolated.any() and not solution.bipartite.any()
    np.testing.assert_allclose(solution.ood_accuracy, ood_acc, atol=1e-6)


def near_identical_zoo(flips=(5, 5, 16, 16), n=1000):
    """Models that each flip their own disjoint set of one base prediction: pair agreements repeat
    exactly, so the kept pairs give only 2 distinct points (a line through them has R² = 1)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, n)
    base = np.where(rng.random(n) < 0.8, truth, 1 - truth)
    starts = np.cumsum((0, *flips))
    preds = np.stack(
        [np.where((np.arange(n) >= a) & (np.arange(n) < b), 1 - base, base) for a, b in zip(starts, starts[1:])]
    )
    return preds, truth


def test_a_line_through_too_few_distinct_pairs_is_not_trusted():
    preds, truth = near_identical_zoo()
    for estimator in (otl.ALineS(n_bootstrap=50), otl.ALineD(n_bootstrap=50)):
        with pytest.warns(otl.AgreementNotLinearWarning, match="only 2 distinct pair agreements"):
            result = estimator.fit(preds, truth).estimate(preds)
        assert result.line.r2 == pytest.approx(1.0) and result.line.n_distinct == 2
        assert not result.trusted and any("trust needs at least 6" in issue for issue in result.trust_issues)
        assert ((result.interval[:, 0] <= result.ood_accuracy) & (result.ood_accuracy <= result.interval[:, 1])).all()


def test_a_line_whose_pairs_spread_less_than_their_sampling_noise_is_not_trusted():
    line = otl.AgreementLine(1.0, 0.0, r2=0.99, n_pairs=28, n_distinct=28, spread=0.5)
    assert line.trust_issues(0.95) == (
        "the pairs' ID agreements spread over 0.50 sampling standard errors, so the line is drawn by noise; "
        "trust needs at least 1",
    )
    assert otl.AgreementLine(1.0, 0.0, r2=0.99, n_pairs=28, n_distinct=28, spread=3.0).trust_issues(0.95) == ()


def test_the_spread_is_measured_in_sampling_standard_errors_of_the_probit_agreement():
    from ontheline.agreement import probit_se

    rng = np.random.default_rng(0)
    n, p = 400, 0.9
    draws = probit(rng.binomial(n, p, 20_000) / n)  # many ID sets of n samples for one pair
    assert draws.std() == pytest.approx(probit_se(np.array([p]), n)[0], rel=0.05)


def test_bootstrap_resamples_without_a_line_are_counted_and_flag_the_result():
    preds, truth = near_identical_zoo(flips=(8, 8, 9, 13))  # pairs near the filter's edge: resamples lose them
    with pytest.warns(otl.AgreementNotLinearWarning):
        result = otl.ALineS(n_bootstrap=100).fit(preds, truth).estimate(preds)
    failed = [n for n in result.notes if "bootstrap resamples kept too few pairs" in n]
    assert failed, result.notes
    count = int(failed[0].split()[0])
    assert (count > 10) == any("bootstrap resamples could not fit" in f for f in result.flags)
    assert ((result.interval[:, 0] <= result.ood_accuracy) & (result.ood_accuracy <= result.interval[:, 1])).all()


def test_a_falling_agreement_line_is_not_trusted_however_straight():
    line = otl.AgreementLine(-0.44, 0.1, r2=0.96, n_pairs=6, n_distinct=6, spread=1.12)
    assert line.trust_issues(0.95) == (
        "the agreement line falls (slope -0.44): pairs that agree more on ID agree less on OOD, "
        "which no shift shared by the zoo produces",
    )


def test_a_line_whose_spread_is_unknown_is_not_trusted():
    line = otl.AgreementLine(1.0, 0.0, r2=0.99, n_pairs=28, n_distinct=28, spread=float("nan"))
    assert any("spread against their sampling noise is unknown" in issue for issue in line.trust_issues(0.95))
