import numpy as np
import pytest

from ontheline.bench.data import load_images, make_splits, natural_shift
from ontheline.shifts import resize


@pytest.mark.parametrize(("name", "n", "side"), [("digits", 1797, 8), ("mnist", 5000, 28)])
def test_packaged_datasets_load_as_images_in_the_unit_range(name, n, side):
    data = load_images(name)
    assert data.images.shape == (n, side, side) and data.images.dtype == np.float32
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    assert sorted(np.unique(data.labels)) == list(range(10))


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_splits_are_disjoint_cover_everything_and_are_stratified(name):
    splits = make_splits(name, seed=0)
    data = load_images(name)
    parts = [splits.train, splits.id_val, splits.id_test]
    assert sum(len(p) for p in parts) == len(data)
    flat = np.concatenate([p.images.reshape(len(p), -1) for p in parts])
    assert len(np.unique(flat, axis=0)) == len(np.unique(data.images.reshape(len(data), -1), axis=0))
    for part, share in zip(parts, (0.6, 0.2, 0.2)):
        counts = np.bincount(part.labels, minlength=10)
        expected = share * np.bincount(data.labels, minlength=10)
        assert np.all(np.abs(counts - expected) <= 1)


def test_splits_are_fixed_by_the_seed():
    first, again, other = make_splits("digits", seed=3), make_splits("digits", seed=3), make_splits("digits", seed=4)
    np.testing.assert_array_equal(first.id_val.images, again.id_val.images)
    assert not np.array_equal(first.id_val.images, other.id_val.images)


def test_the_natural_shift_is_the_other_dataset_at_the_training_resolution():
    to_digits = natural_shift("digits")
    assert to_digits.images.shape == (5000, 8, 8) and len(to_digits.labels) == 5000
    to_mnist = natural_shift("mnist")
    assert to_mnist.images.shape == (1797, 28, 28)
    assert to_digits.images.min() >= 0.0 and to_digits.images.max() <= 1.0


def test_resize_keeps_constant_images_and_mean_brightness():
    np.testing.assert_allclose(resize(np.full((2, 28, 28), 0.3), (8, 8)), 0.3)
    x = np.random.default_rng(0).random((3, 8, 8))
    np.testing.assert_allclose(resize(x, (28, 28)).mean(axis=(1, 2)), x.mean(axis=(1, 2)))
    np.testing.assert_allclose(resize(x, (8, 8)), x)


def test_bad_split_fractions_are_refused():
    with pytest.raises(ValueError, match="three positive shares summing to 1"):
        make_splits("digits", fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"The 'name' parameter of load_images must be one of \{'digits', 'mnist'\}"):
        load_images("cifar")
