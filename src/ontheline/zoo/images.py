"""A diverse zoo of image classifiers trained here, on the CPU, in minutes.

Neural models (torch CNNs with BatchNorm, so test-time adaptation can apply later, and MLPs)
vary in width, depth, seed, learning rate, training-data fraction and training length (each
run is snapshotted at several epochs). Scikit-learn models (logistic regression, a random
forest, k-nearest neighbours, an RBF SVM) are the non-neural control group.

Every model ends as a :class:`TrainedModel` whose ``predict_proba`` maps images
``(n_images, height, width)`` in [0, 1] to probabilities ``(n_images, n_classes)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ontheline._optional import extra
from ontheline._validation import check_choice


class Split(Protocol):
    """Labelled images: ``images`` ``(n_images, height, width)`` in [0, 1] and their ``labels`` ``(n_images,)``."""

    @property
    def images(self) -> np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


#: Every zoo model predicts these many classes (the digits 0-9), whatever its training data holds.
N_CLASSES = 10


@dataclass(frozen=True)
class TrainedModel:
    """A named model; ``neural`` separates the networks from the non-neural controls.

    ``predict_proba`` maps images ``(n_images, height, width)`` to probabilities
    ``(n_images, N_CLASSES)``; ``module`` is the torch network (None for the controls), for
    test-time adaptation.

    Examples
    --------
    >>> uniform = TrainedModel("uniform", False, lambda images: np.full((len(images), N_CLASSES), 1 / N_CLASSES))
    >>> uniform.predict_proba(np.zeros((2, 8, 8))).shape, uniform.module is None
    ((2, 10), True)
    """

    name: str
    neural: bool
    predict_proba: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    module: Any = field(default=None, repr=False, compare=False)  # the torch network, for adaptation


@dataclass(frozen=True)
class NetRecipe:
    """One training run of a network, snapshotted after each of ``checkpoints`` epochs.

    Attributes
    ----------
    arch : {'cnn', 'mlp'}
        A CNN with BatchNorm, or an MLP.
    width, depth : int
        Channels (CNN) or a quarter of the hidden units (MLP), and the number of hidden blocks.
    seed : int
        Seeds the initialisation, the data subset and the batch order.
    lr : float
        Adam's learning rate.
    fraction : float
        The share of the training data it sees.
    checkpoints : tuple of int
        The epochs after which a snapshot is taken.

    Examples
    --------
    >>> NetRecipe("cnn", 8, 1, seed=0, lr=3e-3, fraction=1.0, checkpoints=(5, 15)).name(5)
    'cnn-w8-d1-lr0.003-f1-s0-e5'
    """

    arch: str  # "cnn" or "mlp"
    width: int
    depth: int
    seed: int
    lr: float
    fraction: float
    checkpoints: tuple[int, ...]

    def name(self, epoch: int) -> str:
        return f"{self.arch}-w{self.width}-d{self.depth}-lr{self.lr:g}-f{self.fraction:g}-s{self.seed}-e{epoch}"


@dataclass(frozen=True)
class SklearnRecipe:
    """One scikit-learn control: ``kind`` and its one parameter ``param`` (``'logreg'``: C,
    ``'forest'``: the maximum depth, ``'knn'``: the number of neighbours, ``'svm'``: C), and a ``seed``.

    Examples
    --------
    >>> SklearnRecipe("knn", 15).name
    'knn-15'
    """

    kind: str  # "logreg", "forest", "knn", "svm"
    param: float
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.param:g}"


CONFIGS = ("tiny", "quick", "full")


def recipes(config: str) -> tuple[list[NetRecipe], list[SklearnRecipe]]:
    """The zoo of a configuration: ``'tiny'`` (tests, seconds), ``'quick'`` (the demo), ``'full'`` (the benchmark).

    Returns
    -------
    nets : list of NetRecipe
    controls : list of SklearnRecipe

    Examples
    --------
    >>> nets, controls = recipes("quick")
    >>> len(nets), [c.name for c in controls]  # each net gives 3 snapshots
    (24, ['logreg-0.01', 'logreg-0.1', 'logreg-1', 'knn-3', 'knn-15', 'forest-8', 'forest-16'])
    """
    check_choice("recipes", "config", config, CONFIGS)
    if config == "tiny":
        nets = [NetRecipe("cnn", 4, 1, 0, 3e-3, 1.0, (1, 2)), NetRecipe("mlp", 16, 1, 0, 3e-3, 1.0, (1, 2))]
        return nets, [SklearnRecipe("logreg", 1.0), SklearnRecipe("knn", 5), SklearnRecipe("forest", 4)]
    # Many seeds of small nets, each snapshotted from half- to fully-trained, with two learning rates
    # and two training-data fractions: this spread gave ALine-D errors under 1 point on the shifts
    # where the agreement line holds (see benchmarks/results/).
    archs = [("cnn", 8, 1), ("mlp", 32, 1), ("cnn", 16, 1), ("mlp", 64, 1)]
    controls = (
        [SklearnRecipe("logreg", c) for c in (0.01, 0.1, 1.0)]
        + [SklearnRecipe("knn", k) for k in (3, 15)]
        + [SklearnRecipe("forest", d) for d in (8, 16)]
    )
    if config == "full":
        archs += [("cnn", 8, 2), ("mlp", 32, 2)]
        controls += [SklearnRecipe("logreg", 0.001), SklearnRecipe("knn", 1), SklearnRecipe("forest", 4)]
        controls += [SklearnRecipe("svm", c) for c in (0.3, 3.0)]
    nets = [
        NetRecipe(arch, width, depth, seed, 1e-3 if seed % 2 else 3e-3, 1.0 if seed < 3 else 0.5, (5, 15, 30))
        for seed in range(6)
        for arch, width, depth in archs
    ]
    return nets, controls


def train_zoo(train: Split, config: str = "quick", progress: Callable[[str], None] | None = None) -> list[TrainedModel]:
    """Train every model of ``config`` on ``train``; ``progress`` is told each model's name as it finishes.

    Parameters
    ----------
    train : Split
        Labelled images: ``images`` ``(n_images, height, width)`` in [0, 1] and ``labels`` ``(n_images,)``.
    config : {'tiny', 'quick', 'full'}
        See :func:`recipes`.
    progress : callable, optional

    Returns
    -------
    list of TrainedModel
        Every snapshot of every network, then the controls.

    Examples
    --------
    >>> from ontheline.bench.data import Split
    >>> train = Split(np.random.default_rng(0).random((40, 8, 8)).astype(np.float32), np.arange(40) % 10)
    >>> zoo = train_zoo(train, "tiny")
    >>> [model.name for model in zoo if not model.neural], sum(model.neural for model in zoo)
    (['logreg-1', 'knn-5', 'forest-4'], 4)
    """
    nets, controls = recipes(config)
    models: list[TrainedModel] = []
    for recipe in nets:
        for model in train_net(recipe, train):
            models.append(model)
            if progress:
                progress(model.name)
    for control in controls:
        models.append(train_sklearn(control, train))
        if progress:
            progress(models[-1].name)
    return models


# --- networks ------------------------------------------------------------------------------


def _build_net(recipe: NetRecipe, side: int) -> Any:
    with extra("torch"):
        import torch.nn as nn

    layers: list[Any] = []
    if recipe.arch == "cnn":
        channels = 1
        for block in range(recipe.depth + 1):
            out = recipe.width * 2**block
            # Large images are halved by a strided convolution: 4x less compute than pooling afterwards.
            stride = 2 if side >= 12 else 1
            layers += [nn.Conv2d(channels, out, 3, stride=stride, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            side = -(-side // stride)
            channels = out
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(channels * 4, N_CLASSES)]
        return nn.Sequential(*layers)
    features = side * side
    layers.append(nn.Flatten())
    for _ in range(recipe.depth):
        layers += [nn.Linear(features, recipe.width * 4), nn.ReLU()]
        features = recipe.width * 4
    layers.append(nn.Linear(features, N_CLASSES))
    return nn.Sequential(*layers)


def train_net(recipe: NetRecipe, train: Split, batch_size: int = 64) -> Iterator[TrainedModel]:
    """Train one network with Adam and yield a snapshot after each checkpoint epoch.

    Examples
    --------
    >>> from ontheline.bench.data import Split
    >>> train = Split(np.random.default_rng(0).random((40, 8, 8)).astype(np.float32), np.arange(40) % 10)
    >>> recipe = NetRecipe("mlp", 4, 1, seed=0, lr=3e-3, fraction=1.0, checkpoints=(1, 2))
    >>> [model.name for model in train_net(recipe, train)]
    ['mlp-w4-d1-lr0.003-f1-s0-e1', 'mlp-w4-d1-lr0.003-f1-s0-e2']
    """
    with extra("torch"):
        import torch

    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    keep = np.sort(rng.permutation(len(train))[: max(batch_size, round(recipe.fraction * len(train)))])
    x = torch.from_numpy(train.images[keep][:, None].astype(np.float32))
    y = torch.from_numpy(train.labels[keep])
    net = _build_net(recipe, train.images.shape[1])
    optimiser = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(1, max(recipe.checkpoints) + 1):
        net.train()
        for batch in torch.randperm(len(y)).split(batch_size):
            optimiser.zero_grad()
            loss_fn(net(x[batch]), y[batch]).backward()
            optimiser.step()
        if epoch in recipe.checkpoints:
            snapshot = copy.deepcopy(net).eval()
            yield TrainedModel(recipe.name(epoch), True, _torch_predictor(snapshot), snapshot)


def net_from_state(recipe: NetRecipe, epoch: int, side: int, state: dict[str, Any]) -> TrainedModel:
    """A checkpoint of ``recipe`` rebuilt from its saved ``state_dict`` (images of ``side`` x ``side``).

    Examples
    --------
    >>> from ontheline.bench.data import Split
    >>> train = Split(np.random.default_rng(0).random((40, 8, 8)).astype(np.float32), np.arange(40) % 10)
    >>> recipe = NetRecipe("mlp", 4, 1, seed=0, lr=3e-3, fraction=1.0, checkpoints=(1,))
    >>> trained = next(train_net(recipe, train))
    >>> rebuilt = net_from_state(recipe, 1, side=8, state=trained.module.state_dict())
    >>> rebuilt.name, bool(np.allclose(rebuilt.predict_proba(train.images), trained.predict_proba(train.images)))
    ('mlp-w4-d1-lr0.003-f1-s0-e1', True)
    """
    net = _build_net(recipe, side)
    net.load_state_dict(state)
    net.eval()
    return TrainedModel(recipe.name(epoch), True, _torch_predictor(net), net)


def _torch_predictor(net: Any) -> Callable[[np.ndarray], np.ndarray]:
    def predict_proba(images: np.ndarray) -> np.ndarray:
        with extra("torch"):
            import torch

        with torch.no_grad():
            batches = torch.from_numpy(np.asarray(images, np.float32)[:, None]).split(1024)
            return torch.cat([torch.softmax(net(b), dim=1) for b in batches]).numpy().astype(np.float64)

    return predict_proba


# --- scikit-learn controls -----------------------------------------------------------------


def train_sklearn(recipe: SklearnRecipe, train: Split) -> TrainedModel:
    """Fit one scikit-learn model on flattened pixels.

    Examples
    --------
    >>> from ontheline.bench.data import Split
    >>> train = Split(np.random.default_rng(0).random((40, 8, 8)).astype(np.float32), np.arange(40) % 10)
    >>> model = train_sklearn(SklearnRecipe("knn", 3), train)
    >>> model.name, model.neural, model.predict_proba(train.images[:2]).shape
    ('knn-3', False, (2, 10))
    """
    with extra("bench"):
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.svm import SVC

    make = {
        "logreg": lambda p: LogisticRegression(C=p, max_iter=300),
        "forest": lambda p: RandomForestClassifier(n_estimators=50, max_depth=int(p), random_state=recipe.seed),
        "knn": lambda p: KNeighborsClassifier(n_neighbors=int(p)),
        # Platt-scaled on cross-validated scores: what SVC(probability=True) did before its deprecation.
        "svm": lambda p: CalibratedClassifierCV(SVC(C=p), ensemble=False),
    }
    model = make[recipe.kind](recipe.param).fit(train.images.reshape(len(train), -1), train.labels)

    def predict_proba(images: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(images), N_CLASSES))
        probs[:, model.classes_] = model.predict_proba(np.asarray(images).reshape(len(images), -1))
        return probs

    return TrainedModel(recipe.name, False, predict_proba)
