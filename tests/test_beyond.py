"""auto, the calibrated intervals and their coverage: against slow references and the leave-one-family-out rule."""

import json
import math

import numpy as np
import pytest

from ontheline._validation import InputError
from ontheline.bench.calibrate import (
    Labelled,
    answer_with,
    conformal_quantiles,
    fit_table,
    leave_one_family_out,
)
from ontheline.cli._common import to_json
from ontheline.estimators.auto import (
    ANY,
    MEDIAN,
    CalibrationTable,
    ShiftDiagnostics,
    calibrated_interval,
    choose,
    coverage,
    load_table,
    median_estimate,
)

TRUSTED = ShiftDiagnostics(agreement_r2=0.99, trusted=True, confidence_gap=0.02, label_shift=0.01)
BROKEN = ShiftDiagnostics(agreement_r2=0.3, trusted=False, confidence_gap=0.3, label_shift=0.2)


def _shifts(seed=0, families=("blur", "noise", "geometric", "digital"), per_family=10, n_models=12):
    """Labelled shifts where 'sharp' is right on trusted shifts and 'robust' on broken ones."""
    rng = np.random.default_rng(seed)
    out = []
    for family in families:
        for k in range(per_family):
            diag = TRUSTED if k % 2 else BROKEN
            truth = rng.uniform(0.3, 0.9, n_models)
            sharp = truth + rng.normal(0, 0.01 if diag.trusted else 0.2, n_models)
            robust = truth + rng.normal(0, 0.08 if diag.trusted else 0.03, n_models)
            out.append(Labelled(f"{family}-{k}", family, diag, {"sharp": sharp, "robust": robust}, truth))
    return out


def _slow_quantiles(per_shift, alpha):
    """Pooled-CDF conformal by brute force: repeat each shift's errors so that every shift has the
    same number of copies, then read the order statistics on the shift scale."""
    lcm = int(np.lcm.reduce([len(e) for e in per_shift]))
    expanded = sorted(v for e in per_shift for v in e for _ in range(lcm // len(e)))
    n = len(per_shift)
    k_low, k_high = math.floor((n + 1) * alpha / 2), math.ceil((n + 1) * (1 - alpha / 2))
    low = expanded[k_low * lcm - 1] if k_low >= 1 else -1.0
    high = expanded[k_high * lcm - 1] if k_high <= n else 1.0
    return low, high


@pytest.mark.parametrize("n", [1, 5, 18, 19, 20, 38, 39, 99])
@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.5])
def test_conformal_quantiles_with_one_error_per_shift_are_the_textbook_order_statistics(n, alpha):
    errors = np.random.default_rng(n).normal(size=n)
    e = np.sort(errors)
    k_low, k_high = math.floor((n + 1) * alpha / 2), math.ceil((n + 1) * (1 - alpha / 2))
    expected = (e[k_low - 1] if k_low >= 1 else -1.0, e[k_high - 1] if k_high <= n else 1.0)
    assert conformal_quantiles([np.array([v]) for v in errors], alpha) == expected


def test_conformal_quantiles_at_the_edges_of_finiteness():
    def one_each(n):
        return [np.array([float(i)]) for i in range(1, n + 1)]

    assert conformal_quantiles(one_each(18), 0.1) == (-1.0, 1.0)  # 2 / alpha - 1 = 19 shifts needed
    assert conformal_quantiles(one_each(19), 0.1) == (1.0, 19.0)
    assert conformal_quantiles(one_each(38), 0.1) == (1.0, 38.0)
    assert conformal_quantiles(one_each(39), 0.1) == (2.0, 38.0)


@pytest.mark.parametrize("seed", range(6))
def test_conformal_quantiles_weigh_each_shift_equally_whatever_its_number_of_models(seed):
    rng = np.random.default_rng(seed)
    per_shift = [rng.normal(size=rng.integers(1, 7)) for _ in range(int(rng.integers(19, 60)))]
    assert conformal_quantiles(per_shift, 0.1) == pytest.approx(_slow_quantiles(per_shift, 0.1))


def test_conformal_intervals_cover_new_shifts_at_the_nominal_rate_even_when_a_shift_is_off_together():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(1500):
        # 40 shifts of 10 models: each shift has its own offset (heavy-tailed), the models scatter around it
        shifts = [rng.standard_t(3) + 0.1 * rng.normal(size=10) for _ in range(40)]
        low, high = conformal_quantiles(shifts, 0.1)
        new = rng.standard_t(3) + 0.1 * rng.normal(size=10)
        hits.append(np.mean((low <= new) & (new <= high)))
    # >= 90% by construction (about 92% for 40 shifts); 1,500 draws: SE under 0.8 points
    assert 0.895 <= np.mean(hits) <= 0.95


def test_coverage_is_the_share_of_models_whose_truth_lies_in_the_interval():
    truth = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.3])
    interval = np.array([[0.4, 0.55], [0.65, 0.7], [0.6, 0.8], [0.0, 0.79], [0.9, 0.9], [np.nan, np.nan]])
    slow = sum(lo <= t <= hi for t, (lo, hi) in zip(truth[:5], interval[:5])) / 5  # the last model has no interval
    assert coverage(interval, truth) == slow == 0.6
    assert math.isnan(coverage(np.full((3, 2), np.nan), truth[:3]))


