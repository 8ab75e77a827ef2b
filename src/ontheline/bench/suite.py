"""The benchmark: zoos trained on packaged digits, every estimator scored on natural and synthetic shifts.

A run has two stages. **Predictions**: for each dataset, the zoo of a configuration is trained
and its probabilities on ID validation, ID test and every shifted test set are computed once,
in parallel worker processes, then kept in an on-disk cache keyed by a fingerprint of
everything they depend on. **Scoring**: each estimator is fitted on ID validation and
estimates the accuracy on every shift; the true OOD labels are held aside and used only to
score the estimates. The zoo is scored whole, and its neural and non-neural halves apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from scipy.stats import norm

from ontheline._io import atomic_write
from ontheline._validation import AgreementNotLinearWarning, ModelFallbackWarning, check_choice
from ontheline.agreement import AgreementLine, fit_line, kept_pairs, probit
from ontheline.bench.data import DATASETS, Split, make_splits, natural_shift
from ontheline.bench.zoo import NetRecipe, SklearnRecipe, recipes, train_net, train_sklearn
from ontheline.estimators import METHODS, make_estimator
from ontheline.predictions import as_predictions
from ontheline.shifts import CORRUPTIONS, FAMILIES, corrupt

#: Bump when the cached arrays change meaning; old cache files are then ignored.
CACHE_FORMAT = 1
ZOOS = ("all", "neural", "non-neural")
ORACLE = "oracle"
KEEP = (0.05, 0.98)  # the estimators' default agreement filter
_FAMILY_OF = {kind: family for family, kinds in FAMILIES.items() for kind in kinds}


@dataclass(frozen=True)
class BenchConfig:
    """Which zoo, which datasets and which shifts a benchmark run covers."""

    name: str
    zoo: str
    datasets: tuple[str, ...]
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]

    def shifts(self, dataset: str) -> list[ShiftSpec]:
        """The natural shift first, then every corruption at every severity."""
        synthetic = [ShiftSpec(dataset, kind, s) for kind in self.corruptions for s in self.severities]
        return [ShiftSpec(dataset, "natural", 0), *synthetic]


@dataclass(frozen=True)
class ShiftSpec:
    """One OOD test set: ``kind`` is a corruption of :mod:`ontheline.shifts` or ``'natural'``."""

    dataset: str
    kind: str
    severity: int

    @property
    def name(self) -> str:
        return "natural" if self.kind == "natural" else f"{self.kind}-{self.severity}"

    @property
    def family(self) -> str:
        return _FAMILY_OF.get(self.kind, "natural")

    def describe(self) -> str:
        if self.kind == "natural":
            other = "mnist" if self.dataset == "digits" else "digits"
            return f"{other} images resampled to {self.dataset}'s size"
        return f"{self.kind.replace('_', ' ')} at severity {self.severity} on the ID test images"


CONFIGS: dict[str, BenchConfig] = {
    # Seconds: the miniature the tests run end to end.
    "tiny": BenchConfig("tiny", "tiny", ("digits",), ("gaussian_noise", "rotate", "contrast"), (1, 5)),
    # What `ontheline demo` runs: every corruption at three severities on both datasets.
    "quick": BenchConfig("quick", "quick", DATASETS, tuple(CORRUPTIONS), (1, 3, 5)),
    # The whole suite: `ontheline bench --config full`.
    "full": BenchConfig("full", "full", DATASETS, tuple(CORRUPTIONS), (1, 2, 3, 4, 5)),
}
#: Train / ID-validation / ID-test shares. Large evaluation sets make the measured agreements less
#: noisy (with 1,500 MNIST test images the agreement R² reaches 0.99 on mild shifts), and less
#: training data spreads the zoo's accuracies.
SPLIT_FRACTIONS = (0.4, 0.3, 0.3)
SPLIT_SEED = 0


# --- stage 1: predictions, computed once -----------------------------------------------------


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
    """A digest of everything the predictions depend on: code version, zoo recipes, splits, shifts."""
    from ontheline import __version__

    nets, controls = recipes(config.zoo)
    parts = {
        "format": CACHE_FORMAT,
        "version": __version__,
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
def _splits(dataset: str) -> Any:
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


# --- stage 2: scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftScore:
    """Every estimator's estimates for one zoo on one shift, next to the truth.

    ``estimates`` maps each method, and ``'oracle'`` (the accuracy line fitted *with* OOD
    labels, the floor for any method that maps ID to OOD accuracy along a line), to the
    estimated OOD accuracy of every model, ``(n_models,)``.
    """

    shift: ShiftSpec
    zoo: str
    models: tuple[str, ...]
    n_samples: int
    n_id: int
    id_accuracy: np.ndarray
    ood_accuracy: np.ndarray
    estimates: dict[str, np.ndarray]
    agreement: AgreementLine | None
    min_r2: float
    failures: dict[str, str]
    pairs: np.ndarray  # (n_kept_pairs, 2) model indices of the pairs inside the agreement filter
    pair_agreement: np.ndarray  # (n_kept_pairs, 2) their ID and OOD agreement

    @property
    def trusted(self) -> bool:
        """Whether the agreement line is linear enough (R² >= ``min_r2``) to trust the ALine estimates."""
        return self.agreement is not None and self.agreement.r2 >= self.min_r2

    @property
    def accuracy_line(self) -> tuple[float, float, float]:
        """``(slope, bias, r2)`` of the accuracy line, fitted with the OOD labels."""
        return fit_accuracy_line(self.id_accuracy, self.ood_accuracy, self.n_id, self.n_samples)

    def mae(self) -> dict[str, float]:
        """Mean absolute error of each method, in accuracy points (NaN where it failed)."""
        return {m: float(100 * np.abs(e - self.ood_accuracy).mean()) for m, e in self.estimates.items()}


    def mape(self) -> dict[str, float]:
        """Mean absolute error relative to the true accuracy, in percent."""
        truth = np.maximum(self.ood_accuracy, 1.0 / self.n_samples)
        return {m: float(100 * (np.abs(e - self.ood_accuracy) / truth).mean()) for m, e in self.estimates.items()}

    def to_dict(self, *, per_model: bool = False) -> dict[str, Any]:
        slope, bias, r2 = self.accuracy_line
        line = self.agreement
        entry: dict[str, Any] = {
            "name": self.shift.name,
            "dataset": self.shift.dataset,
            "family": self.shift.family,
            "kind": self.shift.kind,
            "severity": self.shift.severity,
            "zoo": self.zoo,
            "n_models": len(self.models),
            "n_samples": self.n_samples,
            "agreement_r2": None if line is None else line.r2,
            "agreement_slope": None if line is None else line.slope,
            "agreement_bias": None if line is None else line.bias,
            "accuracy_r2": r2,
            "accuracy_slope": slope,
            "accuracy_bias": bias,
            "trusted": self.trusted,
            "mean_id_accuracy": float(self.id_accuracy.mean()),
            "mean_ood_accuracy": float(self.ood_accuracy.mean()),
            "mae": _json_numbers(self.mae()),
            "mape": _json_numbers(self.mape()),
            "failures": self.failures,
        }
        if per_model:
            entry["models"] = [
                {
                    "name": name,
                    "id_accuracy": float(self.id_accuracy[i]),
                    "ood_accuracy": float(self.ood_accuracy[i]),
                    "estimates": _json_numbers({m: e[i] for m, e in self.estimates.items()}),
                }
                for i, name in enumerate(self.models)
            ]
        return entry


def score(
    preds: ZooPredictions, shifts: list[ShiftSpec], *, min_r2: float = 0.95, methods: Iterable[str] = METHODS
) -> list[ShiftScore]:
    """Fit every method once per zoo on ID validation, then score it on each shift.

    A method that cannot estimate a shift (say, ALine-D when the kept pairs form a bipartite
    graph) gets NaN estimates there, with its error message in ``ShiftScore.failures``.
    """
    scores = []
    id_labels = preds.labels["id_val"]
    for zoo in ZOOS:
        keep = {"all": np.ones_like(preds.neural), "neural": preds.neural, "non-neural": ~preds.neural}[zoo]
        if keep.sum() < 3:  # too few models for an agreement line
            continue
        models = tuple(np.array(preds.models)[keep].tolist())
        id_preds = as_predictions(preds.probs["id_val"][keep], models=models, kind="probs")
        id_accuracy = (id_preds.labels == id_labels).mean(axis=1)
        with warnings.catch_warnings():
            # Untrusted lines and fallbacks are recorded in each score, not shouted once per shift.
            warnings.simplefilter("ignore", AgreementNotLinearWarning)
            warnings.simplefilter("ignore", ModelFallbackWarning)
            fitted = {m: make_estimator(m, min_r2=min_r2, n_bootstrap=0).fit(id_preds, id_labels) for m in methods}
            for spec in shifts:
                ood = as_predictions(preds.probs[spec.name][keep], models=models, kind="probs")
                truth = (ood.labels == preds.labels[spec.name]).mean(axis=1)
                estimates, lines, failures = {}, [], {}
                for method, estimator in fitted.items():
                    try:
                        result = estimator.estimate(ood)
                    except ValueError as exc:
                        estimates[method], failures[method] = np.full(len(models), np.nan), str(exc)
                        continue
                    estimates[method] = result.ood_accuracy
                    lines.append(result.line)
                estimates[ORACLE] = _oracle(id_accuracy, truth, len(id_labels), ood.n_samples)
                line = next((ln for ln in lines if ln is not None), None)
                pairs = np.argwhere(kept_pairs(id_preds.agreement, ood.agreement, KEEP))
                agreement = np.stack([id_preds.agreement[tuple(pairs.T)], ood.agreement[tuple(pairs.T)]], axis=1)
                scores.append(
                    ShiftScore(
                        spec, zoo, models, ood.n_samples, len(id_labels), id_accuracy, truth, estimates,
                        line, min_r2, failures, pairs, agreement,
                    )  # fmt: skip
                )
    return scores


def fit_accuracy_line(id_accuracy: np.ndarray, ood_accuracy: np.ndarray, n_id: int, n_ood: int) -> tuple[float, float, float]:
    """``(slope, bias, r2)`` of probit(OOD accuracy) against probit(ID accuracy): needs OOD labels."""
    return fit_line(probit(id_accuracy, n_samples=n_id), probit(ood_accuracy, n_samples=n_ood))


def _oracle(id_accuracy: np.ndarray, ood_accuracy: np.ndarray, n_id: int, n_ood: int) -> np.ndarray:
    slope, bias, _ = fit_accuracy_line(id_accuracy, ood_accuracy, n_id, n_ood)
    return norm.cdf(slope * probit(id_accuracy, n_samples=n_id) + bias)


# --- summaries -------------------------------------------------------------------------------

GROUPINGS = ("overall", "dataset", "family", "severity")


def summarise(scores: Iterable[ShiftScore]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Mean MAE per method, mean R² and shift counts: ``summary[zoo][grouping][group]``.

    Groupings are ``'overall'`` (one group, ``'all'``), ``'dataset'``, ``'family'`` and
    ``'severity'`` (the natural shift is severity 0).
    """
    keys: dict[str, Callable[[ShiftScore], str]] = {
        "overall": lambda s: "all",
        "dataset": lambda s: s.shift.dataset,
        "family": lambda s: s.shift.family,
        "severity": lambda s: str(s.shift.severity),
    }
    summary: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for score in scores:
        for grouping, key in keys.items():
            group = summary.setdefault(score.zoo, {}).setdefault(grouping, {}).setdefault(key(score), {"scores": []})
            group["scores"].append(score)
    for by_grouping in summary.values():
        for groups in by_grouping.values():
            for name, group in groups.items():
                groups[name] = _group_summary(group["scores"])
    return summary


