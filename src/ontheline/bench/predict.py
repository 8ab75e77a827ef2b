"""Stage 1 of the benchmark: every zoo model's probabilities on every evaluation set, computed once.

The evaluation sets of a dataset (ID validation, ID test, every shift) are concatenated into
one benchmark bundle, and each zoo model's predictions on it are one entry of the prediction
store (:mod:`ontheline.store`); each network checkpoint's weights are kept beside them
(``weights/`` in the store), so adapting the zoo later (``--adapt``) trains nothing. A model's
key is a fingerprint of its recipe and checkpoint, the splits, the source of the modules that
load, corrupt, train and predict, and the library versions, so it is known before training: a
second run reads every entry and trains nothing, and a run killed part-way trains only the
models still missing.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ontheline._io import atomic_write
from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline._threads import torch_threads
from ontheline._validation import InputError
from ontheline.adapt import AdaptConfig, Adapted, source_fingerprint
from ontheline.bench.config import CONFIGS, SPLIT_FRACTIONS, SPLIT_SEED, BenchConfig
from ontheline.bench.data import DatasetSplits, Split, make_splits, natural_labels, natural_shift
from ontheline.runners.plan import plan
from ontheline.shifts import corrupt
from ontheline.store import Store, StoreError
from ontheline.zoo import (
    NetRecipe,
    SklearnRecipe,
    TrainedModel,
    net_from_state,
    recipes,
    train_net,
    train_sklearn,
)

Recipe = NetRecipe | SklearnRecipe
_BUNDLE = "ontheline benchmark bundle: evaluation sets concatenated in config order"


@dataclass(frozen=True)
class ZooPredictions:
    """A dataset's zoo and its probabilities on every evaluation set.

    ``probs[set]`` has shape ``(n_models, n_samples, n_classes)``; sets are ``'id_val'``
    (``'id_test'`` for the image zoos) and each shift's name. ``labels[set]`` are the true
    labels, ``(n_samples,)``. ``parts`` names the parts of the zoo scored apart beside the
    whole, each a boolean mask over the models; by default the networks (``'neural'``) and the
    other models (``'non-neural'``), as ``neural`` marks them.
    """

    dataset: str
    models: tuple[str, ...]
    neural: np.ndarray
    probs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    parts: dict[str, np.ndarray] | None = None

    def zoo_parts(self) -> dict[str, np.ndarray]:
        """``'all'`` and each part of the zoo, as boolean masks over the models."""
        parts = self.parts if self.parts is not None else {"neural": self.neural, "non-neural": ~self.neural}
        return {"all": np.ones(len(self.models), bool)} | {name: np.asarray(mask, bool) for name, mask in parts.items()}


@dataclass(frozen=True)
class _Member:
    """One model of the zoo, known before training: its recipe, checkpoint, name and store key."""

    recipe: Recipe
    name: str
    neural: bool
    fingerprint: str


def zoo_members(config: BenchConfig, dataset: str, adapt: AdaptConfig | None = None) -> list[_Member]:
    """Every model of the configuration's zoo on ``dataset``, in a fixed order, with its fingerprint.

    With ``adapt``, the zoo is its networks adapted at test time (the scikit-learn controls
    cannot be), and the adaptation is part of each fingerprint.
    """
    nets, controls = recipes(config.zoo)
    members = [_member(dataset, r, r.name(epoch), True, adapt) for r in nets for epoch in r.checkpoints]
    return members if adapt else members + [_member(dataset, r, r.name, False, None) for r in controls]


def _member(dataset: str, recipe: Recipe, name: str, neural: bool, adapt: AdaptConfig | None) -> _Member:
    parts = [_code_fingerprint(), dataset, SPLIT_SEED, SPLIT_FRACTIONS, repr(recipe), name]
    if adapt is not None:
        parts += [repr(adapt), source_fingerprint()]
    return _Member(recipe, name, neural, hashlib.sha256(json.dumps(parts).encode()).hexdigest())


@cache
def _code_fingerprint() -> str:
    """The source of the modules that make the numbers, and the versions of the libraries they call."""
    from importlib.metadata import version

    from ontheline import shifts
    from ontheline.bench import data
    from ontheline.zoo import images

    files = (__file__, data.__file__, images.__file__, shifts.__file__)
    parts = [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files]
    parts += [version(name) for name in ("numpy", "torch", "scikit-learn", "mlxtend")]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def zoo_predictions(
    config: BenchConfig,
    dataset: str,
    *,
    store: Store | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    adapt: AdaptConfig | None = None,
) -> tuple[ZooPredictions, bool]:
    """The zoo's predictions on every evaluation set; returns ``(predictions, from_store)``.

    Models whose entries are missing (or damaged: those are removed, with a warning) are
    trained and predicted, in ``jobs`` worker processes, and written to ``store`` one entry
    at a time; ``from_store`` is True when no model had to be trained. With ``adapt``, each
    network adapts at test time on every evaluation set separately (reset between sets). The
    text configuration's zoo is linear probes on sentence embeddings
    (:func:`ontheline.bench.text_zoo.text_zoo_predictions`), kept in the store the same way.
    """
    if config.zoo == "text":
        if adapt is not None:
            raise InputError(
                "--adapt adapts the image zoos' networks at test time; the text zoo is linear probes on frozen "
                "embeddings. Drop --adapt, or pass --config quick or full."
            )
        from ontheline.bench.text_zoo import text_zoo_predictions

        return text_zoo_predictions(store, progress=progress, n_eval=config.n_eval)
    store = store if store is not None else Store()
    set_labels = _evaluation_labels(config.name, dataset)
    bundle = _bundle_fingerprint(config.name, dataset)
    members = zoo_members(config, dataset, adapt)
    label = f"bench-{config.name}-{dataset}" + (f"-{adapt.label}" if adapt else "")
    todo = plan({m.name: m.fingerprint for m in members}, {label: (bundle, _BUNDLE)}, store)
    stored = _read(store, {name: todo.keys[name][label] for name, _ in todo.cached})
    missing = [m for m in members if m.name not in stored]
    if missing:
        _compute(config, dataset, missing, store, (label, bundle), jobs, progress, adapt)
        stored |= _read(store, {m.name: todo.keys[m.name][label] for m in missing})
    bundles = np.stack([stored[m.name] for m in members])
    probs, start = {}, 0
    for name, labels in set_labels.items():
        part = bundles[:, start : start + len(labels)].astype(np.float32)
        probs[name] = part / part.sum(axis=-1, keepdims=True)  # undo float16 rounding of the row sums
        start += len(labels)
    neural = np.array([m.neural for m in members])
    return ZooPredictions(dataset, tuple(m.name for m in members), neural, probs, dict(set_labels)), not missing


def _read(store: Store, keys: dict[str, str]) -> dict[str, np.ndarray]:
    """The stored probabilities of each entry; a damaged entry is removed, with a warning, to be computed again."""
    found = {}
    for name, key in keys.items():
        try:
            probs = store.get(key).probs
            if probs is None:
                raise StoreError(f"Store entry {key} holds hard labels only; the benchmark stores probabilities.")
            found[name] = probs
        except StoreError as exc:
            warnings.warn(f"Recomputing a damaged benchmark entry: {exc}", stacklevel=3)
            store.rm(key)
    return found


def _compute(
    config: BenchConfig,
    dataset: str,
    missing: list[_Member],
    store: Store,
    data: tuple[str, str],
    jobs: int,
    progress: Progress | None,
    adapt: AdaptConfig | None,
) -> None:
    wanted = {m.name: m for m in missing}
    tasks = list(dict.fromkeys(m.recipe for m in missing))  # a net recipe trains once for all its checkpoints
    done, total = 0, len(missing)
    weights = store.path / "weights"
    if progress:
        nets = [m for m in missing if isinstance(m.recipe, NetRecipe)]
        saved = all(_weights_path(weights, dataset, m.recipe, m.name).is_file() for m in nets)  # type: ignore[arg-type]
        verb = f"adapting ({adapt.label})" if adapt else "predicting"
        progress(f"{dataset}: {verb if saved and adapt else f'training and {verb}'} {total} models", 0, total)
    label, bundle = data
    for trained in _run_tasks(config.name, dataset, tasks, jobs, adapt, weights):
        for name, probs, seconds in trained:
            if name not in wanted:
                continue
            member = wanted[name]
            store.put(
                probs, model=name, model_fingerprint=member.fingerprint, dataset=label,
                dataset_fingerprint=bundle, preprocessing=_BUNDLE, dtype="float16", seconds=seconds, device="cpu",
            )  # fmt: skip
            done += 1
            if progress:
                progress(f"{dataset}: {name}", done, total)


def _run_tasks(
    config_name: str, dataset: str, tasks: list[Recipe], jobs: int, adapt: AdaptConfig | None, weights: Path
) -> Iterable[list[tuple[str, np.ndarray, float]]]:
    if jobs <= 1:
        for task in tasks:
            yield _train_and_predict(config_name, dataset, task, adapt, weights)
        return
    # Worker processes with one thread each: tiny models train fastest that way, and results do
    # not depend on how many workers ran.
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_train_and_predict, config_name, dataset, task, adapt, weights) for task in tasks]
        for future in as_completed(futures):
            yield future.result()


def _train_and_predict(
    config_name: str, dataset: str, task: Recipe, adapt: AdaptConfig | None = None, weights: Path | None = None
) -> list[tuple[str, np.ndarray, float]]:
    """Train one recipe (a network's checkpoints are read from ``weights`` when saved there
    before, and saved there otherwise); return each model's probabilities on the whole bundle."""
    import time

    with extra("torch"):
        import torch

    torch.set_num_threads(1)
    sets = [s.images for s in _evaluation_sets(config_name, dataset).values()]
    train = _splits(dataset).train
    nets = isinstance(task, NetRecipe)
    models = _networks(task, dataset, train, weights) if nets else [train_sklearn(task, train)]  # type: ignore[arg-type]
    out = []
    for model in models:
        start = time.perf_counter()
        if adapt is None:
            probs = model.predict_proba(np.concatenate(sets))
        else:
            adapted = Adapted(model.module, adapt)
            probs = np.concatenate([_adapted_probs(adapted, images) for images in sets])
        out.append((model.name, probs, time.perf_counter() - start))
    return out


