import json
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("torch", reason="the zoo's networks need the torch extra, which make test installs")

import ontheline as otl  # noqa: E402
from ontheline.agreement import AgreementLine  # noqa: E402
from ontheline.bench import predict  # noqa: E402
from ontheline.bench import score as scoring  # noqa: E402
from ontheline.bench.config import CONFIGS, ShiftSpec  # noqa: E402
from ontheline.bench.score import ORACLE, ShiftScore, quality, summarise  # noqa: E402
from ontheline.bench.suite import run_benchmark  # noqa: E402
from ontheline.store import Store  # noqa: E402


@pytest.fixture(scope="module")
def store(bench_store):
    return Store(bench_store)


@pytest.fixture(scope="module")
def tiny(store):
    return run_benchmark("tiny", store=store)


@pytest.fixture(scope="module")
def predictions(tiny, store):
    preds, from_store = predict.zoo_predictions(CONFIGS["tiny"], "digits", store=store)
    assert from_store
    return preds


def test_the_tiny_benchmark_scores_every_shift_for_every_zoo(tiny):
    shifts = CONFIGS["tiny"].shifts("digits")
    assert len(shifts) == 1 + 3 * 2 and shifts[0].kind == "natural"
    for zoo, n_models in (("all", 7), ("neural", 4), ("non-neural", 3)):
        scores = tiny.select(zoo)
        assert [s.shift for s in scores] == shifts
        assert all(len(s.models) == n_models for s in scores)
    assert tiny.n_models == {"digits": 7}


def test_true_accuracy_comes_from_the_held_aside_labels(tiny, predictions):
    for score in tiny.select("all"):
        labels = predictions.probs[score.shift.name].argmax(axis=-1)
        np.testing.assert_allclose(score.ood_accuracy, (labels == predictions.labels[score.shift.name]).mean(axis=1))


def test_estimates_match_a_separate_evaluation_of_the_same_predictions(tiny, predictions):
    score = tiny.select("all")[1]
    models = predictions.models
    evaluation = otl.evaluate(
        dict(zip(models, predictions.probs["id_val"])),
        predictions.labels["id_val"],
        dict(zip(models, predictions.probs[score.shift.name])),
        ood_labels=predictions.labels[score.shift.name],
        methods=list(otl.METHODS),  # the benchmark's auto is calibrated leave-one-family-out, not with the shipped table
        n_bootstrap=0,
    )
    for method, result in evaluation.results.items():
        np.testing.assert_allclose(score.estimates[method], result.ood_accuracy, atol=1e-12)
        assert score.mae()[method] == pytest.approx(evaluation.mae()[method])
    assert score.agreement.r2 == pytest.approx(evaluation.line.r2)


def test_a_part_of_the_zoo_is_scored_as_a_separate_evaluation_of_its_models(tiny, predictions):
    score = next(s for s in tiny.select("neural") if s.shift.name == tiny.select("all")[1].shift.name)
    neural = np.array(predictions.models)[predictions.neural].tolist()
    evaluation = otl.evaluate(
        dict(zip(neural, predictions.probs["id_val"][predictions.neural])),
        predictions.labels["id_val"],
        dict(zip(neural, predictions.probs[score.shift.name][predictions.neural])),
        methods=list(otl.METHODS),  # the parts have no auto: it is calibrated on the whole zoo
        n_bootstrap=0,
    )  # per-model methods are sliced from the whole zoo in the benchmark; here they run on the part alone
    assert list(score.estimates) == [*evaluation.results, "oracle"]
    for method, result in evaluation.results.items():
        np.testing.assert_allclose(score.estimates[method], result.ood_accuracy, atol=1e-9)


def test_estimates_do_not_depend_on_the_ood_labels(tiny, predictions):
    shift = CONFIGS["tiny"].shifts("digits")[2]
    shuffled = dict(predictions.labels)
    shuffled[shift.name] = np.random.default_rng(0).permutation(shuffled[shift.name])
    rescored = scoring.score(
        predict.ZooPredictions(
            predictions.dataset, predictions.models, predictions.neural, predictions.probs, shuffled
        ),
        [shift],
    )[0]
    original = tiny.select("all")[2]
    for method in otl.METHODS:
        np.testing.assert_array_equal(rescored.estimates[method], original.estimates[method])
    assert not np.array_equal(rescored.ood_accuracy, original.ood_accuracy)