def _group_summary(scores: list[ShiftScore]) -> dict[str, Any]:
    maes = [s.mae() for s in scores]
    r2 = [s.agreement.r2 for s in scores if s.agreement is not None]
    return {
        "n_shifts": len(scores),
        "n_trusted": sum(s.trusted for s in scores),
        "mean_agreement_r2": float(np.mean(r2)) if r2 else None,
        "mean_accuracy_r2": float(np.mean([s.accuracy_line[2] for s in scores])),
        # A method that failed on a shift is averaged over the shifts it could estimate.
        "mae": _json_numbers({m: _nanmean([mae[m] for mae in maes]) for m in maes[0]}),
        "n_failed": {m: n for m in maes[0] if (n := int(sum(np.isnan(mae[m]) for mae in maes)))},
    }


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _json_numbers(values: dict[str, Any]) -> dict[str, float | None]:
    """Plain floats, with None where a value is missing (JSON has no NaN)."""
    return {k: float(v) if np.isfinite(v) else None for k, v in values.items()}


def quality(scores: Iterable[ShiftScore], *, bad_mae: float = 5.0, good_mae: float = 1.5) -> dict[str, Any]:
    """The benchmark's two quality goals for one zoo's scores.

    ``trusted_shifts``: where R² >= ``min_r2``, ALine-D's mean MAE should be at most
    ``good_mae`` points and below ATC's. ``flagged_failures``: among shifts where ALine-D's
    MAE exceeds ``bad_mae`` points, the share whose R² raised the flag should be >= 0.9.
    """
    scores = list(scores)
    trusted = [s.mae() for s in scores if s.trusted]
    aline = _nanmean([m["aline-d"] for m in trusted]) if trusted else None
    atc = _nanmean([m["atc-mc"] for m in trusted]) if trusted else None
    failures = [s for s in scores if s.mae()["aline-d"] > bad_mae]
    flagged = sum(not s.trusted for s in failures)
    share = flagged / len(failures) if failures else None
    return {
        "trusted_shifts": {
            "n_shifts": len(trusted),
            "aline_d_mae": aline,
            "atc_mc_mae": atc,
            "goal": f"ALine-D MAE <= {good_mae} and below ATC-MC",
            "met": None if aline is None or atc is None else bool(aline <= good_mae and aline < atc),
        },
        "flagged_failures": {
            "n_shifts": len(failures),
            "n_flagged": flagged,
            "share_flagged": share,
            "goal": f"R² flag raised on >= 90% of shifts where ALine-D MAE > {bad_mae}",
            "met": None if share is None else bool(share >= 0.9),
        },
    }


