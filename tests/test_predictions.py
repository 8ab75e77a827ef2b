import numpy as np
import pytest

import ontheline as otl


def test_arrays_lists_and_dicts_give_the_same_predictions():
    labels = np.array([[0, 1, 2, 1], [2, 2, 0, 1]])
    from_array = otl.as_predictions(labels, models=["a", "b"])
    from_list = otl.as_predictions(labels.tolist(), models=["a", "b"])
    from_dict = otl.as_predictions({"a": labels[0], "b": labels[1]})
    for p in (from_list, from_dict):
        np.testing.assert_array_equal(p.labels, from_array.labels)
        assert p.models == from_array.models and p.classes == from_array.classes


def test_string_labels_follow_the_explicit_class_order():
    p = otl.as_predictions([["dog", "cat"], ["cat", "cat"]], classes=["dog", "cat"])
    np.testing.assert_array_equal(p.labels, [[0, 1], [1, 1]])
    np.testing.assert_array_equal(p.encode(["cat", "dog"], "y"), [1, 0])


def test_string_class_names_on_probabilities_name_their_columns():
    probs = np.array([[[0.9, 0.1], [0.2, 0.8]]] * 3)
    est = otl.GDE().fit(otl.as_predictions(probs, classes=["no", "yes"]), ["no", "no"])
    np.testing.assert_allclose(est.id_accuracy_, 0.5)


def test_logits_are_turned_into_probabilities():
    logits = np.random.default_rng(0).normal(size=(2, 5, 3))
    p = otl.as_predictions(logits, kind="logits")
    np.testing.assert_allclose(p.probs.sum(-1), 1.0)
    np.testing.assert_array_equal(p.labels, logits.argmax(-1))


def test_logits_passed_as_probabilities_get_a_hint():
    with pytest.raises(ValueError, match="these look like logits: pass them as logits, or apply softmax"):
        otl.as_predictions(np.full((2, 3, 4), 2.0))


@pytest.mark.parametrize(
    ("preds", "kwargs", "message"),
    [
        (np.zeros((3,)), {}, r"must have shape \(n_models, n_samples\)"),
        ([[0, 1]], {"models": ["a", "b"]}, "has 1 models but 2 model names"),
        ([[0, 1], [1, 0]], {"models": ["a", "a"]}, r"model names must be unique; \['a'\]"),
        ([[0.5, 1.0]], {}, "holds labels but has non-integer values"),
        (
            [[0, 3]],
            {"classes": [0, 1]},
            r"labels \['3'\] that are not among classes|labels \[3\] that are not among classes",
        ),
        (np.full((1, 2, 2), np.nan), {}, "contains 4 NaN or infinite values"),
        ({"a": [0, 1], "b": [0]}, {}, "arrays of different shapes"),
        ([[-1, 0]], {}, "negative labels"),
        (np.ones((1, 2, 3)) / 3, {"classes": ["a", "b"]}, "3 class columns but 2 classes"),
    ],
)
def test_bad_predictions_get_a_clear_error(preds, kwargs, message):
    with pytest.raises(ValueError, match=message):
        otl.as_predictions(preds, **kwargs)


def test_select_reorders_models():
    p = otl.as_predictions({"a": [0, 0], "b": [1, 1]})
    q = p.select(["b", "a"])
    assert q.models == ("b", "a")
    np.testing.assert_array_equal(q.labels, [[1, 1], [0, 0]])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: otl.as_predictions({"a": [0]}, models=["a"]), "is a mapping whose keys name the models"),
        (lambda: otl.as_predictions([[0, 1]], kind="scores"), r"The 'kind' parameter must be one of"),
        (lambda: otl.as_predictions(np.full((1, 2, 2), "x")), "holds probs but has dtype <U1; pass a float array"),
        (lambda: otl.as_predictions(np.zeros((1, 2, 2)), kind="labels"), r"holds labels, so it must have shape"),
        (lambda: otl.as_predictions([[0, 1]], classes=[0, 0, 1]), "classes must be distinct"),
        (lambda: otl.as_predictions([["a", "b"]], classes=[1, 2]), "cannot be compared with classes|not among classes"),
        (lambda: otl.accuracy([[0, 1]], [0.5, 1.0]), "labels must hold class labels; it has non-integer"),
        (
            lambda: otl.ALineD(keep=0.5),
            r"The 'keep' parameter of ALineD must be a pair \(low, high\). Got 0.5 instead.",
        ),
        (lambda: otl.evaluate([[0, 1]] * 3, [0, 1], [[0, 1]] * 3, methods=["ac"]), "None of the methods"),
        (lambda: otl.evaluate([[0, 1]] * 3, [0, 1], [[0, 1]] * 3, methods=["magic"]), "Unknown method 'magic'; choose"),
    ],
)
def test_every_documented_error_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