def test_the_table_relies_in_each_bucket_on_the_method_with_the_lowest_error_there():
    table = fit_table(_shifts())
    assert table.rules["trusted"].method == "sharp"
    assert table.rules["no-line"].method == "robust"
    assert table.rule(TRUSTED)[1].method == "sharp" and table.rule(BROKEN)[1].method == "robust"
    # the rule's MAE is the mean over the bucket's shifts of each shift's MAE (points)
    trusted = [s for s in _shifts() if s.diagnostics.trusted]
    slow = np.mean([100 * np.abs(s.truth - s.estimates["sharp"]).mean() for s in trusted])
    assert table.rules["trusted"].mae["sharp"] == pytest.approx(slow)


def test_a_bucket_with_too_few_shifts_falls_back_to_a_coarser_one():
    table = fit_table(_shifts(per_family=2), min_shifts=5)  # 4 trusted and 4 broken shifts: only 'any' qualifies
    assert set(table.rules) == {ANY}
    assert table.rule(TRUSTED)[0] == ANY


def test_buckets_with_too_few_shifts_for_finite_bounds_take_their_intervals_from_a_coarser_bucket():
    table = fit_table(_shifts())  # 20 trusted and 20 broken shifts, 40 in all
    assert table.rules["trusted"].intervals_from == "trusted"
    small = fit_table(_shifts(per_family=6))  # 12 and 12: only 'any' has the 19 shifts finite bounds need
    assert small.rules["trusted"].method == "sharp" and small.rules["trusted"].intervals_from == ANY
    assert small.rules["trusted"].quantiles == small.rules[ANY].quantiles
    assert all(-1 < q[0] <= q[1] < 1 for q in small.rules[ANY].quantiles.values())


def test_the_median_is_a_candidate_only_when_the_same_methods_ran():
    estimates = {"a": np.array([0.1, np.nan]), "b": np.array([0.5, 0.6]), "c": np.array([0.9, 0.7])}
    np.testing.assert_allclose(median_estimate(estimates), [0.5, 0.65])
    table = fit_table(_shifts())
    assert table.median_of == ["robust", "sharp"] and MEDIAN in table.rules[ANY].quantiles
    both = {"sharp": np.array([0.3, 0.5]), "robust": np.array([0.4, 0.5])}
    assert MEDIAN in choose(both, TRUSTED, table).intervals
    alone = choose({"robust": np.array([0.4, 0.5]), "other": np.array([0.1, 0.2])}, TRUSTED, table)
    assert MEDIAN not in alone.intervals and alone.method == "robust"  # the median of other methods is uncalibrated


def test_a_failed_method_is_passed_over_for_the_next_best_in_the_bucket():
    table = fit_table(_shifts())
    choice = choose({"sharp": np.array([np.nan, 0.5]), "robust": np.array([0.4, 0.5])}, TRUSTED, table)
    assert table.rules["trusted"].method == "sharp" and choice.method != "sharp"
    assert np.isfinite(choice.estimate).all() and (choice.interval[:, 0] <= choice.estimate).all()


def test_leave_one_family_out_never_reads_the_held_out_family_labels():
    shifts = _shifts()
    before = leave_one_family_out(shifts)
    rng = np.random.default_rng(1)
    for family in ("blur", "geometric"):
        poisoned = [
            Labelled(s.name, s.family, s.diagnostics, s.estimates, rng.uniform(0, 1, len(s.truth)))
            if s.family == family
            else s
            for s in shifts
        ]
        after = leave_one_family_out(poisoned)
        for b, a in zip(before, after):
            if b.shift.family != family:
                continue
            assert a.choice.method == b.choice.method and a.choice.bucket == b.choice.bucket
            np.testing.assert_array_equal(a.choice.estimate, b.choice.estimate)
            for m in b.choice.intervals:
                np.testing.assert_array_equal(a.choice.intervals[m], b.choice.intervals[m])
        # ...while the other families' answers do read them (the poison is not inert)
        changed = [
            not np.array_equal(a.choice.intervals["robust"], b.choice.intervals["robust"])
            for b, a in zip(before, after)
            if b.shift.family != family
        ]
        assert any(changed)


def test_leave_one_family_out_calibrates_each_family_on_the_others_only():
    for answered in leave_one_family_out(_shifts()):
        assert f"without {answered.shift.family}" in answered.choice.table


def test_calibrated_intervals_cover_held_out_families_near_the_nominal_rate():
    answered = leave_one_family_out(_shifts(per_family=20, n_models=30))
    cover = np.mean([a.coverage()["auto"] for a in answered])
    assert 0.85 <= cover <= 0.97  # 90% nominal, exchangeable synthetic shifts


