"""The interaction tensor, its statistics, the feature-learning framework's closed forms, and the two reproductions."""

import json
from itertools import combinations
from math import comb

import numpy as np
import pytest

from ontheline.cli import main
from ontheline.research.interaction import (
    FeatureModel,
    FittedFramework,
    InteractionTensor,
    build_interaction_tensor,
    expected_accuracy,
    expected_agreement,
    expected_gde_gap,
    fit_feature_model,
    gde_breaking_model,
    gde_holding_model,
    miss_probability,
    probe_activations,
    simulate,
    tensor_statistics,
    threshold_sweep,
)


def _latent_zoo(seed=0, n_samples=400):
    """Six models, each rotating its own subset of six latent features (distinct scales) into 10 units."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_samples, 6)) * [5.0, 4.0, 3.0, 2.0, 1.5, 1.0]
    subsets = [[0, 1, 2], [0, 1, 3], [0, 2, 4], [0, 1, 5], [0, 3, 4], [0, 2, 5]]
    acts = [latent[:, s] @ np.linalg.qr(rng.normal(size=(10, 10)))[0][:3] for s in subsets]
    return acts, subsets


def test_the_tensor_recovers_which_model_learned_which_latent_feature():
    acts, subsets = _latent_zoo()
    it = build_interaction_tensor(acts, corr_threshold=0.9, data_threshold=0.5, variance=0.999)
    assert it.n_features == 6 and it.n_models == 6
    learned_sets = sorted(tuple(np.flatnonzero(row)) for row in it.learned)
    truth = sorted(tuple(m for m, s in enumerate(subsets) if k in s) for k in range(6))
    assert learned_sets == truth
    stats = tensor_statistics(it)
    assert stats.models_per_feature.max() == 6  # latent 0: every model
    # the widest feature is present in most points, the narrowest in few: the frequency follows the scale
    by_learners = sorted(zip(stats.models_per_feature, stats.feature_frequency))
    assert by_learners[-1][1] == stats.feature_frequency.max()


def test_the_thresholds_move_the_statistics_the_expected_way():
    acts, _ = _latent_zoo(1)
    rows = threshold_sweep(acts, [0.3, 0.95], [0.25, 0.75, 1.5], variance=0.999)
    by = {(r["corr_threshold"], r["data_threshold"]): r for r in rows}
    assert by[(0.3, 0.25)]["n_features"] <= by[(0.95, 0.25)]["n_features"]  # stricter matching: more features
    per_point = [by[(0.95, g)]["features_per_point"] for g in (0.25, 0.75, 1.5)]
    assert per_point == sorted(per_point, reverse=True)  # stricter presence: fewer features per point
    with_column = threshold_sweep(acts, [0.9], [0.5], variance=0.999, evaluate=lambda t, s: {"n": t.n_features})
    assert with_column[0]["n"] == with_column[0]["n_features"]


def test_identical_representations_are_one_set_of_features_learned_by_every_model():
    # What a zoo of linear probes on one frozen backbone gives: its penultimate activations are shared.
    x = np.random.default_rng(0).normal(size=(100, 5)) * [3, 2, 1, 0.5, 0.2]
    it = build_interaction_tensor([x, x, x], corr_threshold=0.99, variance=0.999)
    assert it.learned.all() and (it.tensor == it.tensor[:, :1]).all()


def test_probe_activations_are_each_heads_logits_without_bias():
    from ontheline.zoo import train_probes

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 4)), rng.integers(0, 3, 90)
    zoo = train_probes(x, y, n_models=3, steps=(2, 6), batch_size=30)
    acts = probe_activations(zoo, x)
    np.testing.assert_allclose(acts[1] + zoo.bias[1], zoo.logits(x)[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("pool", "carried", "learned"), [(10, 2, 3), (7, 3, 4), (5, 5, 1), (6, 1, 0), (4, 2, 3)])
def test_the_miss_probability_is_the_share_of_subsets_that_avoid_the_points_features(pool, carried, learned):
    avoid = sum(1 for s in combinations(range(pool), learned) if not set(s) & set(range(carried)))
    assert miss_probability(pool, carried, learned) == pytest.approx(avoid / comb(pool, learned))


@pytest.mark.parametrize(
    "fm",
    [
        gde_breaking_model(2),
        gde_holding_model(3),
        FeatureModel(c_d=5, c_r=30, n_d=2, n_r=1, t_d=3, t_r=7, pi=0.6, n_classes=10),
        FeatureModel(c_d=8, c_r=12, n_d=3, n_r=2, t_d=2, t_r=5, pi=0.3, n_classes=4),
    ],
)
def test_the_closed_forms_match_simulation_of_the_same_model(fm):
    sim = simulate(fm, n_models=30, n_samples=6000, seed=1)
    upper = np.triu_indices(30, k=1)
    correct = sim["predictions"] == 0
    se_acc = np.sqrt(correct.mean(axis=0).var() / 6000 + correct.mean(axis=1).var() / 30)
    assert abs(correct.mean() - expected_accuracy(fm)) < 4 * se_acc + 1e-9
    assert abs(sim["agreement"][upper].mean() - expected_agreement(fm)) < 0.01


def test_gde_breaks_where_points_are_learned_by_some_models_and_not_others():
    breaking, holding = gde_breaking_model(2), gde_holding_model(2)
    assert expected_gde_gap(breaking) == pytest.approx(0.0625) and expected_gde_gap(holding) == 0.0
    sim = simulate(breaking, n_models=30, n_samples=6000, seed=2)
    upper = np.triu_indices(30, k=1)
    gap = (1 - sim["agreement"][upper].mean()) - (1 - sim["accuracy"].mean())
    assert gap == pytest.approx(0.0625, abs=0.005)
    # disagreement never falls below error in this framework: g * sum w q (1 - q) >= 0
    for t_r in range(0, 101, 25):
        fm = FeatureModel(c_d=4, c_r=100, n_d=1, n_r=2, t_d=2, t_r=t_r, pi=0.3, n_classes=5)
        assert expected_gde_gap(fm) >= 0


def test_per_model_closed_forms_agree_with_the_one_model_closed_forms():
    fm = FeatureModel(c_d=6, c_r=20, n_d=2, n_r=1, t_d=np.array([1, 6]), t_r=np.array([4, 10]), pi=0.4, n_classes=10)
    acc, agr = expected_accuracy(fm), expected_agreement(fm)
    one = FeatureModel(c_d=6, c_r=20, n_d=2, n_r=1, t_d=1, t_r=4, pi=0.4, n_classes=10)
    assert acc[0] == pytest.approx(expected_accuracy(one)) and agr[0, 0] == pytest.approx(expected_agreement(one))
    assert agr[0, 1] == agr[1, 0]


def test_the_fitted_framework_compares_with_measured_accuracy_and_naive_gde():
    acts, _ = _latent_zoo(2, n_samples=300)
    it = build_interaction_tensor(acts, corr_threshold=0.9, variance=0.999)
    fitted = fit_feature_model(it, tensor_statistics(it, dominant_threshold=0.3), n_classes=4)
    assert fitted.model.c_d + fitted.model.c_r == it.n_features and fitted.coverage.shape == (6, 300)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    preds = np.where(rng.random((6, 300)) < 0.8, labels, rng.integers(0, 4, (6, 300)))
    out = fitted.compare(preds, labels)
    acc = (preds == labels).mean(axis=1)
    agr = np.mean(preds[:, None] == preds[None], axis=2)
    gde = (agr.sum(axis=1) - 1) / 5
    assert out["gde"]["accuracy_mae"] == pytest.approx(np.abs(gde - acc).mean())
    assert set(out) >= {"closed_form", "tensor", "gde", "measured"}


def test_a_fitted_framework_by_hand():
    fm = FeatureModel(c_d=2, c_r=2, n_d=1, n_r=1, t_d=np.array([2, 2]), t_r=np.array([0, 0]), pi=1.0, n_classes=2)
    fitted = FittedFramework(fm, np.array([[True, True], [True, False]]))
    np.testing.assert_allclose(fitted.tensor_accuracy(), [1.0, 0.75])
    np.testing.assert_allclose(fitted.tensor_agreement()[0, 1], 0.5 + 0.5 / 2)


def test_the_statistics_of_a_tensor_by_hand():
    t = np.zeros((3, 2, 5), bool)
    t[0, :, :4] = True
    t[1, 1, 0] = True
    learned = np.array([[True, True], [False, True], [True, False]])
    s = tensor_statistics(InteractionTensor(t, learned, np.zeros((3, 2), int), 0.5, 0.5), dominant_threshold=0.5)
    assert s.feature_frequency.tolist() == [0.8, 0.2, 0.0]
    assert s.features_per_model.tolist() == [2, 2] and s.dominant.tolist() == [True, False, False]
    assert s.to_dict()["feature_frequency"] == [0.8, 0.2, 0.0]


def test_repro_interaction_in_miniature(bench_store):
    pytest.importorskip("torch", reason="the benchmark's networks need the torch extra, which make test installs")
    from ontheline.research.interaction import repro
    from ontheline.store import Store

    result = repro.run(store=Store(bench_store), config="tiny", datasets=("digits",), n_models=12, n_samples=3000)
    assert {"n_features", "feature_frequency"} <= set(result["tensor"])
    assert isinstance(result["tensor"]["n_features"], int) and result["tensor"]["n_features"] > 0
    assert {"accuracy_mae", "agreement_mae"} <= set(result["closed_form"])
    assert result["gde_break"]["gde_gap"] > 0.03 and result["goals"]["gde_breaks_in_the_construction"]
    assert result["goals"]["closed_forms_within_mc_error"]
    assert result["datasets"]["digits"]["n_models"] == 4 and len(result["datasets"]["digits"]["sweep"]) == 16
    assert "naive GDE" in repro.text(result)


def test_repro_gde_in_miniature_and_on_the_command_line(bench_store, monkeypatch, capsys):
    pytest.importorskip("torch", reason="the benchmark's networks need the torch extra, which make test installs")
    from ontheline.research.gde import repro
    from ontheline.store import Store

    small = repro.run
    monkeypatch.setattr(repro, "run", lambda quick, progress: small(quick=True, store=Store(bench_store)))
    assert main(["repro", "gde", "--quick", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["goals"]["bound_holds_everywhere"] and result["summary"]["violations"] == 0
    assert {"dataset", "shift", "gde_gap", "cace"} <= set(result["rows"][0])
    assert len(result["rows"]) == 3 * 9  # 3 zoos x (ID validation, ID test, 7 shifts)