def _networks(recipe: NetRecipe, dataset: str, train: Split, folder: Path | None) -> list[TrainedModel]:
    """The recipe's checkpoints: loaded when every one is saved in ``folder``, else trained (and saved)."""
    with extra("torch"):
        import torch

    if folder is None:
        return list(train_net(recipe, train))
    paths = {recipe.name(e): _weights_path(folder, dataset, recipe, recipe.name(e)) for e in recipe.checkpoints}
    if all(p.is_file() for p in paths.values()):
        try:
            side = train.images.shape[1]
            return [
                net_from_state(recipe, epoch, side, torch.load(paths[recipe.name(epoch)], weights_only=True))
                for epoch in recipe.checkpoints
            ]
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:  # damaged: train again
            warnings.warn(
                f"Retraining {recipe.name(max(recipe.checkpoints))}: saved weights damaged ({exc}).", stacklevel=2
            )
    # One thread, as in the benchmark's workers: the saved checkpoints must not depend on who trained them.
    with torch_threads(1):
        models = list(train_net(recipe, train))
    for model in models:
        with atomic_write(paths[model.name]) as handle:
            torch.save(model.module.state_dict(), handle)
    return models


def _weights_path(folder: Path, dataset: str, recipe: NetRecipe, name: str) -> Path:
    """Where a network checkpoint's state dict is kept: named by its unadapted fingerprint."""
    return folder / f"{_member(dataset, recipe, name, True, None).fingerprint}.pt"


def _adapted_probs(adapted: Adapted, images: np.ndarray) -> np.ndarray:
    """Adapt from the original weights on one evaluation set, in a fixed batch order."""
    adapted.reset()
    return adapted.predict_proba(images[:, None])


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


@cache
def _evaluation_labels(config_name: str, dataset: str) -> dict[str, np.ndarray]:
    """The true labels of every evaluation set, without making the images (corruptions keep labels)."""
    splits = _splits(dataset)
    labels = {"id_val": splits.id_val.labels, "id_test": splits.id_test.labels}
    for spec in CONFIGS[config_name].shifts(dataset):
        labels[spec.name] = natural_labels(dataset) if spec.kind == "natural" else splits.id_test.labels
    return labels


@cache
def _bundle_fingerprint(config_name: str, dataset: str) -> str:
    # The bundle is a deterministic function of the code, the packaged data and the shift list,
    # so their fingerprint stands for it without making a single image.
    parts = [_code_fingerprint(), dataset, list(_evaluation_labels(config_name, dataset))]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
