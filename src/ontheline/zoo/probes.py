"""A zoo of linear probes on one backbone's features: many heads trained at once, varied by one knob.

Most teams own one pretrained backbone, not fifty models. Saxena et al. (NeurIPS 2024) build a
zoo from one backbone by training many linear heads on its frozen features and find that
agreement-on-the-line holds, with the slope of the accuracy line, when the heads differ in their
**random initialisation**; heads that differ only in their **data order** or **data subset**
give agreement lines that are too steep (near y = x), so ALine is biased. :func:`train_probes`
builds such a zoo for each of the three sources. The spread in ID accuracy comes from the
number of training steps, log-spaced over the heads; the diversity source is the one knob
varied beside it.

All heads train at once as one batched model: weights ``(n_models, n_features, n_classes)``,
logits and gradients by batched matrix products over the heads, one optimiser over all of
them (the loss is the sum of the heads' own mean losses, so each head's gradient is its own),
each head's weights copied out when it reaches its own step count. Every random draw is made with numpy from
``seed``, one stream per purpose and head, so a rerun gives the same weights bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ontheline._optional import extra
from ontheline._validation import InputError, check_choice, check_number
from ontheline.zoo.probe_schedule import (
    DIVERSITY_SOURCES,
    Diversity,
    _batches,
    _check_recipe,
    _head_steps,
    _initial_weights,
    _pools,
    _subset_size,
    probe_schedule,
)

_OPTIMIZERS = ("adam", "sgd")
# --- the zoo ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ProbeZoo:
    """Linear heads on one backbone's features, each stopped at its own step count.

    Attributes
    ----------
    weights : numpy.ndarray of shape (n_models, n_features, n_classes)
        Each head's weights when it stopped (float32).
    bias : numpy.ndarray of shape (n_models, n_classes)
    steps : numpy.ndarray of shape (n_models,)
        Each head's number of training steps.
    classes : tuple
        The class of each output column: the distinct training labels, sorted.
    diversity : {'random-head', 'order', 'subset'}
        What differs between heads beside their step count.
    initial_weights : numpy.ndarray of shape (n_models, n_features, n_classes)
        Each head's weights before training (the biases start at zero).
    subsets : numpy.ndarray of shape (n_models, subset_size) or None
        Under ``subset``, the training samples of each head (sorted indices); otherwise None.
    recipe : dict
        The arguments of :func:`train_probes` and the training set's size, as JSON values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> features, labels = rng.normal(size=(200, 5)), rng.integers(0, 3, 200)
    >>> zoo = train_probes(features, labels, n_models=3, steps=(1, 4), batch_size=50)
    >>> zoo.models
    ('random-head-0-1steps', 'random-head-1-2steps', 'random-head-2-4steps')
    >>> zoo.predict_proba(features[:10]).shape, zoo.classes
    ((3, 10, 3), (0, 1, 2))
    """

    weights: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    steps: np.ndarray
    classes: tuple[Any, ...]
    diversity: str
    initial_weights: np.ndarray = field(repr=False)
    subsets: np.ndarray | None = field(repr=False)
    recipe: dict[str, Any] = field(repr=False)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def models(self) -> tuple[str, ...]:
        """The heads' names: the diversity source (with the fraction for subsets), the head's index and its steps."""
        source = f"subset-{self.recipe['subset_fraction']:g}" if self.diversity == "subset" else self.diversity
        width = len(str(len(self) - 1))
        return tuple(f"{source}-{i:0{width}d}-{int(s)}steps" for i, s in enumerate(self.steps))

    def logits(self, features: Any) -> np.ndarray:
        """Every head's logits ``(n_models, n_samples, n_classes)`` on ``features`` ``(n_samples, n_features)``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> zoo = train_probes(rng.normal(size=(50, 4)), np.arange(50) % 2, n_models=2, steps=(1, 2))
        >>> zoo.logits(rng.normal(size=(7, 4))).shape
        (2, 7, 2)
        """
        x = _check_features(features, "features", n_features=self.n_features)
        n_models, n_features, n_classes = self.weights.shape
        # One matrix product for all heads: (n, d) @ (d, m * K).
        flat = self.weights.astype(np.float64).transpose(1, 0, 2).reshape(n_features, n_models * n_classes)
        logits = (x @ flat).reshape(len(x), n_models, n_classes).transpose(1, 0, 2)
        return logits + self.bias.astype(np.float64)[:, None, :]

    def predict_proba(self, features: Any) -> np.ndarray:
        """Every head's class probabilities ``(n_models, n_samples, n_classes)`` (float64).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> zoo = train_probes(rng.normal(size=(50, 4)), np.arange(50) % 2, n_models=2, steps=(1, 2))
        >>> probs = zoo.predict_proba(rng.normal(size=(7, 4)))
        >>> probs.shape, bool(np.allclose(probs.sum(axis=-1), 1.0))
        ((2, 7, 2), True)
        """
        logits = self.logits(features)
        logits -= logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=-1, keepdims=True)

    def predict(self, features: Any) -> np.ndarray:
        """Every head's predicted class ``(n_models, n_samples)``, as values of :attr:`classes`.

        Examples
        --------
        >>> features = np.array([[-2.0], [-1.0], [1.0], [2.0]] * 10)
        >>> zoo = train_probes(features, np.where(features[:, 0] > 0, "pos", "neg"), n_models=2, steps=(50, 100), lr=0.1)
        >>> zoo.predict(features[:4]).tolist()
        [['neg', 'neg', 'pos', 'pos'], ['neg', 'neg', 'pos', 'pos']]
        """
        return np.asarray(self.classes)[self.logits(features).argmax(axis=-1)]

    def predictions(self, features: Any) -> Any:
        """The heads' probabilities on ``features`` as :class:`~ontheline.Predictions`, named and with the classes,
        ready for :func:`ontheline.evaluate`.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> zoo = train_probes(rng.normal(size=(50, 4)), np.arange(50) % 2, n_models=2, steps=(1, 2))
        >>> preds = zoo.predictions(rng.normal(size=(7, 4)))
        >>> preds.models, preds.classes, preds.probs.shape
        (('random-head-0-1steps', 'random-head-1-2steps'), (0, 1), (2, 7, 2))
        """
        from ontheline.predictions import as_predictions

        return as_predictions(self.predict_proba(features), models=self.models, classes=self.classes, kind="probs")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON values: what ``ontheline probe`` puts under ``settings.probe``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> zoo = train_probes(rng.normal(size=(50, 4)), np.arange(50) % 2, n_models=2, steps=(1, 2), seed=3)
        >>> recipe = zoo.to_dict()
        >>> recipe["diversity"], recipe["n_models"], recipe["steps"], recipe["seed"], recipe["n_train"]
        ('random-head', 2, [1, 2], 3, 50)
        """
        return dict(self.recipe)


