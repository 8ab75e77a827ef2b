import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the probe zoo trains in torch, which make test installs")

from ontheline import InputError  # noqa: E402
from ontheline.zoo import DIVERSITY_SOURCES, probe_schedule, train_probes  # noqa: E402


def mixture(n, *, d=12, k=3, separation=1.0, seed=0):
    """A Gaussian mixture: ``k`` classes whose means lie ``separation`` apart on average, unit noise."""
    rng = np.random.default_rng(seed)
    means = separation * np.random.default_rng(1000).normal(size=(k, d)) / np.sqrt(2)
    labels = rng.integers(0, k, n)
    return (means[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


@pytest.fixture(scope="module")
def data():
    return mixture(400)


def fit(data, **kwargs):
    settings = {"n_models": 6, "steps": (2, 30), "batch_size": 32, "subset_fraction": 0.25} | kwargs
    return train_probes(*data, **settings)


# --- reproducible ---------------------------------------------------------------------------------


@pytest.mark.parametrize("diversity", DIVERSITY_SOURCES)
def test_a_rerun_with_the_same_seed_gives_bit_identical_weights(data, diversity):
    first, second = fit(data, diversity=diversity), fit(data, diversity=diversity)
    assert np.array_equal(first.weights, second.weights) and np.array_equal(first.bias, second.bias)
    assert first.models == second.models


@pytest.mark.parametrize("diversity", DIVERSITY_SOURCES)
def test_the_weights_do_not_depend_on_the_number_of_torch_threads(diversity):
    large = mixture(1500, d=384)  # large enough for torch to split its work over threads
    settings = {"diversity": diversity, "n_models": 32, "steps": (2, 20), "batch_size": 128}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train_probes(*large, **settings)
        torch.set_num_threads(2)
        two = train_probes(*large, **settings)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one.weights, two.weights) and np.array_equal(one.bias, two.bias)


def test_the_weights_do_not_depend_on_the_global_torch_or_numpy_random_state(data):
    first = fit(data)
    torch.manual_seed(123)
    np.random.seed(123)
    assert np.array_equal(first.weights, fit(data).weights)


@pytest.mark.parametrize("diversity", DIVERSITY_SOURCES)
def test_another_seed_gives_other_weights(data, diversity):
    assert not np.array_equal(fit(data, diversity=diversity).weights, fit(data, diversity=diversity, seed=1).weights)


# --- each source varies only what it names --------------------------------------------------------


def distinct_pairs(arrays):
    """Whether every two of ``arrays`` differ."""
    return all(not np.array_equal(arrays[i], arrays[j]) for i in range(len(arrays)) for j in range(i))


def test_random_heads_differ_only_in_their_initial_weights(data):
    zoo = fit(data, diversity="random-head", steps=[8] * 6)
    assert distinct_pairs(zoo.initial_weights)
    schedule = probe_schedule(len(data[1]), 8, n_models=6, diversity="random-head", batch_size=32)
    assert all(np.array_equal(schedule[0], head) for head in schedule)  # the same batches, in the same order
    assert zoo.subsets is None
    assert distinct_pairs(zoo.weights)  # with equal steps, the heads still differ: their initialisation


def test_order_heads_share_their_initial_weights_and_differ_in_their_order(data):
    zoo = fit(data, diversity="order", steps=[8] * 6)
    assert all(np.array_equal(zoo.initial_weights[0], w) for w in zoo.initial_weights)
    n = len(data[1])
    schedule = probe_schedule(n, 2 * (n // 32), n_models=6, diversity="order", batch_size=32)
    assert distinct_pairs(schedule)
    for head in schedule:  # each epoch is a permutation of every sample (less the remainder of a batch)
        epoch = head[: n // 32].ravel()
        assert len(np.unique(epoch)) == len(epoch) == (n // 32) * 32
    assert zoo.subsets is None
    assert distinct_pairs(zoo.weights)


def test_subset_heads_share_their_initial_weights_and_order_and_differ_in_their_subset(data):
    n, fraction = len(data[1]), 0.25
    zoo = fit(data, diversity="subset", steps=[8] * 6, subset_fraction=fraction)
    assert all(np.array_equal(zoo.initial_weights[0], w) for w in zoo.initial_weights)
    assert zoo.subsets.shape == (6, round(fraction * n))
    assert distinct_pairs([set(s) for s in zoo.subsets.tolist()])
    assert all(len(set(s)) == round(fraction * n) for s in zoo.subsets.tolist())
    schedule = probe_schedule(n, 40, n_models=6, diversity="subset", subset_fraction=fraction, batch_size=32)
    for head, subset in zip(schedule, zoo.subsets):
        assert set(head.ravel()) == set(subset)  # 40 steps of 32 cover the 100 samples, and only them
    positions = [np.searchsorted(subset, head) for head, subset in zip(schedule, zoo.subsets)]
    assert all(np.array_equal(positions[0], p) for p in positions)  # the same order, of their own samples
    assert distinct_pairs(zoo.weights)


def test_a_subset_head_is_untouched_by_the_samples_outside_its_subset(data):
    features, labels = data
    zoo = fit(data, diversity="subset")
    outside = np.setdiff1d(np.arange(len(labels)), zoo.subsets[0])
    scrambled_features, scrambled_labels = features.copy(), labels.copy()
    scrambled_features[outside] = -features[outside]
    scrambled_labels[outside] = (labels[outside] + 1) % 3
    other = fit((scrambled_features, scrambled_labels), diversity="subset")
    assert np.array_equal(zoo.weights[0], other.weights[0])
    assert not np.array_equal(zoo.weights[1:], other.weights[1:])


def test_a_head_stops_at_its_own_step_count_whatever_the_others_do(data):
    for diversity in DIVERSITY_SOURCES:
        short_neighbour = fit(data, diversity=diversity, n_models=2, steps=[20, 5])
        long_neighbour = fit(data, diversity=diversity, n_models=2, steps=[20, 40])
        assert np.array_equal(short_neighbour.weights[0], long_neighbour.weights[0]), diversity


def test_the_batched_training_matches_one_head_trained_alone_with_autograd(data):
    features, labels = data
    zoo = fit(data, diversity="order", n_models=3, steps=[25, 25, 25], lr=0.05, weight_decay=0.01)
    schedule = probe_schedule(len(labels), 25, n_models=3, diversity="order", batch_size=32)
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    for head in range(3):
        w = torch.tensor(zoo.initial_weights[head], requires_grad=True)
        b = torch.zeros(3, requires_grad=True)
        opt = torch.optim.Adam([{"params": [w], "weight_decay": 0.01}, {"params": [b]}], lr=0.05)
        for batch in schedule[head]:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(x[batch] @ w + b, y[batch]).backward()
            opt.step()
        np.testing.assert_allclose(zoo.weights[head], w.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(zoo.bias[head], b.detach().numpy(), atol=1e-5)


# --- what the zoo learns --------------------------------------------------------------------------


def test_the_step_spread_gives_a_spread_of_id_accuracies():
    train, test = mixture(2000, separation=1.0, seed=0), mixture(2000, separation=1.0, seed=1)
    zoo = train_probes(*train, n_models=16, steps=(1, 200), lr=3e-3, batch_size=64)
    accuracy = (zoo.predict(test[0]) == test[1]).mean(axis=1)
    assert accuracy.max() - accuracy.min() > 0.15
    assert np.corrcoef(np.argsort(np.argsort(accuracy)), np.arange(16))[0, 1] > 0.8  # more steps, more accurate


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_probe_on_easy_data_reaches_high_accuracy(optimizer):
    train, test = mixture(1000, separation=6.0, seed=0), mixture(1000, separation=6.0, seed=1)
    zoo = train_probes(
        *train, n_models=2, steps=(100, 200), optimizer=optimizer, lr=0.05 if optimizer == "adam" else 0.1
    )
    assert (zoo.predict(test[0]) == test[1]).mean(axis=1).min() > 0.97


def test_string_labels_become_the_classes_of_the_output_columns():
    features, labels = mixture(300, k=2, separation=4.0)
    names = np.array(["neg", "pos"])[labels]
    zoo = train_probes(features, names, n_models=2, steps=(50, 60), lr=0.05)
    assert zoo.classes == ("neg", "pos")
    assert (zoo.predict(features) == names).mean() > 0.9
    assert zoo.predictions(features).classes == ("neg", "pos")


# --- the zoo's interface --------------------------------------------------------------------------


def test_probabilities_have_one_row_per_head_and_sample_and_sum_to_one(data):
    zoo = fit(data)
    probs = zoo.predict_proba(data[0][:50])
    assert probs.shape == (6, 50, 3) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(probs.argmax(axis=-1), zoo.predict(data[0][:50]))


def test_the_names_carry_the_source_the_index_and_the_steps(data):
    assert fit(data, diversity="subset", subset_fraction=0.25).models[0] == "subset-0.25-0-2steps"
    names = fit(data, n_models=12, steps=(3, 40)).models
    assert names[0] == "random-head-00-3steps" and names[-1] == "random-head-11-40steps"
    assert fit(data, diversity="order").models[-1] == "order-5-30steps"


def test_steps_are_log_spaced_from_min_to_max_or_given_per_head(data):
    assert fit(data, n_models=5, steps=(1, 16)).steps.tolist() == [1, 2, 4, 8, 16]
    assert fit(data, n_models=3, steps=[7, 3, 5]).steps.tolist() == [7, 3, 5]


def test_the_recipe_is_json_and_says_how_the_zoo_was_built(data):
    recipe = fit(data, diversity="subset", seed=4).to_dict()
    assert json.loads(json.dumps(recipe)) == recipe
    assert recipe | {"classes": None} == {
        "diversity": "subset", "n_models": 6, "subset_fraction": 0.25, "steps": [2, 30], "lr": 0.01,
        "weight_decay": 0.0, "batch_size": 32, "optimizer": "adam", "init_scale": 1.0, "seed": 4,
        "n_train": 400, "n_features": 12, "classes": None,
    }  # fmt: skip
    assert fit(data).to_dict()["subset_fraction"] is None  # only subsets have a fraction


def test_the_initial_logits_have_the_asked_for_scale_whatever_the_scale_of_the_features(data):
    features, labels = data
    for scale in (0.01, 100.0):
        zoo = train_probes(features * scale, labels, n_models=8, steps=(1, 1), init_scale=2.0)
        logits = np.einsum("nd,mdk->mnk", features * scale, zoo.initial_weights.astype(np.float64))
        assert logits.std() == pytest.approx(2.0, rel=0.15)


def test_a_pool_smaller_than_the_batch_is_the_whole_batch():
    schedule = probe_schedule(50, 3, n_models=2, diversity="subset", subset_fraction=0.2, batch_size=128)
    assert schedule.shape == (2, 3, 10)
    assert probe_schedule(50, 0, n_models=2).shape == (2, 0, 50)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"diversity": "seed"}, "'diversity' parameter of train_probes must be one of"),
        ({"steps": (10, 5)}, "min <= max"),
        ({"steps": (0, 5)}, "pair (min, max) of positive integers"),
        ({"steps": [1, 2, 3]}, "one positive integer per head (6)"),
        ({"subset_fraction": 0.0, "diversity": "subset"}, "must be in (0, 1]"),
        ({"subset_fraction": 0.001, "diversity": "subset"}, "less than one sample"),
        ({"lr": 0.0}, "'lr' parameter of train_probes must be positive"),
        ({"n_models": 0}, "'n_models' parameter of train_probes must be in [1, inf]"),
        ({"optimizer": "lbfgs"}, "'optimizer' parameter"),
    ],
)
def test_bad_settings_raise_an_input_error_that_names_them(data, kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        fit(data, **kwargs)


def test_bad_data_raises_an_input_error_that_names_it(data):
    features, labels = data
    with pytest.raises(InputError, match="features must be a 2-D array"):
        train_probes(features[:, 0], labels)
    with pytest.raises(InputError, match="one label per row"):
        train_probes(features, labels[:-1])
    with pytest.raises(InputError, match="at least 2 classes"):
        train_probes(features, np.zeros(len(labels), int))
    with pytest.raises(InputError, match="NaN or infinite"):
        train_probes(np.full_like(features, np.nan), labels)
    zoo = fit(data)
    with pytest.raises(InputError, match="the probes were trained on 12"):
        zoo.predict_proba(features[:, :5])
