"""The contract every estimator follows; a new estimator is done when it passes here."""

import pickle

import numpy as np
import pytest

import ontheline as otl
from ontheline.estimators import METHODS, make_estimator

ZOO = otl.make_line_zoo(n_models=6, n_samples=600, random_state=0)


def make(name):
    return make_estimator(name, min_r2=0.5, n_bootstrap=10)  # a small zoo: a looser line is expected


@pytest.fixture(params=list(METHODS))
def name(request):
    return request.param


def test_fit_returns_the_estimator(name):
    estimator = make(name)
    assert estimator.fit(ZOO[0], ZOO[1]) is estimator


def test_estimate_before_fit_raises_not_fitted(name):
    estimator = make(name)
    with pytest.raises(otl.NotFittedError, match=f"This {type(estimator).__name__} instance is not fitted yet"):
        estimator.estimate(ZOO[2])
    assert issubclass(otl.NotFittedError, ValueError) and issubclass(otl.NotFittedError, AttributeError)


def test_inputs_are_not_mutated_and_estimate_changes_nothing(name):
    id_probs, id_labels, ood_probs = (a.copy() for a in ZOO[:3])
    estimator = make(name).fit(id_probs, id_labels)
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(estimator).items()}
    first = estimator.estimate(ood_probs)
    second = estimator.estimate(ood_probs)
    for original, given in zip(ZOO[:3], (id_probs, id_labels, ood_probs)):
        np.testing.assert_array_equal(original, given)
    np.testing.assert_array_equal(first.ood_accuracy, second.ood_accuracy)
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, vars(estimator)[key])
        else:
            assert vars(estimator)[key] is value or vars(estimator)[key] == value


def test_results_are_immutable(name):
    result = make(name).fit(ZOO[0], ZOO[1]).estimate(ZOO[2])
    with pytest.raises(ValueError, match="read-only"):
        result.ood_accuracy[0] = 0.5
    with pytest.raises(AttributeError):
        result.method = "other"


def test_permuting_samples_changes_no_estimate(name):
    rng = np.random.default_rng(1)
    id_order, ood_order = rng.permutation(600), rng.permutation(600)
    base = make(name).fit(ZOO[0], ZOO[1]).estimate(ZOO[2])
    permuted = make(name).fit(ZOO[0][:, id_order], ZOO[1][id_order]).estimate(ZOO[2][:, ood_order])
    # The temperature is a numerical optimum: sums over permuted samples move it by ~1e-11.
    np.testing.assert_allclose(permuted.ood_accuracy, base.ood_accuracy, rtol=0, atol=1e-9)


def test_permuting_models_permutes_the_result(name):
    order = np.array([3, 0, 5, 1, 4, 2])
    base = make(name).fit(ZOO[0], ZOO[1]).estimate(ZOO[2])
    permuted = make(name).fit(ZOO[0][order], ZOO[1]).estimate(ZOO[2][order])
    np.testing.assert_allclose(permuted.ood_accuracy, base.ood_accuracy[order], atol=1e-12)
    np.testing.assert_allclose(permuted.agreement_r2, base.agreement_r2)


def test_array_list_and_dict_inputs_agree(name):
    names = [f"m{i}" for i in range(6)]
    from_array = make(name).fit(ZOO[0], ZOO[1]).estimate(ZOO[2])
    from_list = make(name).fit(ZOO[0].tolist(), ZOO[1].tolist()).estimate(ZOO[2].tolist())
    from_dict = make(name).fit(dict(zip(names, ZOO[0])), ZOO[1]).estimate(dict(zip(names[::-1], ZOO[2][::-1])))
    np.testing.assert_allclose(from_list.ood_accuracy, from_array.ood_accuracy, atol=1e-6)
    np.testing.assert_allclose(from_dict.ood_accuracy, from_array.ood_accuracy, atol=1e-12)
    assert from_dict.models == tuple(names)


def test_estimates_are_accuracies_with_the_trust_diagnostics(name):
    result = make(name).fit(ZOO[0], ZOO[1]).estimate(ZOO[2])
    assert result.ood_accuracy.shape == (6,) and ((result.ood_accuracy >= 0) & (result.ood_accuracy <= 1)).all()
    assert result.method == name
    assert result.line is not None and result.line.n_pairs > 0 and 0 <= result.agreement_r2 <= 1
    assert result.to_dict()["agreement_line"]["n_pairs"] == result.line.n_pairs


def test_a_different_number_of_ood_models_is_refused(name):
    estimator = make(name).fit(ZOO[0], ZOO[1])
    with pytest.raises(
        ValueError,
        match="ood_preds has 5 models but .* was fitted on 6; pass predictions from the same models, in the same order",
    ):
        estimator.estimate(ZOO[2][:5])


def test_unknown_ood_model_names_are_refused(name):
    estimator = make(name).fit(dict(zip("abcdef", ZOO[0])), ZOO[1])
    with pytest.raises(ValueError, match=r"ood_preds lacks models \['f'\]"):
        estimator.estimate(dict(zip("abcdeg", ZOO[2])))


def test_label_only_input_is_refused_by_methods_that_need_probabilities():
    for name in METHODS:
        estimator = make(name)
        if estimator.needs_probs:
            with pytest.raises(ValueError, match="needs probabilities or logits"):
                estimator.fit(ZOO[0].argmax(-1), ZOO[1])
        else:
            estimator.fit(ZOO[0].argmax(-1), ZOO[1]).estimate(ZOO[2].argmax(-1))


# --- estimators own their state -------------------------------------------------------------------

