"""Stage 1 of the benchmark: every zoo model's probabilities on every evaluation set, computed once.

Each dataset's zoo is trained and predicts on ID validation, ID test and every shift, in
worker processes, and the result is kept in an on-disk cache keyed by a fingerprint of
everything it depends on.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ontheline._io import atomic_write
from ontheline.bench.config import CONFIGS, SPLIT_FRACTIONS, SPLIT_SEED, BenchConfig
from ontheline.bench.data import DatasetSplits, Split, make_splits, natural_shift
from ontheline.bench.zoo import NetRecipe, SklearnRecipe, recipes, train_net, train_sklearn
from ontheline.shifts import corrupt

#: Bump when the cached arrays change meaning; old cache files are then ignored.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class ZooPredictions:
    """A dataset's zoo and its probabilities on every evaluation set.

    ``probs[set]`` has shape ``(n_models, n_samples, n_classes)``; sets are ``'id_val'``,
    ``'id_test'`` and each shift's name. ``labels[set]`` are the true labels, ``(n_samples,)``.
    """

    dataset: str
    models: tuple[str, ...]
    neural: np.ndarray
    probs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


Progress = Callable[[str, int, int], None]


def default_cache_dir() -> Path:
    """``$ONTHELINE_STORE`` when set, else ``~/.cache/ontheline``."""
    return Path(os.environ.get("ONTHELINE_STORE") or Path.home() / ".cache" / "ontheline")


def fingerprint(config: BenchConfig, dataset: str) -> str:
    """A digest of everything the predictions depend on.

    The zoo recipes, splits and shifts; the source of the modules that load data, corrupt it,
    train and predict; and the versions of the libraries that compute the numbers. Any change
    gives a new cache file instead of stale predictions.
    """
    from importlib.metadata import version

    from ontheline import __version__, shifts
    from ontheline.bench import data, zoo

    nets, controls = recipes(config.zoo)
    parts = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "code": [
            hashlib.sha256(Path(f).read_bytes()).hexdigest()
            for f in (__file__, data.__file__, zoo.__file__, shifts.__file__)
        ],
        "libraries": [version(name) for name in ("numpy", "torch", "scikit-learn")],
        "dataset": dataset,
        "split": [SPLIT_SEED, SPLIT_FRACTIONS],
        "recipes": [repr(r) for r in [*nets, *controls]],
        "shifts": [s.name for s in config.shifts(dataset)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def zoo_predictions(
    config: BenchConfig, dataset: str, *, cache_dir: Path | None = None, jobs: int = 1, progress: Progress | None = None
) -> tuple[ZooPredictions, bool]:
    """The zoo's predictions on every set, from the cache when present; returns ``(predictions, from_cache)``.

    ``cache_dir=None`` uses :func:`default_cache_dir`. The cache file is written atomically, so an
    interrupted run leaves either a complete file or none.
    """
    path = (cache_dir or default_cache_dir()) / "bench" / f"{dataset}-{config.name}-{fingerprint(config, dataset)}.npz"
    if path.is_file():
        try:
            return _read(path, dataset), True
        except (OSError, ValueError, KeyError) as exc:  # a damaged file is recomputed, never trusted
            warnings.warn(f"Ignoring the unreadable benchmark cache {path} ({exc}); recomputing.", stacklevel=2)
    arrays = _compute(config, dataset, jobs, progress)
    _write_atomic(path, arrays)
    return _from_arrays(arrays, dataset), False


def _compute(config: BenchConfig, dataset: str, jobs: int, progress: Progress | None) -> dict[str, np.ndarray]:
    nets, controls = recipes(config.zoo)
    tasks: list[NetRecipe | SklearnRecipe] = [*nets, *controls]
    total = sum(len(r.checkpoints) for r in nets) + len(controls)
    outputs: dict[int, list[tuple[str, bool, dict[str, np.ndarray]]]] = {}
    done = 0
    if progress:
        progress(f"{dataset}: training and predicting", 0, total)
    for index, trained in _run_tasks(config.name, dataset, tasks, jobs):
        outputs[index] = trained
        done += len(trained)
        if progress:
            progress(f"{dataset}: {trained[-1][0]}", done, total)
    ordered = [model for i in range(len(tasks)) for model in outputs[i]]
    sets = _evaluation_sets(config.name, dataset)
    arrays: dict[str, np.ndarray] = {
        "models": np.array([name for name, _, _ in ordered], dtype=str),
        "neural": np.array([neural for _, neural, _ in ordered], dtype=bool),
    }
    for set_name, split in sets.items():
        arrays[f"labels/{set_name}"] = split.labels
        arrays[f"probs/{set_name}"] = np.stack([probs[set_name] for _, _, probs in ordered])
    return arrays


def _run_tasks(
    config_name: str, dataset: str, tasks: list[NetRecipe | SklearnRecipe], jobs: int
) -> Iterable[tuple[int, list[tuple[str, bool, dict[str, np.ndarray]]]]]:
    if jobs <= 1:
        for index, task in enumerate(tasks):
            yield index, _train_and_predict(config_name, dataset, task)
        return
    # Worker processes with one thread each: tiny models train fastest that way, and results do
    # not depend on how many workers ran.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_train_and_predict, config_name, dataset, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _train_and_predict(
    config_name: str, dataset: str, task: NetRecipe | SklearnRecipe
) -> list[tuple[str, bool, dict[str, np.ndarray]]]:
    import torch

    torch.set_num_threads(1)
    sets = _evaluation_sets(config_name, dataset)
    train = _splits(dataset).train
    models = list(train_net(task, train)) if isinstance(task, NetRecipe) else [train_sklearn(task, train)]
    return [(m.name, m.neural, {k: _quantise(m.predict_proba(s.images)) for k, s in sets.items()}) for m in models]


def _quantise(probs: np.ndarray) -> np.ndarray:
    # float16 halves the cache; fresh and cached runs both score these same rounded values.
    return probs.astype(np.float16)


@cache
def _splits(dataset: str) -> DatasetSplits:
    return make_splits(dataset, SPLIT_SEED, SPLIT_FRACTIONS)


@cache
def _evaluation_sets(config_name: str, dataset: str) -> dict[str, Split]:
    splits = _splits(dataset)
    sets = {"id_val": splits.id_val, "id_test": splits.id_test}
    for spec in CONFIGS[config_name].shifts(dataset):
        if spec.kind == "natural":
            sets[spec.name] = natural_shift(dataset)
        else:
            images = corrupt(splits.id_test.images, spec.kind, spec.severity, seed=SPLIT_SEED)
            sets[spec.name] = Split(images, splits.id_test.labels)
    return sets


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path) as file:
        np.savez(file, **arrays)


def _read(path: Path, dataset: str) -> ZooPredictions:
    with np.load(path, allow_pickle=False) as npz:
        return _from_arrays({key: npz[key] for key in npz.files}, dataset)


def _from_arrays(arrays: dict[str, np.ndarray], dataset: str) -> ZooPredictions:
    probs, labels = {}, {}
    for key, value in arrays.items():
        kind, _, set_name = key.partition("/")
        if kind == "probs":
            p = value.astype(np.float32)
            probs[set_name] = p / p.sum(axis=-1, keepdims=True)  # undo float16 rounding of the row sums
        elif kind == "labels":
            labels[set_name] = value
    return ZooPredictions(dataset, tuple(arrays["models"].tolist()), arrays["neural"], probs, labels)