def test_a_second_run_reads_the_store_and_gives_the_same_scores(tiny, store):
    again = run_benchmark("tiny", store=store)
    assert again.from_store
    assert json.dumps(again.to_dict(per_model=True)["shifts"]) == json.dumps(tiny.to_dict(per_model=True)["shifts"])
    entries = store.ls(dataset="bench-tiny-digits")
    assert sorted(e.model for e in entries) == sorted(tiny.select("all")[0].models)
    assert {e.dtype for e in entries} == {"float16"}


def test_a_damaged_entry_is_recomputed_with_a_warning_and_a_lost_one_is_trained_again(predictions, store, tmp_path):
    import shutil

    copy = Store(shutil.copytree(store.path, tmp_path / "store"))
    first, second = copy.ls(dataset="bench-tiny-digits")[:2]
    chunks = copy.path / "entries" / first.key[:2] / first.key / "probs" / "c"
    for chunk in (p for p in chunks.rglob("*") if p.is_file()):
        chunk.write_bytes(b"garbage")
    copy.rm(second.key)
    with pytest.warns(UserWarning, match=f"damaged benchmark entry: Store entry {first.key}"):
        again, from_store = predict.zoo_predictions(CONFIGS["tiny"], "digits", store=copy)
    assert not from_store and copy.has(first.key) and copy.has(second.key)
    for name, probs in predictions.probs.items():
        np.testing.assert_array_equal(again.probs[name], probs)


def test_parallel_workers_give_the_same_predictions(predictions, tmp_path):
    parallel, _ = predict.zoo_predictions(CONFIGS["tiny"], "digits", store=Store(tmp_path), jobs=2)
    assert parallel.models == predictions.models
    for name, probs in predictions.probs.items():
        np.testing.assert_array_equal(parallel.probs[name], probs)


def test_fingerprints_follow_what_the_predictions_depend_on():
    tiny, quick = CONFIGS["tiny"], CONFIGS["quick"]
    members = predict.zoo_members(tiny, "digits")
    assert len({m.fingerprint for m in members}) == len(members)  # every snapshot and control is its own model
    assert [m.fingerprint for m in members] == [m.fingerprint for m in predict.zoo_members(tiny, "digits")]
    assert members[0].fingerprint != predict.zoo_members(tiny, "mnist")[0].fingerprint  # other training data
    assert predict._bundle_fingerprint("tiny", "digits") != predict._bundle_fingerprint("quick", "digits")
    assert quick.shifts("digits")[0].name == "natural"


def test_the_oracle_is_exact_when_accuracies_lie_on_a_probit_line():
    id_acc = np.array([0.6, 0.7, 0.8, 0.9, 0.95])
    ood_acc = otl.probit(id_acc)
    from scipy.stats import norm

    ood_acc = norm.cdf(0.8 * ood_acc - 0.3)
    np.testing.assert_allclose(scoring._oracle(id_acc, ood_acc, 10**6, 10**6), ood_acc, atol=1e-9)


def _score(name: str, r2: float, aline_error: float, atc_error: float) -> ShiftScore:
    truth = np.array([0.5, 0.7, 0.9])
    estimates = {"aline-d": truth + aline_error / 100, "atc-mc": truth - atc_error / 100, ORACLE: truth}
    spec = ShiftSpec("digits", name, 1)
    line = AgreementLine(1.0, 0.0, r2, n_pairs=28, n_distinct=28, spread=5.0)
    empty = np.zeros((0, 2))
    return ShiftScore(spec, "all", ("a", "b", "c"), 100, 100, truth, truth, estimates, line, 0.95, {}, empty, empty)


