"""Test-time adaptation of PyTorch classifiers: BN-adapt, TENT, ETA and SHOT-IM.

Kim, Sun, Baek, Raghunathan and Kolter (NeurIPS 2024) found that adapting every model of a
zoo at test time makes accuracy- and agreement-on-the-line hold again on shifts where they
broke, so the ALine estimates become precise there; and that the adaptation itself can then
be chosen without OOD labels (:func:`select_adaptation`).

Each method adapts on the unlabelled batches it is asked to predict:

- ``bn``: BatchNorm layers normalise with the statistics of the test batch (no gradient step);
- ``tent`` (Wang et al., 2021): as ``bn``, and the BatchNorm affine parameters take Adam steps
  that minimise the mean prediction entropy;
- ``eta`` (EATA without its Fisher regulariser, Niu et al., 2022): as ``tent`` with SGD, but only
  on reliable samples (entropy below 0.4 ln C), that are not redundant (cosine similarity to the
  running mean prediction below 0.05), weighted by ``exp(E0 - entropy)``;
- ``shot-im`` (SHOT's information maximisation, Liang et al., 2020): every parameter but the
  classifier head (the last ``nn.Linear``) takes SGD steps on mean entropy minus the entropy of
  the mean prediction (confident and diverse).

A batch's prediction is the output of the forward pass that adapts on it (as in the official
TENT and EATA code). ``episodic`` resets before every batch; otherwise adaptation continues
across batches until :meth:`Adapted.reset`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ontheline._progress import Progress
from ontheline._validation import EstimationError, check_choice, check_number

if TYPE_CHECKING:
    from ontheline.pipeline import Evaluation

METHODS = ("bn", "tent", "eta", "shot-im")
_GRADIENT_METHODS = ("tent", "eta", "shot-im")
_ETA_ENTROPY_FRACTION = 0.4  # E0 = 0.4 ln C, EATA's reliability threshold
_ETA_REDUNDANCY = 0.05  # cosine-similarity margin to the running mean prediction


@dataclass(frozen=True)
class AdaptConfig:
    """One adaptation method and its hyperparameters (part of every adapted prediction's fingerprint)."""

    method: str
    lr: float = 1e-3
    steps: int = 1
    batch_size: int = 128
    episodic: bool = False

    def __post_init__(self) -> None:
        check_choice("AdaptConfig", "method", self.method, METHODS)
        check_number("AdaptConfig", "lr", self.lr, low=0.0)
        check_number("AdaptConfig", "steps", self.steps, low=1, integer=True)
        check_number("AdaptConfig", "batch_size", self.batch_size, low=2, integer=True)
        check_choice("AdaptConfig", "episodic", self.episodic, (True, False))

    @property
    def label(self) -> str:
        """A short, unique, file-name-safe name, e.g. ``tent-lr0.001-s1-b128``."""
        if self.method == "bn":
            return f"bn-b{self.batch_size}{'-episodic' if self.episodic else ''}"
        mode = "-episodic" if self.episodic else ""
        return f"{self.method}-lr{self.lr:g}-s{self.steps}-b{self.batch_size}{mode}"


class Adapted:
    """A copy of ``model`` that adapts at test time; the model passed in is never changed.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits ``(batch, n_classes)``.
    config : AdaptConfig or str
        The method and its hyperparameters (a method name takes the defaults).
    """

    def __init__(self, model: Any, config: AdaptConfig | str) -> None:
        import torch

        self.config = AdaptConfig(config) if isinstance(config, str) else config
        self.model = copy.deepcopy(model)
        self._initial = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        self.parameters = self._adapted_parameters()
        for p in self.model.parameters():
            p.requires_grad_(False)
        for p in self.parameters:
            p.requires_grad_(True)
        self.reset()

    def _adapted_parameters(self) -> list[Any]:
        import torch

        method = self.config.method
        if method == "bn":
            return []
        if method in ("tent", "eta"):
            return [p for m in self._norms for p in (m.weight, m.bias) if p is not None]
        heads = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        if not heads:
            raise ValueError(
                "shot-im adapts every layer but the classifier head, the last nn.Linear; the model has none."
            )
        head = {id(p) for p in heads[-1].parameters()}
        return [p for p in self.model.parameters() if id(p) not in head]

    def reset(self) -> None:
        """Restore the original weights and buffers exactly, and forget the optimiser state."""
        import torch

        self.model.load_state_dict(self._initial)
        self.model.eval()
        for m in self._norms:  # normalise with the test batch's statistics
            m.train()
        self.optimizer = None
        if self.parameters:
            if self.config.method == "tent":
                self.optimizer = torch.optim.Adam(self.parameters, lr=self.config.lr)
            else:
                self.optimizer = torch.optim.SGD(self.parameters, lr=self.config.lr, momentum=0.9)
        self._mean_prediction: Any = None

    def forward(self, x: Any) -> Any:
        """Adapt on the batch ``x`` and return its logits (from the last adapting forward pass)."""
        import torch

        if self.config.episodic:
            self.reset()
        if self.optimizer is None:
            with torch.no_grad():
                return self.model(x)
        for _ in range(self.config.steps):
            logits = self.model(x)
            loss = self._loss(logits)
            self.optimizer.zero_grad()
            if loss.requires_grad:  # ETA may find no reliable sample in a batch: then no step
                loss.backward()
                self.optimizer.step()
        return logits.detach()

    __call__ = forward

    def _loss(self, logits: Any) -> Any:
        import torch

        log_p = torch.log_softmax(logits, dim=1)
        p = log_p.exp()
        entropy = -(p * log_p).sum(dim=1)
        if self.config.method == "tent":
            return entropy.mean()
        if self.config.method == "shot-im":
            mean = p.mean(dim=0)
            return entropy.mean() + (mean * torch.log(mean + 1e-6)).sum()
        # eta: reliable (low entropy) and non-redundant samples, weighted by their confidence
        threshold = _ETA_ENTROPY_FRACTION * math.log(logits.shape[1])
        keep = entropy < threshold
        if self._mean_prediction is not None:
            similarity = torch.nn.functional.cosine_similarity(p.detach(), self._mean_prediction[None], dim=1)
            keep &= similarity.abs() < _ETA_REDUNDANCY
        if not keep.any():
            return torch.zeros((), requires_grad=False)
        chosen = p.detach()[keep].mean(dim=0)
        self._mean_prediction = chosen if self._mean_prediction is None else 0.9 * self._mean_prediction + 0.1 * chosen
        weights = torch.exp(threshold - entropy[keep].detach())
        return (entropy[keep] * weights).mean()

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """Probabilities ``(n_samples, n_classes)``, adapting batch by batch in input order (deterministic)."""
        import torch

        x = torch.as_tensor(np.asarray(inputs, np.float32))
        # Batches of at least batch_size (a short last batch joins the one before): batch statistics need samples.
        n_batches = max(1, len(x) // self.config.batch_size)
        outputs = [torch.softmax(self.forward(batch), dim=1) for batch in torch.tensor_split(x, n_batches)]
        return torch.cat(outputs).detach().numpy().astype(np.float64)


class AdaptedModel:
    """A runner adapter (:mod:`ontheline.runners`): ``model`` adapted at test time on each dataset it
    predicts, from the original weights every time. The store key covers the weights, the
    adaptation and this module's code, so each configuration is its own entry.

    Parameters
    ----------
    model : TorchModel
        The unadapted model (its module is copied, never changed).
    config : AdaptConfig or str
    """

    device = "cpu"

    def __init__(self, model: Any, config: AdaptConfig | str) -> None:
        self.base = model
        self.adapted = Adapted(model.module, config)
        self.config = self.adapted.config
        self.name = f"{model.name}@{self.config.label}"

    def fingerprint(self) -> str:
        parts = [self.base.fingerprint(), repr(self.config), source_fingerprint()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def predict_proba(self, inputs: Any) -> np.ndarray:
        self.adapted.reset()
        return self.adapted.predict_proba(inputs)


@cache
def source_fingerprint() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Candidate:
    """One adaptation configuration (None: no adaptation) and what it did to the zoo.

    ``estimated_accuracy`` is ALine-D's mean estimated OOD accuracy over the zoo (label-free);
    ``agreement_r2`` the agreement line's R²; ``true_accuracy`` the mean true OOD accuracy
    when OOD labels were given (NaN otherwise), and ``evaluation`` everything else.
    """

    config: AdaptConfig | None
    estimated_accuracy: float
    agreement_r2: float
    true_accuracy: float
    evaluation: Evaluation | None = field(repr=False)

    @property
    def label(self) -> str:
        return "none" if self.config is None else self.config.label


@dataclass(frozen=True)
class AdaptationChoice:
    """Every candidate, and the one with the highest estimated mean OOD accuracy (chosen without labels)."""

    candidates: tuple[Candidate, ...]

    @property
    def best(self) -> Candidate:
        """The chosen candidate; one whose zoo had no agreement line (NaN estimate) is never chosen."""
        usable = [c for c in self.candidates if np.isfinite(c.estimated_accuracy)]
        if not usable:
            raise ValueError("No adaptation gave the zoo an agreement line; nothing can be chosen without labels.")
        return max(usable, key=lambda c: c.estimated_accuracy)

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
            "chosen_with_labels": None if oracle is None else oracle.label,
            "regret": None if oracle is None else oracle.true_accuracy - self.best.true_accuracy,
            "candidates": [
                {
                    "label": c.label,
                    "estimated_accuracy": c.estimated_accuracy,
                    "agreement_r2": c.agreement_r2,
                    "true_accuracy": None if np.isnan(c.true_accuracy) else c.true_accuracy,
                }
                for c in self.candidates
            ],
        }


def default_grid(batch_size: int = 128) -> list[AdaptConfig]:
    """Every method at a few learning rates: 1 BN-adapt + 3 x 3 gradient configurations."""
    grid = [AdaptConfig("bn", batch_size=batch_size)]
    grid += [AdaptConfig(m, lr=lr, batch_size=batch_size) for m in _GRADIENT_METHODS for lr in (1e-4, 1e-3, 1e-2)]
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
    """
    from ontheline.agreement import accuracy
    from ontheline.pipeline import evaluate
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
        truth = np.nan if ood_labels is None else float(accuracy(ood_preds, ood_labels).mean())
        try:
            evaluation = evaluate(
                dict(zip(names, id_preds.probs)), id_labels, dict(zip(names, ood_preds.probs)),
                methods=["aline-d"], ood_labels=ood_labels, min_r2=min_r2, n_bootstrap=0,
            )  # fmt: skip
        except EstimationError:  # e.g. an adaptation that collapsed the zoo: no agreement line to estimate from
            candidates.append(Candidate(config, np.nan, np.nan, truth, None))
            continue
        estimate = evaluation.results["aline-d"]
        candidates.append(
            Candidate(config, float(estimate.ood_accuracy.mean()), estimate.agreement_r2, truth, evaluation)
        )
    if progress:
        progress("adaptation", len(configs), len(configs))
    return AdaptationChoice(tuple(candidates))
