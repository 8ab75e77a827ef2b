"""Penultimate activations of the zoos this project trains: the benchmark's networks and linear probes.

The benchmark keeps each trained network checkpoint's state dict in its store (``weights/``);
:func:`benchmark_networks` loads them, training (and saving) through the benchmark's own code any
that are missing, so the networks analysed are the ones the benchmark scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline._validation import check_choice


def penultimate_activations(module: Any, images: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """The activations feeding a sequential network's last layer, ``(n_images, n_units)`` (float64).

    Parameters
    ----------
    module : torch.nn.Sequential
        A network of the benchmark's zoo (:func:`ontheline.zoo.train_net`), whose last layer is the
        linear classifier.
    images : numpy.ndarray of shape (n_images, height, width)

    Returns
    -------
    numpy.ndarray of shape (n_images, n_units)

    Examples
    --------
    >>> from ontheline.bench.data import Split
    >>> from ontheline.zoo import NetRecipe, train_net
    >>> train = Split(np.random.default_rng(0).random((40, 8, 8)).astype(np.float32), np.arange(40) % 10)
    >>> net = next(train_net(NetRecipe("mlp", 4, 1, seed=0, lr=3e-3, fraction=1.0, checkpoints=(1,)), train))
    >>> penultimate_activations(net.module, train.images).shape  # an MLP of width 4: 16 hidden units
    (40, 16)
    """
    with extra("torch"):
        import torch

    body = module[:-1]
    body.eval()
    with torch.no_grad():
        batches = torch.from_numpy(np.asarray(images, np.float32)[:, None]).split(batch_size)
        return torch.cat([body(b).flatten(1) for b in batches]).numpy().astype(np.float64)


def benchmark_networks(
    config: str = "quick", dataset: str = "digits", *, store: Any = None, final_only: bool = False,
    progress: Progress | None = None,
) -> tuple[list[Any], Any]:  # fmt: skip
    """The networks of a benchmark configuration's zoo on a dataset, and the dataset's ID test split.

    Parameters
    ----------
    config : {'tiny', 'quick', 'full'}
        The benchmark configuration (:data:`ontheline.bench.config.CONFIGS`).
    dataset : {'digits', 'mnist'}
    store : Store, optional
        Whose ``weights/`` folder holds the checkpoints (default: the default store).
    final_only : bool
        Only each training run's last checkpoint.
    progress : callable, optional

    Returns
    -------
    networks : list of TrainedModel
        In the benchmark's order.
    test : Split
        The ID test images and labels.

    Examples
    --------
    >>> import tempfile
    >>> from ontheline.store import Store
    >>> nets, test = benchmark_networks("tiny", "digits", store=Store(tempfile.mkdtemp()))
    >>> [n.name for n in nets][:2], test.images.shape[1:]
    (['cnn-w4-d1-lr0.003-f1-s0-e1', 'cnn-w4-d1-lr0.003-f1-s0-e2'], (8, 8))
    """
    from ontheline.bench import predict
    from ontheline.bench.config import CONFIGS
    from ontheline.store import Store
    from ontheline.zoo import recipes

    check_choice("benchmark_networks", "config", config, [c for c in CONFIGS if CONFIGS[c].zoo != "text"])
    check_choice("benchmark_networks", "dataset", dataset, CONFIGS[config].datasets)
    nets, _ = recipes(CONFIGS[config].zoo)
    splits = predict._splits(dataset)
    folder = (store if store is not None else Store()).path / "weights"
    out = []
    for k, recipe in enumerate(nets):
        if progress:
            progress(f"{dataset}: networks of {recipe.name(max(recipe.checkpoints))}", k, len(nets))
        models = predict._networks(recipe, dataset, splits.train, folder)
        out += [models[-1]] if final_only else models
    return out, splits.id_test


def probe_activations(zoo: Any, features: Any) -> list[np.ndarray]:
    """What each linear probe of a :class:`~ontheline.zoo.ProbeZoo` computes from the backbone's features.

    A linear probe has no hidden layer: its penultimate activations are the frozen backbone's
    embedding, the same for every head, so their interaction tensor is degenerate (every head
    learned every feature). What differs between heads is the map to their logits; this returns
    each head's logits without the bias, ``features @ weights[m]``, ``(n_samples, n_classes)``,
    the only head-specific representation there is.

    Parameters
    ----------
    zoo : ProbeZoo
    features : array-like of shape (n_samples, n_features)

    Returns
    -------
    list of numpy.ndarray of shape (n_samples, n_classes)

    Examples
    --------
    >>> from ontheline.zoo import train_probes
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(120, 6)), rng.integers(0, 3, 120)
    >>> zoo = train_probes(x, y, n_models=4, steps=(2, 8), batch_size=40)
    >>> [a.shape for a in probe_activations(zoo, x)][:2]
    [(120, 3), (120, 3)]
    """
    x = np.asarray(features, dtype=np.float64)
    return [x @ w.astype(np.float64) for w in zoo.weights]
