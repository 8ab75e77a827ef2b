"""Inference on a dask.distributed cluster: the same entries as the local runner, computed by workers.

Each missing (model, dataset) entry is split into shards of samples; a task per (model, shard)
runs on the cluster, and the client writes each entry to the store once all its shards are
back, so the store stays the single, atomic record and a killed run resumes like a local one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ontheline._progress import ConsoleProgress, Progress
from ontheline._validation import check_choice, check_number
from ontheline.runners.adapters import Model
from ontheline.runners.local import Dataset, RunReport, _check_unique
from ontheline.runners.plan import plan
from ontheline.store import PROB_DTYPES, Store


def run_distributed(
    models: Sequence[Model],
    datasets: Sequence[Dataset],
    store: Store,
    client: Any,
    *,
    shard_size: int = 10_000,
    dtype: str = "float32",
    progress: Progress | bool = True,
) -> RunReport:
    """Like :func:`ontheline.runners.run`, with inference mapped over (model, shard) on ``client``.

    Parameters
    ----------
    models, datasets, store, dtype, progress :
        As for :func:`ontheline.runners.run` (``store`` is required here).
    client : dask.distributed.Client
    shard_size : int
        Samples per task.

    Returns
    -------
    RunReport

    Examples
    --------
    >>> import tempfile
    >>> from dask.distributed import Client
    >>> from sklearn.linear_model import LogisticRegression
    >>> from ontheline.runners import SklearnModel
    >>> x, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    >>> model = SklearnModel(LogisticRegression().fit(x, y), "logreg")
    >>> with tempfile.TemporaryDirectory() as folder, Client(processes=False, dashboard_address=None) as client:
    ...     report = run_distributed([model], [Dataset("val", x)], Store(folder), client, shard_size=8, progress=False)
    ...     print(report.computed, report.predictions("val").probs.shape)  # 4 shards, one entry
    (('logreg', 'val'),) (1, 30, 3)
    """
    check_number("run_distributed", "shard_size", shard_size, low=1, integer=True)
    check_choice("run_distributed", "dtype", dtype, PROB_DTYPES)
    if progress is True:
        progress = ConsoleProgress()
    names = _check_unique(models)
    weights = {m.name: m.fingerprint() for m in models}
    todo = plan(weights, {d.name: (d.fingerprint, d.preprocessing) for d in datasets}, store)
    by_name, data = {m.name: m for m in models}, {d.name: d for d in datasets}
    missing = [(by_name[m], data[d]) for m, d in todo.missing]
    pending_data = {d.name: d for _, d in missing}
    shards = {
        name: [client.scatter(d.inputs[s : s + shard_size]) for s in range(0, len(d.inputs), shard_size)]
        for name, d in pending_data.items()
    }
    remote = {name: client.scatter(m) for name, m in {m.name: m for m, _ in missing}.items()}
    tasks = [
        (m, d, [client.submit(_predict, remote[m.name], shard, pure=False) for shard in shards[d.name]])
        for m, d in missing
    ]
    computed = []
    for done, (model, dataset, futures) in enumerate(tasks, start=1):
        start = time.perf_counter()
        parts = client.gather(futures)
        probs = np.concatenate([p for p, _ in parts])
        store.put(
            probs, model=model.name, model_fingerprint=weights[model.name], dataset=dataset.name,
            dataset_fingerprint=dataset.fingerprint, preprocessing=dataset.preprocessing, dtype=dtype,
            seconds=sum(s for _, s in parts) or time.perf_counter() - start, device=f"dask:{model.device}",
        )  # fmt: skip
        computed.append((model.name, dataset.name))
        if callable(progress):
            progress(f"{model.name} on {dataset.name}", done, len(tasks))
    return RunReport(store, names, todo.keys, tuple(computed), todo.cached)


def _predict(model: Model, inputs: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    return model.predict_proba(inputs), time.perf_counter() - start
