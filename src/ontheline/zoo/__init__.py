"""Building model zoos: diverse classifiers whose predictions put agreement-on-the-line to work.

:mod:`.images` trains the benchmark's image zoo on the CPU: CNNs with BatchNorm and MLPs
varied in width, depth, seed, learning rate, data fraction and training length, and
scikit-learn controls. :mod:`.embed` turns texts into a pretrained backbone's sentence
embeddings (kept in the prediction store), the features a zoo of probes is trained on.
:mod:`.probes` trains that zoo: many linear heads at once, varied by one knob (random head,
data order or data subset), the recipe of Saxena et al. (NeurIPS 2024).
"""

from ontheline.zoo.embed import BACKBONES, PREPROCESSING, Backbone, embed, load_backbone, texts_fingerprint
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
from ontheline.zoo.probes import DIVERSITY_SOURCES, ProbeZoo, probe_schedule, train_probes

__all__ = [
    "BACKBONES",
    "PREPROCESSING",
    "Backbone",
    "embed",
    "load_backbone",
    "texts_fingerprint",
    "DIVERSITY_SOURCES",
    "N_CLASSES",
    "NetRecipe",
    "ProbeZoo",
    "SklearnRecipe",
    "TrainedModel",
    "net_from_state",
    "probe_schedule",
    "recipes",
    "train_net",
    "train_probes",
    "train_sklearn",
    "train_zoo",
]
