"""The label-free choice of a test-time adaptation for a zoo (Kim, Sun, Baek, Raghunathan, Kolter; NeurIPS 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ontheline._progress import Progress
from ontheline._validation import EstimationError
from ontheline.adapt.methods import GRADIENT_METHODS, AdaptConfig
from ontheline.adapt.runner import AdaptedModel

if TYPE_CHECKING:
    from ontheline.evaluate import Evaluation


@dataclass(frozen=True)
class Candidate:
    """One adaptation configuration (None: no adaptation) and what it did to the zoo.

    ``estimated_accuracy`` is ALine-D's mean estimated OOD accuracy over the zoo (label-free);
    ``agreement_r2`` the agreement line's R²; ``true_accuracy`` the mean true OOD accuracy
    when OOD labels were given (NaN otherwise), and ``evaluation`` everything else.

    Examples
    --------
    >>> Candidate(AdaptConfig("tent", lr=1e-3), 0.71, 0.98, float("nan"), None).label
    'tent-lr0.001-s1-b128'
    >>> Candidate(None, 0.64, 0.91, float("nan"), None).label
    'none'
    """

    config: AdaptConfig | None
    estimated_accuracy: float
    agreement_r2: float
    true_accuracy: float
    evaluation: Evaluation | None = field(repr=False)

    @property
    def label(self) -> str:
        return "none" if self.config is None else self.config.label

    @property
    def trust_issues(self) -> tuple[str, ...]:
        """Why this candidate's estimates cannot be trusted (see :attr:`~ontheline.EstimateResult.trust_issues`)."""
        if self.evaluation is None:
            return ("no agreement line",)
        return self.evaluation.results[self.evaluation.ranking_method].trust_issues


@dataclass(frozen=True)
class AdaptationChoice:
    """Every candidate, and the one with the highest estimated mean OOD accuracy (chosen without labels).

    Candidates whose agreement line can be trusted come first: an adaptation that collapses the
    zoo into near-identical models has an untrustworthy line, however high its estimate. Only
    when no candidate is trusted is the best untrusted one chosen, and ``chosen_trusted`` says so.

    Examples
    --------
    >>> choice = AdaptationChoice((
    ...     Candidate(None, 0.64, 0.91, 0.62, None),
    ...     Candidate(AdaptConfig("bn"), 0.73, 0.99, 0.71, None),
    ...     Candidate(AdaptConfig("tent"), float("nan"), float("nan"), 0.40, None),  # no agreement line
    ... ))
    >>> choice.best.label, choice.best_with_labels.label, choice.to_dict()["regret"]
    ('bn-b128', 'bn-b128', 0.0)
    """

    candidates: tuple[Candidate, ...]

    @property
    def best(self) -> Candidate:
        """The chosen candidate: the highest estimate among the trusted ones (among all when none is);
        one whose zoo had no agreement line (NaN estimate) is never chosen."""
        usable = [c for c in self.candidates if np.isfinite(c.estimated_accuracy)]
        if not usable:
            raise EstimationError("No adaptation gave the zoo an agreement line; nothing can be chosen without labels.")
        trusted = [c for c in usable if not c.trust_issues]
        return max(trusted or usable, key=lambda c: c.estimated_accuracy)

    @property
    def best_with_labels(self) -> Candidate | None:
        """The candidate that true OOD labels would pick (None without labels)."""
        if any(np.isnan(c.true_accuracy) for c in self.candidates):
            return None
        return max(self.candidates, key=lambda c: c.true_accuracy)

    def to_dict(self) -> dict[str, Any]:
        oracle = self.best_with_labels
        return {
            "chosen": self.best.label,
            "chosen_trusted": not self.best.trust_issues,
            "chosen_with_labels": None if oracle is None else oracle.label,
            "regret": None if oracle is None else oracle.true_accuracy - self.best.true_accuracy,
            "candidates": [
                {
                    "label": c.label,
                    "estimated_accuracy": c.estimated_accuracy,
                    "agreement_r2": c.agreement_r2,
                    "trust_issues": list(c.trust_issues),
                    "true_accuracy": None if np.isnan(c.true_accuracy) else c.true_accuracy,
                }
                for c in self.candidates
            ],
        }


def default_grid(batch_size: int = 128) -> list[AdaptConfig]:
    """Every method at a few learning rates: 1 BN-adapt + 3 x 3 gradient configurations.

    Examples
    --------
    >>> grid = default_grid(batch_size=64)
    >>> len(grid), [config.label for config in grid[:3]]
    (10, ['bn-b64', 'tent-lr0.0001-s1-b64', 'tent-lr0.001-s1-b64'])
    """
    grid = [AdaptConfig("bn", batch_size=batch_size)]
    grid += [AdaptConfig(m, lr=lr, batch_size=batch_size) for m in GRADIENT_METHODS for lr in (1e-4, 1e-3, 1e-2)]
    return grid