def test_quality_goals_count_trusted_shifts_and_flagged_failures():
    scores = [
        _score("gaussian_noise", 0.99, 1.0, 2.0),
        _score("rotate", 0.97, 1.5, 1.0),
        _score("contrast", 0.50, 20.0, 30.0),
        _score("inversion", 0.97, 8.0, 9.0),  # a failure the flag missed
    ]
    q = quality(scores)
    assert q["trusted_shifts"]["n_shifts"] == 3
    assert q["trusted_shifts"]["aline_d_mae"] == pytest.approx((1.0 + 1.5 + 8.0) / 3)
    assert q["trusted_shifts"]["met"] is False
    assert q["flagged_failures"]["n_shifts"] == 2 and q["flagged_failures"]["n_flagged"] == 1
    assert q["flagged_failures"]["share_flagged"] == 0.5 and q["flagged_failures"]["met"] is False
    assert quality(scores[:3])["flagged_failures"]["met"] is True


def test_summaries_group_every_shift_once(tiny):
    summary = summarise(tiny.scores)
    for zoo in ("all", "neural", "non-neural"):
        n = len(tiny.select(zoo))
        assert summary[zoo]["overall"]["all"]["n_shifts"] == n
        for grouping in ("dataset", "family", "severity"):
            assert sum(g["n_shifts"] for g in summary[zoo][grouping].values()) == n
    assert set(summary["all"]["family"]) == {"natural", "noise", "geometric", "photometric"}
    overall = summary["all"]["overall"]["all"]["mae"]["aline-d"]
    assert overall == pytest.approx(np.nanmean([s.mae()["aline-d"] for s in tiny.select("all")]))


def test_a_method_that_cannot_estimate_a_shift_is_recorded_not_fatal(tiny):
    failed = [s for s in tiny.scores if s.failures]
    assert failed  # four tiny networks leave a bipartite pair graph on some shifts
    for s in failed:
        for method, message in s.failures.items():
            assert np.isnan(s.estimates[method]).all() and message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = json.dumps(tiny.to_dict(per_model=True), allow_nan=False)  # missing values are null, not NaN
    assert json.loads(text)["n_models"] == 7


