"""The local runner: every model on every dataset, into the store, computing only what is missing.

Each (model, dataset) entry is written as soon as it is computed, atomically, so a run killed
at any point loses at most the entry in flight; running it again recomputes only that and
what followed, and gives the same numbers as a run that was never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ontheline._progress import ConsoleProgress, Progress
from ontheline._validation import check_choice
from ontheline.predictions import Predictions, as_predictions
from ontheline.runners.adapters import Model
from ontheline.runners.plan import plan
from ontheline.store import PROB_DTYPES, Entry, Store, StoreError, fingerprint_array


@dataclass(frozen=True)
class Dataset:
    """Inputs to predict on, ``(n_samples, ...)``; ``preprocessing`` names what was done to them.

    The store key includes the fingerprint of ``inputs`` and the ``preprocessing`` text, so
    the same images resized differently are different entries.

    Examples
    --------
    >>> a = Dataset("val", np.zeros((3, 8, 8)))
    >>> b = Dataset("val-copy", np.zeros((3, 8, 8)), preprocessing="divided by 16")
    >>> a.fingerprint == b.fingerprint  # the same inputs; the preprocessing text still tells them apart
    True
    """

    name: str
    inputs: np.ndarray = field(repr=False)
    preprocessing: str = ""

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint_array(np.asarray(self.inputs))


@dataclass(frozen=True)
class RunReport:
    """What a run did: ``keys[model][dataset]``, and which entries it computed or found cached.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> from ontheline.runners import SklearnModel
    >>> model = SklearnModel(DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 1, 1]), "dummy")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     report = run([model], [Dataset("val", np.zeros((5, 1)))], Store(folder), progress=False)
    ...     predictions = report.predictions("val")
    >>> report.computed, report.cached, list(report.keys["dummy"])
    ((('dummy', 'val'),), (), ['val'])
    >>> predictions.models, predictions.probs.shape
    (('dummy',), (1, 5, 2))
    """

    store: Store
    models: tuple[str, ...]
    keys: dict[str, dict[str, str]]
    computed: tuple[tuple[str, str], ...]
    cached: tuple[tuple[str, str], ...]

    def predictions(self, dataset: str) -> Predictions:
        """Every model's stored probabilities on ``dataset``, in model order, as :class:`Predictions`."""
        probs = np.stack([_probs(self.store.get(self.keys[m][dataset])) for m in self.models])
        return as_predictions(probs, models=self.models, kind="probs")  # rows renormalised (and checked) there


def run(
    models: Sequence[Model],
    datasets: Sequence[Dataset],
    store: Store | None = None,
    *,
    dtype: str = "float32",
    progress: Progress | bool = True,
) -> RunReport:
    """Predict with every model on every dataset, skipping entries already in ``store``.

    Parameters
    ----------
    models : sequence of adapters
        :class:`TorchModel`, :class:`SklearnModel`, :class:`OnnxModel` or anything with
        ``name``, ``device``, ``fingerprint()`` and ``predict_proba(inputs)``; names must be unique.
    datasets : sequence of Dataset
    store : Store, optional
        Default: the store at ``$ONTHELINE_STORE`` or ``~/.cache/ontheline``.
    dtype : {'float32', 'float16'}
        How probabilities are stored.
    progress : bool or callable
        True (default) shows a bar with ETA on stderr; False shows nothing; a callable is
        called as ``progress(message, done, total)`` after each entry.

    Returns
    -------
    RunReport

    Examples
    --------
    A second run finds every entry in the store and computes nothing:

    >>> import tempfile
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ontheline.runners import SklearnModel
    >>> x, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    >>> models = [SklearnModel(LogisticRegression(C=c).fit(x, y), f"logreg-C{c}") for c in (0.1, 1.0)]
    >>> data = [Dataset("val", x[:10]), Dataset("shifted", x[10:] * 0.5)]
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     first = run(models, data, Store(folder), progress=False)
    ...     again = run(models, data, Store(folder), progress=False)
    >>> len(first.computed), len(again.computed), len(again.cached), again.keys == first.keys
    (4, 0, 4, True)
    """
    check_choice("run", "dtype", dtype, PROB_DTYPES)
    store = store if store is not None else Store()
    names = _check_unique(models)
    if progress is True:
        progress = ConsoleProgress()
    weights = {m.name: m.fingerprint() for m in models}
    todo = plan(weights, {d.name: (d.fingerprint, d.preprocessing) for d in datasets}, store)
    by_name, data = {m.name: m for m in models}, {d.name: d for d in datasets}
    for done, (name, dataset) in enumerate(todo.missing, start=1):
        model, inputs = by_name[name], data[dataset]
        start = time.perf_counter()
        probs = model.predict_proba(inputs.inputs)
        store.put(
            probs, model=name, model_fingerprint=weights[name], dataset=dataset,
            dataset_fingerprint=inputs.fingerprint, preprocessing=inputs.preprocessing, dtype=dtype,
            seconds=time.perf_counter() - start, device=str(model.device),
        )  # fmt: skip
        if callable(progress):
            progress(f"{name} on {dataset}", done, len(todo.missing))
    return RunReport(store, names, todo.keys, todo.missing, todo.cached)


def _check_unique(models: Sequence[Model]) -> tuple[str, ...]:
    names = tuple(m.name for m in models)
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"run needs unique model names; {duplicated} appear more than once. Rename them.")
    return names


def _probs(entry: Entry) -> np.ndarray:
    if entry.probs is None:  # the runner stores probabilities; a labels-only entry was written by another tool
        raise StoreError(f"Store entry {entry.info.key} holds hard labels only; the runner needs probabilities.")
    return entry.probs
