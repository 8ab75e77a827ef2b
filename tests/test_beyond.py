"""auto, the calibrated intervals and their coverage: against slow references and the leave-one-family-out rule."""

import json
import math

import numpy as np
import pytest

from ontheline._validation import InputError
from ontheline.bench.calibrate import (
    Answered,
    Labelled,
    answer_with,
    conformal_quantiles,
    fit_table,
    leave_one_family_out,
)
from ontheline.estimators.auto import (
    ANY,
    MEDIAN,
    CalibrationTable,
    ShiftDiagnostics,
    calibrated_interval,
    choose,
    load_table,
    median_estimate,
)

TRUSTED = ShiftDiagnostics(agreement_r2=0.99, trusted=True, confidence_gap=0.02, label_shift=0.01)
BROKEN = ShiftDiagnostics(agreement_r2=0.3, trusted=False, confidence_gap=0.3, label_shift=0.2)


def _shifts(seed=0, families=("blur", "noise", "geometric", "digital"), per_family=6, n_models=12):
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


def _slow_quantiles(errors, alpha):
    """Split conformal by its definition: the smallest order statistics with enough mass on each side."""
    e = sorted(errors)
    n = len(e)
    low_rank = math.floor((n + 1) * alpha / 2)
    high_rank = math.ceil((n + 1) * (1 - alpha / 2))
    return (e[low_rank - 1] if low_rank >= 1 else -1.0, e[high_rank - 1] if high_rank <= n else 1.0)


@pytest.mark.parametrize("n", [1, 5, 18, 19, 20, 99, 500])
@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.5])
def test_conformal_quantiles_match_the_order_statistics_of_the_definition(n, alpha):
    errors = np.random.default_rng(n).normal(size=n)
    assert conformal_quantiles(errors, alpha) == _slow_quantiles(list(errors), alpha)


def test_conformal_intervals_cover_new_exchangeable_errors_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(2000):
        errors = rng.standard_t(3, size=40)  # heavy tails: no normality to lean on
        low, high = conformal_quantiles(errors, 0.1)
        new = rng.standard_t(3)
        hits.append(low <= new <= high)
    # The guarantee is >= 90% (and < 90% + 2/(n+1) for continuous errors); 2,000 draws: SE 0.7 points.
    assert 0.88 <= np.mean(hits) <= 0.96


def test_coverage_is_the_share_of_models_whose_truth_lies_in_the_interval():
    truth = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    interval = np.array([[0.4, 0.55], [0.65, 0.7], [0.6, 0.8], [0.0, 0.79], [0.9, 0.9]])
    shift = Labelled("s", "f", TRUSTED, {"m": truth}, truth)
    choice = choose({"m": truth}, TRUSTED, fit_table([shift] * 8))
    answered = Answered(shift, type(choice)("m", "any", truth, interval, {"m": interval}, "t"))
    slow = sum(lo <= t <= hi for t, (lo, hi) in zip(truth, interval)) / len(truth)
    assert answered.coverage()["m"] == slow == 0.6
    assert answered.coverage()["auto"] == slow


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


def test_the_median_is_a_candidate_and_the_fallback_for_a_failed_method():
    estimates = {"a": np.array([0.1, np.nan]), "b": np.array([0.5, 0.6]), "c": np.array([0.9, 0.7])}
    np.testing.assert_allclose(median_estimate(estimates), [0.5, 0.65])
    table = fit_table(_shifts())
    assert MEDIAN in table.rules[ANY].quantiles
    choice = choose({"sharp": np.array([np.nan, 0.5]), "robust": np.array([0.4, 0.5])}, TRUSTED, table)
    assert choice.method == MEDIAN and np.isfinite(choice.estimate).all()


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
            not np.array_equal(a.choice.intervals[MEDIAN], b.choice.intervals[MEDIAN])
            for b, a in zip(before, after)
            if b.shift.family != family
        ]
        assert any(changed)


def test_leave_one_family_out_calibrates_each_family_on_the_others_only():
    shifts = _shifts()
    for answered in leave_one_family_out(shifts):
        assert f"without {answered.shift.family}" in answered.choice.table


def test_calibrated_intervals_cover_held_out_families_near_the_nominal_rate():
    answered = leave_one_family_out(_shifts(per_family=20, n_models=30))
    coverage = np.mean([a.coverage()["auto"] for a in answered])
    assert 0.85 <= coverage <= 0.97  # 90% nominal, exchangeable synthetic shifts


def test_intervals_contain_the_estimate_when_the_errors_straddle_zero_and_stay_in_unit_range():
    interval = calibrated_interval(np.array([0.02, 0.5, 0.99]), (-0.05, 0.05))
    assert (interval >= 0).all() and (interval <= 1).all()
    assert (interval[:, 0] <= [0.02, 0.5, 0.99]).all() and (interval[:, 1] >= [0.02, 0.5, 0.99]).all()


def test_the_table_round_trips_through_json_and_names_its_source(tmp_path):
    table = fit_table(_shifts(), source={"name": "synthetic", "config": "test"})
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table.to_dict()))
    again = load_table(path)
    assert again == table
    assert "synthetic" in again.label and "test" in again.label
    answers = answer_with(again, _shifts(seed=3))
    assert all("synthetic" in a.choice.table for a in answers)


def test_the_shipped_table_loads_and_answers_every_kind_of_shift():
    table = load_table()
    assert isinstance(table, CalibrationTable) and ANY in table.rules
    assert table.source.get("command", "").startswith("ontheline bench")
    for diag in (TRUSTED, BROKEN, ShiftDiagnostics(math.nan, False, math.nan, 0.0)):
        name, rule = table.rule(diag)
        assert rule.method in rule.quantiles


@pytest.mark.parametrize("content", ["not json", json.dumps({"alpha": 0.1})])
def test_a_broken_table_is_an_input_error_that_says_how_to_rebuild_it(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(InputError, match="calibration table"):
        load_table(path)
    with pytest.raises(InputError, match="Cannot read"):
        load_table(tmp_path / "missing.json")