# --- a whole run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkResult:
    """Scores of every shift for every zoo of one configuration."""

    config: BenchConfig
    scores: tuple[ShiftScore, ...]
    n_models: dict[str, int]
    from_cache: bool
    seconds: float
    min_r2: float
    headline_zoo: str = "all"

    def select(self, zoo: str) -> list[ShiftScore]:
        return [s for s in self.scores if s.zoo == zoo]

    @property
    def methods(self) -> list[str]:
        return list(self.scores[0].estimates)

    def to_dict(self, *, per_model: bool = False) -> dict[str, Any]:
        """The ``results.json`` object; ``shifts`` holds the headline zoo (the whole zoo) with the halves inside."""
        halves: dict[tuple[str, str], dict[str, Any]] = {}
        for s in self.scores:
            if s.zoo != self.headline_zoo:
                halves.setdefault((s.shift.dataset, s.shift.name), {})[s.zoo] = s.to_dict()
        shifts = []
        for s in self.select(self.headline_zoo):
            entry = s.to_dict(per_model=per_model)
            entry["zoos"] = halves.get((s.shift.dataset, s.shift.name), {})
            shifts.append(entry)
        return {
            "config": self.config.name,
            "datasets": list(self.config.datasets),
            "n_models": max(self.n_models.values()),
            "n_models_per_dataset": self.n_models,
            "min_r2": self.min_r2,
            "methods": self.methods,
            "shifts": shifts,
            "summary": summarise(self.scores),
            "quality": {zoo: quality(self.select(zoo)) for zoo in ZOOS if self.select(zoo)},
            "from_cache": self.from_cache,
            "seconds": round(self.seconds, 1),
        }