def test_the_threshold_table_agrees_with_the_quality_goals_and_is_monotone():
    from ontheline.bench import tables
    from ontheline.bench.suite import BenchmarkResult

    scores = [
        _score("gaussian_noise", 0.99, 1.0, 2.0),
        _score("rotate", 0.92, 1.5, 1.0),
        _score("contrast", 0.50, 20.0, 30.0),
        _score("inversion", 0.97, 8.0, 9.0),
        _score("shear", 0.85, 6.0, 4.0),
    ]
    result = BenchmarkResult(CONFIGS["tiny"], tuple(scores), {"digits": 3}, False, 0.0, 0.95)
    header, rows = tables.threshold_table(result, thresholds=(0.8, 0.9, 0.95, 0.99))
    by_threshold = {row[0]: dict(zip(header, row)) for row in rows}
    q = quality(scores)
    at_95 = by_threshold["0.95"]
    assert at_95["trusted shifts"] == q["trusted_shifts"]["n_shifts"] == 2
    assert at_95["ALine-D MAE (trusted)"] == pytest.approx(q["trusted_shifts"]["aline_d_mae"])
    assert at_95["failures flagged (%)"] == pytest.approx(100 * q["flagged_failures"]["share_flagged"])
    counts = [row[1] for row in rows]
    flagged = [row[4] for row in rows]
    assert counts == sorted(counts, reverse=True) and flagged == sorted(flagged)
    text = tables.text(header, rows)
    assert len(text.splitlines()) == 2 + len(rows)
    assert tables.markdown(header, rows).count("\n") == 1 + len(rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"config": "huge"}, "The 'config' parameter of run_benchmark must be one of"),
        ({"jobs": 0}, "The 'jobs' parameter of run_benchmark must be in [1, inf]"),
        ({"min_r2": 1.5}, "The 'min_r2' parameter of run_benchmark must be in [0.0, 1.0]"),
    ],
)
def test_run_benchmark_names_a_bad_argument(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_benchmark(**{"config": "tiny", **kwargs}, store=Store(tmp_path))
    assert Store(tmp_path).ls() == []  # nothing was trained or written


def test_the_labels_made_without_images_are_those_of_the_evaluation_sets():
    sets = predict._evaluation_sets("tiny", "digits")
    labels = predict._evaluation_labels("tiny", "digits")
    assert list(labels) == list(sets)
    for name, split in sets.items():
        np.testing.assert_array_equal(labels[name], split.labels)


def test_the_results_carry_the_settings_and_the_raw_baselines_as_an_ablation(tiny):
    from ontheline.bench import tables
    from ontheline.bench.suite import ABLATED
    from ontheline.estimators import CALIBRATABLE

    result = tiny.to_dict()
    assert set(result["settings"]) == set(otl.METHODS)
    assert all(result["settings"][m]["calibrate"] is True for m in CALIBRATABLE)
    ablation = result["ablation"]
    assert ablation["calibrate"] is False and set(ablation["mae"]["all"]) == {*ABLATED, "oracle"}
    assert len(ablation["shifts"]) == len(tiny.select("all"))
    header, rows = tables.ablation_table(tiny)
    assert [(r[0], r[1]) for r in rows] == [(m, c) for m in ABLATED for c in ("temperature-scaled", "raw")]
    assert "## Ablation" in tables.results_markdown(tiny, "ontheline bench --config tiny", "2026-12-01")


def test_the_quality_goal_compares_aline_d_with_the_strongest_baseline():
    scores = [_score("gaussian_noise", 0.99, 1.0, 2.0), _score("rotate", 0.97, 1.2, 0.5)]
    for s in scores:  # a second baseline, better than ATC-MC on these shifts
        s.estimates["cot"] = s.ood_accuracy + 0.003
    good = quality(scores)["trusted_shifts"]
    assert good["baselines_mae"] == pytest.approx({"atc-mc": 1.25, "cot": 0.3})
    assert good["best_baseline"] == "cot" and good["met"] is False  # ALine-D (1.1) is not below COT (0.3)


def test_the_whole_zoo_gains_auto_and_calibrated_intervals_learned_without_its_family(tiny):
    from ontheline.bench.calibrate import labelled
    from ontheline.estimators.auto import MEDIAN, median_estimate

    assert tiny.calibration.startswith("leave-one-family-out")
    for s in tiny.select("all"):
        assert "auto" in s.estimates and list(s.estimates)[-1] == ORACLE
        method, bucket = s.auto
        relied = median_estimate({m: e for m, e in s.estimates.items() if m not in ("auto", ORACLE)})
        np.testing.assert_array_equal(s.estimates["auto"], relied if method == MEDIAN else s.estimates[method])
        np.testing.assert_array_equal(s.intervals["auto"], s.intervals[method])
        assert (s.intervals["auto"][:, 0] <= s.intervals["auto"][:, 1]).all()
        assert set(s.bootstrap) == {"aline-s", "aline-d"}  # ALine's own intervals, whose coverage is measured
    for zoo in ("neural", "non-neural"):
        assert all("auto" not in s.estimates and not s.intervals for s in tiny.select(zoo))
    # the oracle reads the OOD labels: it is never a candidate of auto
    assert all(ORACLE not in row.estimates and "auto" not in row.estimates for row in labelled(tiny.scores))


def test_the_json_reports_coverage_and_auto_per_shift_and_the_goals(tiny):
    result = json.loads(json.dumps(tiny.to_dict(per_model=True)))
    shift = result["shifts"][0]
    assert shift["mae"]["auto"] is not None and shift["auto"]["method"] in shift["coverage"]
    truth = np.array([m["ood_accuracy"] for m in shift["models"]])
    for method, cover in shift["coverage"].items():
        inside = [lo <= t <= hi for t, (lo, hi) in zip(truth, (m["intervals"][method] for m in shift["models"]))]
        assert cover == pytest.approx(np.mean(inside))
    assert set(result["beyond"]["goals"]) >= {"auto_mae_at_most_5", "dis2_holds_on_95"}
    assert "leave-one-family-out" in result["calibration"]