def _check_features(features: Any, name: str, *, n_features: int | None = None) -> np.ndarray:
    x = np.asarray(features)
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (n_samples, n_features); got shape {x.shape}.")
    if x.dtype.kind not in "iuf":
        raise InputError(f"{name} must hold real numbers; got dtype {x.dtype}.")
    if n_features is not None and x.shape[1] != n_features:
        raise InputError(f"{name} has {x.shape[1]} features per sample; the probes were trained on {n_features}.")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise InputError(f"{name} holds NaN or infinite values; every feature must be finite.")
    return x


def _check_labels(labels: Any, n_samples: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n_samples:
        raise InputError(
            f"labels must have one label per row of features: expected shape ({n_samples},), got {y.shape}."
        )
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise InputError("labels must hold class labels; they have non-integer or non-finite values.")
        y = y.astype(np.int64)
    if y.dtype.kind not in "biuUS":
        raise InputError(f"labels must be integers or strings; got dtype {y.dtype}.")
    return y


def train_probes(
    features: Any,
    labels: Any,
    *,
    n_models: int = 64,
    diversity: Diversity = "random-head",
    subset_fraction: float = 0.1,
    steps: Sequence[int] | np.ndarray = (10, 300),
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    optimizer: Literal["adam", "sgd"] = "adam",
    init_scale: float = 1.0,
    seed: int = 0,
) -> ProbeZoo:
    """Train a zoo of linear probes (softmax regression heads) on one backbone's features.

    Each head is stopped after its own number of steps, log-spaced over ``steps``, which
    spreads the heads' ID accuracies. Beside that, exactly one thing differs between heads:

    - ``random-head``: the initial weights (one draw per head); every head sees the same
      minibatches in the same order.
    - ``order``: the minibatch order (each head its own shuffling of all samples); the initial
      weights are one shared draw.
    - ``subset``: the training samples (each head its own random ``subset_fraction``); the
      initial weights are one shared draw and the positions within the subsets are shuffled
      the same way for every head.

    All heads train at once as one batched model with one optimiser; a head's weights are
    copied out when its step count is reached while the others train on. Every random draw
    comes from ``seed`` (numpy, one stream per purpose and head): the same inputs give the same
    weights bit for bit, whatever the number of torch threads. Needs the ``torch`` extra.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The backbone's embeddings of the labelled training set.
    labels : array-like of shape (n_samples,)
        Integer or string class labels; the heads predict the distinct values, sorted.
    n_models : int
        The number of heads.
    diversity : {'random-head', 'order', 'subset'}
        What differs between heads beside their step count (see above).
    subset_fraction : float
        Under ``subset``, the share of the training set each head sees, in (0, 1] (1 gives every
        head the whole set: heads that differ only in their step count, a control).
    steps : (int, int) or sequence of int
        ``(min, max)``: step counts log-spaced from min to max over the heads (head 0 the
        fewest); or one count per head (``n_models`` of them; with 2 heads both readings agree).
    lr : float
        The learning rate.
    weight_decay : float
        L2 penalty on the weights (not the biases).
    batch_size : int
        Samples per step (the pool size when that is smaller); each epoch leaves out the remainder.
    optimizer : {'adam', 'sgd'}
        Adam, or SGD with momentum 0.9.
    init_scale : float
        The standard deviation of the initial logits on the training features: the weights are
        drawn from a normal distribution of standard deviation ``init_scale / rms(||x||)``, so
        the initialisation has the same effect whatever the scale of the features.
    seed : int
        Seeds the initial weights, the orders and the subsets.

    Returns
    -------
    ProbeZoo
        The heads, ``predict_proba`` on any features, and the recipe.

    References
    ----------
    .. [1] R. Saxena, T. Kim, A. Mehra, C. Baek, Z. Kolter, A. Raghunathan, "Predicting the
       Performance of Foundation Models via Agreement-on-the-Line", NeurIPS 2024,
       arXiv:2404.01542.

    Examples
    --------
    Two Gaussian classes; 8 random-head probes stopped between 2 and 60 steps:

    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, 600)
    >>> features = rng.normal(size=(600, 16)) + 0.5 * labels[:, None]
    >>> zoo = train_probes(features, labels, n_models=8, steps=(2, 60), lr=0.01)
    >>> zoo.steps.tolist()
    [2, 3, 5, 9, 14, 23, 37, 60]
    >>> accuracy = (zoo.predict(features) == labels).mean(axis=1)  # the best possible is 0.84
    >>> bool(accuracy[-1] > 0.8), bool(accuracy.max() - accuracy.min() > 0.1)
    (True, True)
    """
    owner = "train_probes"
    _check_recipe(owner, n_models, diversity, subset_fraction, batch_size, seed)
    check_number(owner, "lr", lr, low=0.0)
    check_number(owner, "weight_decay", weight_decay, low=0.0)
    check_number(owner, "init_scale", init_scale, low=0.0)
    check_choice(owner, "optimizer", optimizer, _OPTIMIZERS)
    if lr == 0:
        raise InputError(f"The 'lr' parameter of {owner} must be positive. Got {lr!r} instead.")
    x = _check_features(features, "features")
    y = _check_labels(labels, len(x))
    classes, encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise InputError(f"labels must hold at least 2 classes to train a classifier; got {classes.tolist()}.")
    head_steps, given_steps = _head_steps(steps, n_models)
    if diversity == "subset":
        _subset_size(len(x), subset_fraction)

    rms = float(np.sqrt(np.mean(np.sum(x**2, axis=1))))
    weights0 = _initial_weights(x.shape[1], len(classes), n_models, diversity, init_scale / (rms or 1.0), seed)
    batches = _batches(
        len(x), n_models=n_models, diversity=diversity, subset_fraction=subset_fraction,
        batch_size=batch_size, seed=seed,
    )  # fmt: skip
    shared = diversity == "random-head"
    weights, bias = _train(x, encoded, weights0, head_steps, batches, shared, optimizer, lr, weight_decay)
    recipe = {
        "diversity": diversity,
        "n_models": int(n_models),
        "subset_fraction": float(subset_fraction) if diversity == "subset" else None,
        "steps": given_steps,
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "batch_size": int(batch_size),
        "optimizer": optimizer,
        "init_scale": float(init_scale),
        "seed": int(seed),
        "n_train": len(x),
        "n_features": int(x.shape[1]),
        "classes": classes.tolist(),
    }
    return ProbeZoo(
        weights, bias, head_steps, tuple(classes.tolist()), diversity, weights0,
        _pools(len(x), n_models, diversity, subset_fraction, seed), recipe,
    )  # fmt: skip


def _train(
    x: np.ndarray,
    y: np.ndarray,
    weights0: np.ndarray,
    head_steps: np.ndarray,
    batches: Iterator[np.ndarray],
    shared_batches: bool,
    optimizer: str,
    lr: float,
    weight_decay: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Train every head together until the largest step count; copy each out when its own count is reached.

    The gradients of softmax regression are written out (``(p - onehot) / batch`` against the
    inputs) and handed to one torch optimiser over all heads. A head that has been copied out
    gets no more gradient and its rows are no longer computed: the cost of a step falls as the
    heads finish. Both products are batched GEMMs over the heads (``bmm``), which split the
    work by head: the bits do not depend on the number of torch threads (checked with 1, 2 and
    4 threads over several shapes; the tests check 1 and 2). One large GEMM of a shared batch
    against all heads at once was faster, but its sums changed with the thread count.
    """
    with extra("torch"):
        import torch

    n_models, n_features, n_classes = weights0.shape
    inputs = torch.from_numpy(x.astype(np.float32))
    targets = torch.from_numpy(y.astype(np.int64))
    # (m, K, d): the layout in which both products below are fast batched GEMMs.
    w = torch.tensor(weights0.transpose(0, 2, 1), requires_grad=True)
    b = torch.zeros((n_models, n_classes), dtype=torch.float32, requires_grad=True)
    groups = [{"params": [w], "weight_decay": weight_decay}, {"params": [b], "weight_decay": 0.0}]
    opt = (
        torch.optim.Adam(groups, lr=lr, foreach=False)
        if optimizer == "adam"
        else torch.optim.SGD(groups, lr=lr, momentum=0.9, foreach=False)
    )
    out_w, out_b = np.empty_like(weights0), np.empty((n_models, n_classes), np.float32)
    order = np.argsort(head_steps, kind="stable")
    finished = 0  # heads order[:finished] are copied out
    for step in range(1, int(head_steps.max()) + 1):
        index = next(batches)
        active = torch.from_numpy(order[finished:])
        with torch.no_grad():
            wa, ba = w[active], b[active]
            if shared_batches:  # every head the same batch: one (batch, d) block, not copied per head
                sample = torch.from_numpy(index[0])
                xb = inputs[sample].expand(len(active), -1, -1)
                yb = targets[sample].expand(len(active), -1)
            else:
                rows = torch.from_numpy(index[order[finished:]])
                xb, yb = inputs[rows], targets[rows]  # (m_active, batch, d), (m_active, batch)
            logits = torch.bmm(xb, wa.transpose(1, 2)) + ba[:, None, :]
            # d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch, each head its own mean.
            grad = torch.softmax(logits, dim=-1)
            grad.scatter_add_(-1, yb[..., None], torch.full(yb.shape + (1,), -1.0))
            grad /= logits.shape[1]
            w.grad = torch.zeros_like(w)
            b.grad = torch.zeros_like(b)
            w.grad[active] = torch.bmm(grad.transpose(1, 2), xb)
            b.grad[active] = grad.sum(dim=1)
        opt.step()
        while finished < n_models and head_steps[order[finished]] == step:
            head = order[finished]
            out_w[head] = w[head].detach().numpy().T
            out_b[head] = b[head].detach().numpy()
            finished += 1
    return out_w, out_b


__all__ = ["DIVERSITY_SOURCES", "ProbeZoo", "probe_schedule", "train_probes"]