def run_benchmark(
    config: str = "quick",
    *,
    cache_dir: Path | None = None,
    jobs: int = 1,
    min_r2: float = 0.95,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Train (or read from the cache) each dataset's zoo and score every estimator on every shift.

    Parameters
    ----------
    config : {'tiny', 'quick', 'full'}
        ``'quick'`` is what ``ontheline demo`` runs; ``'full'`` is the recorded suite.
    cache_dir : path, optional
        Where predictions are kept between runs (default :func:`default_cache_dir`).
    jobs : int
        Worker processes for training and prediction.
    min_r2 : float
        The agreement R² below which a shift is flagged as untrusted.
    progress : callable, optional
        Called as ``progress(message, done, total)`` while models train.
    """
    check_choice("run_benchmark", "config", config, CONFIGS)
    spec = CONFIGS[config]
    start = time.perf_counter()
    scores: list[ShiftScore] = []
    n_models, cached = {}, True
    for dataset in spec.datasets:
        preds, hit = zoo_predictions(spec, dataset, cache_dir=cache_dir, jobs=jobs, progress=progress)
        cached &= hit
        n_models[dataset] = len(preds.models)
        if progress:
            progress(f"{dataset}: scoring {len(METHODS)} methods", 0, 0)
        scores += score(preds, spec.shifts(dataset), min_r2=min_r2)
    return BenchmarkResult(spec, tuple(scores), n_models, cached, time.perf_counter() - start, min_r2)
