"""The benchmark: zoos trained on packaged digits, every estimator scored on natural and synthetic shifts.

A run has two stages. **Predictions** (:mod:`ontheline.bench.predict`): for each dataset,
the zoo of a configuration is trained and its probabilities on ID validation, ID test and
every shifted test set are computed once, then kept in the prediction store. **Scoring**
(:mod:`ontheline.bench.score`): each estimator is fitted on ID validation and estimates the
accuracy on every shift; the true OOD labels are held aside and used only to score the
estimates. The zoo is scored whole, and its parts apart (the image zoo's neural and non-neural
models; the text zoo's probes on each backbone).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from ontheline._progress import Progress
from ontheline._validation import check_choice, check_number
from ontheline.adapt import AdaptConfig
from ontheline.bench.calibrate import beyond_summary, with_auto
from ontheline.bench.config import CONFIGS, BenchConfig
from ontheline.bench.predict import zoo_predictions
from ontheline.bench.score import ShiftScore, group_mae, quality, score, summarise
from ontheline.estimators import METHODS
from ontheline.evaluate import method_settings
from ontheline.store import Store

#: The baselines scored again with the other temperature-scaling setting, as the ablation: the
#: confidence baselines the ATC paper calibrates (COT and COTT always run as their code does).
ABLATED = ("atc-mc", "atc-ne", "doc", "ac")


@dataclass(frozen=True)
class BenchmarkResult:
    """Scores of every shift for every zoo of one configuration."""

    config: BenchConfig
    scores: tuple[ShiftScore, ...]
    n_models: dict[str, int]
    from_store: bool
    seconds: float
    min_r2: float
    adapt: AdaptConfig | None = None
    calibrate: bool = True
    #: The :data:`ABLATED` baselines scored again with the other ``calibrate`` setting, whole zoo.
    ablation: tuple[ShiftScore, ...] = ()
    #: Which calibration gave ``auto`` and the calibrated intervals (:func:`~ontheline.bench.calibrate.with_auto`).
    calibration: str = ""

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        """Every method's hyperparameters in this run (``n_bootstrap``: ALine's resamples on the whole zoo)."""
        return method_settings(
            [m for m in self.methods if m in METHODS],
            min_r2=self.min_r2,
            n_bootstrap=self.config.bootstrap,
            calibrate=self.calibrate,
        )

    @cached_property
    def summary(self) -> dict[str, Any]:
        """:func:`~ontheline.bench.score.summarise` over every score."""
        return summarise(self.scores)

    def select(self, zoo: str) -> list[ShiftScore]:
        return [s for s in self.scores if s.zoo == zoo]

    @property
    def zoos(self) -> list[str]:
        """``'all'`` and the parts of the zoo that were scored, in order (``'neural'``, ``'non-neural'`` for images)."""
        return list(dict.fromkeys(s.zoo for s in self.scores))

    @property
    def parts(self) -> list[str]:
        """The parts of the zoo scored apart beside the whole."""
        return [zoo for zoo in self.zoos if zoo != "all"]

    def parts_heading(self) -> str:
        """``Whole zoo, neural and non-neural models`` (the heading of the table of zoos)."""
        return "Whole zoo" + (f", {' and '.join(self.parts)} models" if self.parts else "")

    @property
    def title(self) -> str:
        """``quick``, or ``quick, adapted with tent-lr0.001-s1-b128``."""
        return self.config.name + (f", adapted with {self.adapt.label}" if self.adapt else "")

    @property
    def methods(self) -> list[str]:
        return list(self.scores[0].estimates)

    def to_dict(self, *, per_model: bool = False) -> dict[str, Any]:
        """The ``results.json`` object; ``shifts`` holds the whole zoo's scores, with its halves' inside."""
        halves: dict[tuple[str, str], dict[str, Any]] = {}
        for s in self.scores:
            if s.zoo != "all":
                halves.setdefault((s.shift.dataset, s.shift.name), {})[s.zoo] = s.to_dict()
        shifts = []
        for s in self.select("all"):
            entry = s.to_dict(per_model=per_model)
            entry["zoos"] = halves.get((s.shift.dataset, s.shift.name), {})
            shifts.append(entry)
        return {
            "config": self.config.name,
            "adapt": None if self.adapt is None else {"label": self.adapt.label, **asdict(self.adapt)},
            "datasets": list(self.config.datasets),
            "n_models": max(self.n_models.values()),
            "n_models_per_dataset": self.n_models,
            "min_r2": self.min_r2,
            "methods": self.methods,
            "shifts": shifts,
            "summary": self.summary,
            "quality": {zoo: quality(self.select(zoo)) for zoo in self.zoos},
            "from_store": self.from_store,
            "seconds": round(self.seconds, 1),
            "settings": self.settings,
            "ablation": self._ablation_dict(),
            "calibration": self.calibration,
            "beyond": beyond_summary(self.select("all")),
        }

    def _ablation_dict(self) -> dict[str, Any] | None:
        if not self.ablation:
            return None
        raw = [s for s in self.ablation if s.zoo == "all"]
        return {
            "calibrate": not self.calibrate,
            "mae": group_mae(raw),
            "shifts": [{"name": s.shift.name, "dataset": s.shift.dataset, "mae": s.to_dict()["mae"]} for s in raw],
        }


def run_benchmark(
    config: str = "quick",
    *,
    store: Store | None = None,
    jobs: int = 1,
    min_r2: float = 0.95,
    progress: Progress | None = None,
    adapt: AdaptConfig | None = None,
    calibrate: bool = True,
) -> BenchmarkResult:
    """Train (or read from the store) each dataset's zoo and score every estimator on every shift.

    Parameters
    ----------
    config : {'tiny', 'quick', 'full', 'text'}
        ``'quick'`` is what ``ontheline demo`` runs; ``'full'`` is the recorded suite; ``'text'``
        scores linear probes on sentence embeddings on three natural text shifts
        (:mod:`ontheline.bench.text_zoo`; needs ``ontheline data fetch vader`` once).
    store : Store, optional
        Where the zoo's predictions are kept between runs (default: the store at
        ``$ONTHELINE_STORE`` or ``~/.cache/ontheline``).
    jobs : int
        Worker processes for training and prediction.
    min_r2 : float
        The agreement R² below which a shift is flagged as untrusted.
    progress : callable, optional
        Called as ``progress(message, done, total)`` while models train.
    adapt : AdaptConfig, optional
        Score the zoo's networks adapted at test time (:mod:`ontheline.adapt`) instead.
    calibrate : bool
        Temperature-scale each model on ID validation before the confidence and transport
        baselines; their other setting is scored too, as the ablation.
    """
    check_choice("run_benchmark", "config", config, CONFIGS)
    check_number("run_benchmark", "jobs", jobs, low=1, integer=True)
    check_number("run_benchmark", "min_r2", min_r2, low=0.0, high=1.0)
    spec = CONFIGS[config]
    start = time.perf_counter()
    scores: list[ShiftScore] = []
    ablation: list[ShiftScore] = []
    n_models, from_store = {}, True
    for dataset in spec.datasets:
        preds, hit = zoo_predictions(spec, dataset, store=store, jobs=jobs, progress=progress, adapt=adapt)
        from_store &= hit
        n_models[dataset] = len(preds.models)
        if progress:
            progress(f"{dataset}: scoring {len(METHODS)} methods", 0, 0)
        scores += score(preds, spec.shifts(dataset), min_r2=min_r2, calibrate=calibrate, n_bootstrap=spec.bootstrap)
        ablation += score(
            preds, spec.shifts(dataset), min_r2=min_r2, methods=ABLATED, calibrate=not calibrate, zoos=("all",),
            n_bootstrap=0, bounds=False,
        )  # fmt: skip
    scores, calibration = with_auto(scores)
    seconds = time.perf_counter() - start
    return BenchmarkResult(
        spec, tuple(scores), n_models, from_store, seconds, min_r2, adapt, calibrate, tuple(ablation), calibration
    )