def test_intervals_stay_in_the_unit_range_and_contain_the_estimate_even_for_a_one_sided_method():
    interval = calibrated_interval(np.array([0.02, 0.5, 0.99]), (-0.05, 0.05))
    assert (interval >= 0).all() and (interval <= 1).all()
    assert (interval[:, 0] <= [0.02, 0.5, 0.99]).all() and (interval[:, 1] >= [0.02, 0.5, 0.99]).all()
    np.testing.assert_allclose(calibrated_interval(np.array([0.5]), (0.02, 0.1)), [[0.5, 0.6]])


def test_the_table_round_trips_through_json_and_names_its_source(tmp_path):
    table = fit_table(_shifts(), source={"name": "synthetic", "config": "test"})
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table.to_dict()))
    again = load_table(path)
    assert again == table
    assert "synthetic" in again.label and "test" in again.label
    answers = answer_with(again, _shifts(seed=3))
    assert all("synthetic" in a.choice.table for a in answers)


def test_a_table_without_a_confidence_gap_round_trips(tmp_path):
    shifts = [
        Labelled(s.name, s.family, ShiftDiagnostics(s.diagnostics.agreement_r2, s.diagnostics.trusted, math.nan, 0.0),
                 s.estimates, s.truth)
        for s in _shifts()
    ]  # fmt: skip
    table = fit_table(shifts)
    path = tmp_path / "t.json"
    path.write_text(to_json(table.to_dict()))
    again = load_table(path)
    assert math.isnan(again.gap_edge) and set(again.rules) == set(table.rules)


def test_the_shipped_table_loads_and_answers_every_kind_of_shift():
    table = load_table()
    assert isinstance(table, CalibrationTable) and ANY in table.rules
    assert table.source.get("command", "").startswith("ontheline bench")
    for diag in (TRUSTED, BROKEN, ShiftDiagnostics(math.nan, False, math.nan, 0.0)):
        name, rule = table.rule(diag)
        assert rule.method == min(rule.mae, key=lambda m: (rule.mae[m], m != MEDIAN, m))


@pytest.mark.parametrize("content", ["not json", json.dumps({"alpha": 0.1})])
def test_a_broken_table_is_an_input_error_that_says_how_to_rebuild_it(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(InputError, match="calibration table"):
        load_table(path)
    with pytest.raises(InputError, match="Cannot read"):
        load_table(tmp_path / "missing.json")


def test_the_benchmark_answers_a_family_identically_whatever_its_labels_say(generated_benchmark):
    from dataclasses import replace

    from ontheline.bench.calibrate import with_auto
    from ontheline.bench.score import ORACLE

    rng = np.random.default_rng(0)
    scores = list(generated_benchmark.scores)
    for family in sorted({s.shift.family for s in scores}):
        poisoned = [
            replace(s, ood_accuracy=rng.uniform(0, 1, len(s.models)),
                    estimates={**s.estimates, ORACLE: rng.uniform(0, 1, len(s.models))})
            if s.shift.family == family else s
            for s in scores
        ]  # fmt: skip
        before, _ = with_auto(scores)
        after, _ = with_auto(poisoned)
        for b, a in zip(before, after):
            if b.zoo == "all" and b.shift.family == family:
                assert a.auto == b.auto
                np.testing.assert_array_equal(a.estimates["auto"], b.estimates["auto"])
                assert a.intervals.keys() == b.intervals.keys()
                for m in b.intervals:
                    np.testing.assert_array_equal(a.intervals[m], b.intervals[m])


def test_auto_in_evaluate_reads_no_ood_label():
    import ontheline as otl

    id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=10, random_state=0)
    runs = [
        otl.evaluate(id_probs, id_labels, ood_probs, ood_labels=labels, n_bootstrap=0, bounds=())
        for labels in (ood_labels, np.random.default_rng(0).permutation(ood_labels), None)
    ]
    for other in runs[1:]:
        np.testing.assert_array_equal(other.results["auto"].ood_accuracy, runs[0].results["auto"].ood_accuracy)
        np.testing.assert_array_equal(other.results["auto"].interval, runs[0].results["auto"].interval)
        assert other.results["auto"].notes == runs[0].results["auto"].notes


def test_auto_counts_predicted_classes_over_both_sets_when_ood_predicts_a_class_id_never_did():
    import ontheline as otl
    from ontheline.estimators.auto import shift_diagnostics

    rng = np.random.default_rng(0)
    id_labels = rng.integers(0, 3, 200)
    id_preds = np.where(rng.random((6, 200)) < 0.8, id_labels, rng.integers(0, 3, (6, 200)))
    ood_preds = rng.integers(0, 4, (6, 150))  # class 3 appears only on OOD
    evaluation = otl.evaluate(id_preds, id_labels, ood_preds, n_bootstrap=0)
    assert "auto" in evaluation.results
    d = shift_diagnostics(otl.as_predictions(id_preds), otl.as_predictions(ood_preds), None, 0.95)
    # by hand: total variation between the predicted-class histograms over classes 0-3, mean over models
    slow = np.mean([0.5 * sum(abs(np.mean(a == c) - np.mean(b == c)) for c in range(4)) for a, b in zip(id_preds, ood_preds)])
    assert d.label_shift == pytest.approx(slow)
