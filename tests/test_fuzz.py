"""Property-based fuzzing of every estimator and of the command line's loader.

Generated degenerate zoos (accuracies of 0 or 1, identical models, 2-3 models, one class,
unused classes, tiny sets, near-normalised probabilities, infinite logits, float16,
non-contiguous arrays, string labels) must give finite estimates in [0, 1] with intervals
that contain them, or a clear ValueError; generated NPZ files must make the command line
answer or exit 2 with one line. ``make test`` runs a bounded number of examples (the ``ci``
profile, registered in conftest.py); ``make fuzz`` runs the long ``fuzz`` profile.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ontheline as otl
from ontheline.cli import main
from ontheline.estimators import METHODS, make_estimator


@st.composite
def zoos(draw):
    """``(id_preds, id_labels, ood_preds, kind, classes)``: labels, probabilities or logits of a small,
    often degenerate zoo."""
    n_models = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 8, 8]))  # mostly zoos big enough for a line
    n_classes = draw(st.sampled_from([1, 2, 3, 10, 10]))
    sizes = st.sampled_from([1, 2, 7, 60, 200, 300])  # tiny sets, and sets big enough for a line
    n_id, n_ood = draw(sizes), draw(sizes)
    kind = draw(st.sampled_from(["labels", "probs", "logits"] if n_classes >= 2 else ["labels"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    used = draw(st.sampled_from([n_classes] * 4 + [max(1, n_classes - 1), 1]))  # classes beyond never occur
    shape = draw(st.sampled_from(["varied"] * 5 + ["identical", "perfect", "always wrong"]))
    skill = rng.random(n_models)  # each model's chance of being right, before the shift
    shift = draw(st.sampled_from([1.0, 0.7, 0.3]))

    def predictions(truth, scale):
        n = len(truth)
        if shape == "perfect":
            labels = np.tile(truth, (n_models, 1))
        elif shape == "always wrong" and n_classes >= 2:
            labels = np.tile((truth + 1) % n_classes, (n_models, 1))
        elif shape == "identical":
            labels = np.tile(np.where(rng.random(n) < skill[0] * scale, truth, rng.integers(0, used, n)), (n_models, 1))
        else:
            right = rng.random((n_models, n)) < skill[:, None] * scale
            labels = np.where(right, truth, rng.integers(0, used, (n_models, n)))
        if kind == "labels":
            return labels
        scores = rng.normal(size=(n_models, n, n_classes)) + 4.0 * np.eye(n_classes)[labels]
        if kind == "logits":
            if draw(st.integers(0, 9)) == 0:
                scores[0, 0, 0] = draw(st.sampled_from([np.inf, -np.inf]))
            return scores
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return probs * draw(st.sampled_from([1.0, 1.0009, 0.9992]))  # near-normalised rows

    id_labels = rng.integers(0, used, n_id)
    id_preds, ood_preds = predictions(id_labels, 1.0), predictions(rng.integers(0, used, n_ood), shift)
    dtype = draw(st.sampled_from([None, np.float16, np.float32]))
    if dtype is not None and kind != "labels":
        id_preds, ood_preds = id_preds.astype(dtype), ood_preds.astype(dtype)
    if draw(st.booleans()):  # non-contiguous arrays
        id_preds, ood_preds = np.asfortranarray(id_preds), np.flip(np.flip(ood_preds, 1).copy(), 1)
    classes = None
    if kind == "labels" and draw(st.booleans()):  # string labels with an explicit class order
        names = np.array([f"class-{k}" for k in range(n_classes)])
        classes = list(names)
        id_preds, ood_preds, id_labels = names[id_preds], names[ood_preds], names[id_labels]
    return id_preds, id_labels, ood_preds, kind, classes


@pytest.mark.parametrize("method", list(METHODS))
@given(zoo=zoos())
def test_every_estimator_gives_accuracies_with_intervals_that_contain_them_or_a_clear_error(method, zoo):
    id_preds, id_labels, ood_preds, kind, classes = zoo
    estimator = make_estimator(method, n_bootstrap=10)
    try:
        id_p = otl.as_predictions(id_preds, kind=kind, classes=classes, name="id_preds")
        ood_p = otl.as_predictions(ood_preds, kind=kind, classes=classes, name="ood_preds")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = estimator.fit(id_p, id_labels).estimate(ood_p)
    except ValueError as exc:
        message = str(exc)
        event(f"{type(exc).__name__}: {' '.join(message.split()[:4])}")
        assert message and "\n" not in message.strip() and len(message) < 2000, message
        return
    event(f"estimated, {'trusted' if result.trusted else 'flagged'}, {'no line' if result.line is None else 'a line'}")
    check_result(result, id_p.n_models)


def check_result(result, n_models):
    """The contract of every result: finite accuracies in [0, 1], intervals in [0, 1] that contain
    them, and trust only from a line through enough distinct pairs."""
    estimates = result.ood_accuracy
    assert estimates.shape == (n_models,) and np.isfinite(estimates).all()
    assert ((estimates >= 0) & (estimates <= 1)).all()
    if result.interval is not None:
        low, high = result.interval.T
        assert ((low <= estimates) & (estimates <= high)).all() and (low >= 0).all() and (high <= 1).all()
    assert result.trusted == (not result.trust_issues)
    if result.line is not None and result.line.n_distinct < otl.agreement.MIN_DISTINCT_PAIRS:
        assert not result.trusted


@given(zoo=zoos())
def test_evaluate_runs_what_can_run_and_explains_the_rest(zoo):
    id_preds, id_labels, ood_preds, kind, classes = zoo
    try:
        id_p = otl.as_predictions(id_preds, kind=kind, classes=classes)
        ood_p = otl.as_predictions(ood_preds, kind=kind, classes=classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluation = otl.evaluate(id_p, id_labels, ood_p, n_bootstrap=5)
    except ValueError as exc:
        assert str(exc)
        return
    assert set(evaluation.results) | (set(evaluation.skipped) - set(otl.BOUNDS)) == {*METHODS, "auto"}
    check_result(evaluation.results["auto"], ood_p.n_models)  # auto keeps every estimator's contract
    assert all(reason for reason in evaluation.skipped.values())


ARRAYS = st.one_of(
    st.builds(lambda v: np.array(v), st.integers(-5, 10**10)),
    st.builds(lambda v: np.array(v, dtype=str), st.lists(st.text(max_size=4), max_size=6)),
    st.builds(
        lambda seed, shape, kind: _random_array(seed, shape, kind),
        st.integers(0, 2**16),
        st.lists(st.integers(0, 6), min_size=0, max_size=3),
        st.sampled_from(["f8", "f4", "f2", "i8", "u1", "b1", "U3"]),
    ),
)


def _random_array(seed, shape, kind):
    rng = np.random.default_rng(seed)
    if kind == "U3":
        return rng.choice(np.array(["a", "b", "cc"]), size=shape)
    if kind == "b1":
        return rng.random(shape) < 0.5
    if kind.startswith("f"):
        values = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if shape and shape[-1] else rng.random(shape)
        return values.astype(kind)
    return rng.integers(0, 4, shape).astype(kind)


@given(
    id_arrays=st.dictionaries(st.sampled_from(["probs", "logits", "preds", "labels", "models", "classes"]), ARRAYS),
    ood_arrays=st.dictionaries(st.sampled_from(["probs", "preds", "labels", "models"]), ARRAYS),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_the_command_line_answers_or_exits_2_with_one_line_on_any_npz(tmp_path_factory, capsys, id_arrays, ood_arrays):
    folder = tmp_path_factory.mktemp("npz")
    np.savez(folder / "id.npz", **id_arrays)
    np.savez(folder / "ood.npz", **ood_arrays)
    code = main(["estimate", "--id", str(folder / "id.npz"), "--ood", str(folder / "ood.npz"), "--bootstrap", "5"])
    out, err = capsys.readouterr()
    assert code in (0, 2), err
    if code == 2:
        assert out == "" and err.startswith("ontheline: error: ") and err.count("\n") == 1, err