#: Non-default settings of each method, to run the contract beyond the defaults.
SETTINGS = {
    "aline-d": {"n_bootstrap": 20, "confidence": 0.8, "keep": (0.02, 0.99), "random_state": 3},
    "aline-s": {"n_bootstrap": 20, "n_groups": 8, "min_r2": 0.9},
    "atc-mc": {"calibrate": False},
    "atc-ne": {"calibrate": False},
    "doc": {"calibrate": False},
    "ac": {"calibrate": False},
    "cot": {"calibrate": False, "min_r2": 0.9},
    "cott": {"calibrate": False},
    "gde": {"keep": (0.1, 0.95)},
}


def configured(name):
    estimator = make(name)
    for key, value in SETTINGS[name].items():
        setattr(estimator, key, value)
    return estimator


@pytest.fixture(params=[False, True], ids=["defaults", "settings"])
def build(request):
    return configured if request.param else make


def test_fit_sets_only_attributes_ending_in_underscore_and_keeps_the_hyperparameters(name, build):
    estimator = build(name)
    before = dict(vars(estimator))
    estimator.fit(ZOO[0], ZOO[1])
    learned = {k for k in vars(estimator) if k not in before}
    assert learned and all(k.endswith("_") for k in learned)
    assert {k: vars(estimator)[k] for k in before} == before


def test_changing_the_callers_arrays_after_fit_changes_no_estimate(name, build):
    id_probs, id_labels, ood_probs = (a.copy() for a in ZOO[:3])
    estimator = build(name).fit(id_probs, id_labels)
    id_probs[:] = 1.0 / id_probs.shape[-1]  # the caller reuses its buffers
    id_labels[:] = 0
    after = estimator.estimate(ood_probs)
    fresh = build(name).fit(ZOO[0], ZOO[1]).estimate(ZOO[2])
    np.testing.assert_array_equal(after.ood_accuracy, fresh.ood_accuracy)


def test_estimate_leaves_the_estimators_state_identical_by_value(name, build):
    estimator = build(name).fit(ZOO[0], ZOO[1])
    before = pickle.dumps(vars(estimator))
    estimator.estimate(ZOO[2])
    estimator.estimate(ZOO[2][:, ::-1].copy())  # the samples in another order
    assert pickle.dumps(vars(estimator)) == before


def test_refitting_on_new_data_equals_a_fresh_fit(name, build):
    other = otl.make_line_zoo(n_models=6, n_samples=500, random_state=7)
    refit = build(name).fit(ZOO[0], ZOO[1]).fit(other[0], other[1])
    fresh = build(name).fit(other[0], other[1])
    assert pickle.dumps(vars(refit)) == pickle.dumps(vars(fresh))
    np.testing.assert_array_equal(refit.estimate(other[2]).ood_accuracy, fresh.estimate(other[2]).ood_accuracy)


def test_a_pickle_round_trip_gives_identical_estimates(name, build):
    estimator = build(name).fit(ZOO[0], ZOO[1])
    restored = pickle.loads(pickle.dumps(estimator))
    first, second = estimator.estimate(ZOO[2]), restored.estimate(ZOO[2])
    np.testing.assert_array_equal(first.ood_accuracy, second.ood_accuracy)
    if first.interval is not None:
        np.testing.assert_array_equal(first.interval, second.interval)


def test_non_default_settings_change_the_estimates_where_they_should(name):
    default, custom = make(name).fit(ZOO[0], ZOO[1]), configured(name).fit(ZOO[0], ZOO[1])
    a, b = default.estimate(ZOO[2]), custom.estimate(ZOO[2])
    if name in ("atc-mc", "atc-ne", "doc", "ac", "cot", "cott"):  # calibration moves the confidences
        assert not np.array_equal(a.ood_accuracy, b.ood_accuracy)
        assert default.temperatures_ is not None and custom.temperatures_ is None
    if name.startswith("aline"):  # another bootstrap: other intervals
        assert not np.array_equal(a.interval, b.interval)


@pytest.mark.parametrize(("parameter", "value"), [("keep", 0.5), ("min_r2", 2.0)])
def test_a_hyperparameter_set_to_a_bad_value_after_construction_is_refused_where_it_is_used(name, parameter, value):
    estimator = make(name)
    setattr(estimator, parameter, value)
    with pytest.raises(ValueError, match=f"The '{parameter}' parameter of {type(estimator).__name__} must"):
        estimator.fit(ZOO[0], ZOO[1])
    fitted = make(name).fit(ZOO[0], ZOO[1])
    setattr(fitted, parameter, value)
    with pytest.raises(ValueError, match=f"The '{parameter}' parameter of {type(fitted).__name__} must"):
        fitted.estimate(ZOO[2])


def test_every_method_is_named_by_its_registry_name_on_the_class_and_the_instance():
    for name, factory in METHODS.items():
        estimator = factory()
        assert estimator.name == name
        assert isinstance(type(estimator).names, dict) and name in type(estimator).names.values()
    atc = otl.ATC()
    atc.score = "entropy"
    with pytest.raises(ValueError, match="The 'score' parameter of ATC must be one of"):
        atc.name  # noqa: B018 - reading the name checks the variant


def test_a_hyperparameter_changed_after_fit_asks_for_a_refit(name):
    estimator = configured(name).fit(ZOO[0], ZOO[1])
    parameter, value = next(iter(SETTINGS[name].items()))
    setattr(estimator, parameter, make(name).get_params()[parameter])  # back to the default: not what was fitted
    with pytest.raises(
        ValueError, match=f"{type(estimator).__name__}'s {parameter} changed after fit .* call fit again"
    ):
        estimator.estimate(ZOO[2])
    estimator.fit(ZOO[0], ZOO[1]).estimate(ZOO[2])  # a refit takes the new value
