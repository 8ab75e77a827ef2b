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
from ontheline.store import PROB_DTYPES, Store, fingerprint_array


@dataclass(frozen=True)
class Dataset:
    """Inputs to predict on, ``(n_samples, ...)``; ``preprocessing`` names what was done to them.

    The store key includes the fingerprint of ``inputs`` and the ``preprocessing`` text, so
    the same images resized differently are different entries.
    """

    name: str
    inputs: np.ndarray = field(repr=False)
    preprocessing: str = ""

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint_array(np.asarray(self.inputs))


@dataclass(frozen=True)
class RunReport:
    """What a run did: ``keys[model][dataset]``, and which entries it computed or found cached."""

    store: Store
    models: tuple[str, ...]
    keys: dict[str, dict[str, str]]
    computed: tuple[tuple[str, str], ...]
    cached: tuple[tuple[str, str], ...]

    def predictions(self, dataset: str) -> Predictions:
        """Every model's stored probabilities on ``dataset``, in model order, as :class:`Predictions`."""
        probs = np.stack([self.store.get(self.keys[m][dataset]).probs.astype(np.float64) for m in self.models])
        return as_predictions(probs / probs.sum(axis=-1, keepdims=True), models=self.models, kind="probs")


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
