"""Building model zoos: diverse classifiers whose predictions put agreement-on-the-line to work.

:mod:`.images` trains the benchmark's image zoo on the CPU: CNNs with BatchNorm and MLPs
varied in width, depth, seed, learning rate, data fraction and training length, and
scikit-learn controls.
"""

from ontheline.zoo.images import (
    N_CLASSES,
    NetRecipe,
    SklearnRecipe,
    TrainedModel,
    net_from_state,
    recipes,
    train_net,
    train_sklearn,
    train_zoo,
)

__all__ = [
    "N_CLASSES",
    "NetRecipe",
    "SklearnRecipe",
    "TrainedModel",
    "net_from_state",
    "recipes",
    "train_net",
    "train_sklearn",
    "train_zoo",
]