def select_adaptation(
    models: Sequence[Any],
    id_data: Any,
    id_labels: Any,
    ood_data: Any,
    grid: Sequence[AdaptConfig] | None = None,
    *,
    ood_labels: Any = None,
    store: Any = None,
    include_unadapted: bool = True,
    min_r2: float = 0.95,
    progress: Progress | None = None,
) -> AdaptationChoice:
    """Choose the adaptation of a zoo without OOD labels: the highest ALine-D-estimated mean OOD accuracy.

    Every model is adapted with each configuration on the ID data and, from the original
    weights again, on the OOD data; the predictions go through the runner into ``store``
    (each configuration is its own entry, so a rerun computes nothing).

    Parameters
    ----------
    models : sequence of TorchModel
        The zoo (at least 3 models).
    id_data, ood_data : runners.Dataset
        Labelled ID validation inputs and unlabelled OOD inputs.
    id_labels : array-like of shape (n_id_samples,)
    grid : sequence of AdaptConfig, optional
        Default :func:`default_grid`.
    ood_labels : array-like, optional
        Only to report each candidate's true accuracy beside its estimate.
    include_unadapted : bool
        Whether not adapting at all is a candidate too.
    store : Store, optional
        Where the predictions go (default: the store at ``$ONTHELINE_STORE`` or ``~/.cache/ontheline``).
    min_r2 : float
        Trust threshold on the agreement line's R².
    progress : callable, optional
        Called as ``progress(message, done, total)`` before each configuration.

    Returns
    -------
    AdaptationChoice

    References
    ----------
    .. [1] E. Kim, M. Sun, C. Baek, A. Raghunathan and J. Z. Kolter, "Test-Time Adaptation Induces
       Stronger Accuracy and Agreement-on-the-Line", NeurIPS 2024, arXiv:2310.04941.
    .. [2] C. Baek, Y. Jiang, A. Raghunathan and J. Z. Kolter, "Agreement-on-the-Line: Predicting the
       Performance of Neural Networks under Distribution Shift", NeurIPS 2022, arXiv:2206.13089.

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from ontheline.runners import Dataset, TorchModel
    >>> from ontheline.store import Store
    >>> def net(seed):
    ...     _ = torch.manual_seed(seed)
    ...     layers = [torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)]
    ...     return TorchModel(torch.nn.Sequential(*layers).eval(), f"net{seed}")
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    >>> labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     choice = select_adaptation(
    ...         [net(seed) for seed in range(3)], Dataset("id", x), labels, Dataset("ood", 2 * x + 1),
    ...         [AdaptConfig("bn", batch_size=32)], store=Store(folder),
    ...     )
    >>> [candidate.label for candidate in choice.candidates]  # no adaptation, and BN-adapt
    ['none', 'bn-b32']
    """
    from ontheline.agreement import accuracy
    from ontheline.evaluate import RANKING_METHOD, evaluate
    from ontheline.runners import run

    configs: list[AdaptConfig | None] = [None] if include_unadapted else []
    configs += list(grid if grid is not None else default_grid())
    candidates = []
    for k, config in enumerate(configs):
        if progress:
            progress(f"adaptation {'none' if config is None else config.label}", k, len(configs))
        zoo = list(models) if config is None else [AdaptedModel(m, config) for m in models]
        report = run(zoo, [id_data, ood_data], store, progress=False)
        names = [m.name for m in models]  # one name per model whatever its adaptation
        id_preds, ood_preds = (report.predictions(d.name) for d in (id_data, ood_data))
        assert id_preds.probs is not None and ood_preds.probs is not None  # the runner stores probabilities
        truth = np.nan if ood_labels is None else float(accuracy(ood_preds, ood_labels).mean())
        try:
            evaluation = evaluate(
                dict(zip(names, id_preds.probs)), id_labels, dict(zip(names, ood_preds.probs)),
                methods=[RANKING_METHOD], ood_labels=ood_labels, min_r2=min_r2, n_bootstrap=0, on_failure="raise",
                bounds=(),
            )  # fmt: skip
        except EstimationError:  # e.g. an adaptation that collapsed the zoo: no agreement line to estimate from
            candidates.append(Candidate(config, np.nan, np.nan, truth, None))
            continue
        estimate = evaluation.results[RANKING_METHOD]
        candidates.append(
            Candidate(config, float(estimate.ood_accuracy.mean()), estimate.agreement_r2, truth, evaluation)
        )
    if progress:
        progress("adaptation", len(configs), len(configs))
    return AdaptationChoice(tuple(candidates))
