import numpy as np
import pytest

pytest.importorskip("torch", reason="the zoo's networks need the torch extra, which make test installs")

from ontheline.bench.data import make_splits  # noqa: E402
from ontheline.zoo import recipes, train_zoo  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return make_splits("digits", seed=0)


@pytest.fixture(scope="module")
def tiny_zoo(digits):
    return train_zoo(digits.train, "tiny")


def test_the_tiny_zoo_has_every_snapshot_and_control_with_unique_names(tiny_zoo):
    nets, controls = recipes("tiny")
    assert len(tiny_zoo) == sum(len(r.checkpoints) for r in nets) + len(controls)
    assert len({m.name for m in tiny_zoo}) == len(tiny_zoo)
    assert [m.neural for m in tiny_zoo] == [True] * 4 + [False] * 3


def test_zoo_models_give_probabilities_and_learn_something(tiny_zoo, digits):
    for model in tiny_zoo:
        probs = model.predict_proba(digits.id_val.images)
        assert probs.shape == (len(digits.id_val), 10)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert (probs.argmax(1) == digits.id_val.labels).mean() > 0.15  # chance is 0.1; a 1-epoch tiny CNN gets 0.2


def test_training_is_deterministic_and_snapshots_differ(tiny_zoo, digits):
    again = train_zoo(digits.train, "tiny")
    for first, second in zip(tiny_zoo, again):
        np.testing.assert_allclose(
            first.predict_proba(digits.id_val.images), second.predict_proba(digits.id_val.images), atol=1e-6
        )
    epoch1, epoch2 = tiny_zoo[0].predict_proba(digits.id_val.images), tiny_zoo[1].predict_proba(digits.id_val.images)
    assert not np.allclose(epoch1, epoch2)


def test_the_configurations_grow_to_the_benchmark_size():
    sizes = {}
    for config in ("tiny", "quick", "full"):
        nets, controls = recipes(config)
        sizes[config] = sum(len(r.checkpoints) for r in nets) + len(controls)
    assert sizes["tiny"] < sizes["quick"] < sizes["full"] and sizes["full"] >= 60


def test_network_weights_are_saved_once_and_reloaded_to_the_same_predictions(tmp_path, monkeypatch):
    from ontheline.bench import predict

    recipe = recipes("tiny")[0][0]
    first = predict._train_and_predict("tiny", "digits", recipe, None, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == len(recipe.checkpoints)

    def no_training(*args, **kwargs):
        raise AssertionError("the saved weights should have been used")

    monkeypatch.setattr(predict, "train_net", no_training)
    again = predict._train_and_predict("tiny", "digits", recipe, None, tmp_path)
    for (name_a, probs_a, _), (name_b, probs_b, _) in zip(first, again):
        assert name_a == name_b and np.array_equal(probs_a, probs_b)
    monkeypatch.undo()
    damaged = next(tmp_path.glob("*.pt"))
    damaged.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="saved weights damaged"):
        retrained = predict._train_and_predict("tiny", "digits", recipe, None, tmp_path)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, retrained))
