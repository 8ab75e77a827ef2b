"""Test-time adaptation of PyTorch classifiers: BN-adapt, TENT, ETA and SHOT-IM.

Kim, Sun, Baek, Raghunathan and Kolter (NeurIPS 2024) found that adapting every model of a
zoo at test time makes accuracy- and agreement-on-the-line hold again on shifts where they
broke, so the ALine estimates become precise there; and that the adaptation itself can then
be chosen without OOD labels (:func:`ontheline.adapt.select_adaptation`).

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
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._validation import InputError, check_choice, check_number

#: The adaptation methods, by the name :class:`AdaptConfig` takes (see the module docstring).
METHODS = ("bn", "tent", "eta", "shot-im")
#: The methods that take gradient steps (``bn`` only re-normalises).
GRADIENT_METHODS = ("tent", "eta", "shot-im")
_ETA_ENTROPY_FRACTION = 0.4  # E0 = 0.4 ln C, EATA's reliability threshold
_ETA_REDUNDANCY = 0.05  # cosine-similarity margin to the running mean prediction


@dataclass(frozen=True)
class AdaptConfig:
    """One adaptation method and its hyperparameters (part of every adapted prediction's fingerprint).

    Parameters
    ----------
    method : {'bn', 'tent', 'eta', 'shot-im'}
        One of :data:`METHODS`.
    lr : float, default 1e-3
        The learning rate of the gradient methods.
    steps : int, default 1
        Gradient steps on each batch.
    batch_size : int, default 128
        Test samples adapted on together (at least 2: BatchNorm needs batch statistics).
    episodic : bool, default False
        Reset to the original weights before every batch.

    References
    ----------
    .. [1] E. Kim, M. Sun, C. Baek, A. Raghunathan and J. Z. Kolter, "Test-Time Adaptation Induces
       Stronger Accuracy and Agreement-on-the-Line", NeurIPS 2024, arXiv:2310.04941.
    .. [2] D. Wang, E. Shelhamer, S. Liu, B. Olshausen and T. Darrell, "Tent: Fully Test-Time
       Adaptation by Entropy Minimization", ICLR 2021, arXiv:2006.10726.
    .. [3] S. Niu, J. Wu, Y. Zhang, Y. Chen, S. Zheng, P. Zhao and M. Tan, "Efficient Test-Time Model
       Adaptation without Forgetting", ICML 2022, arXiv:2204.02610 (ETA is EATA without its Fisher
       regulariser).
    .. [4] J. Liang, D. Hu and J. Feng, "Do We Really Need to Access the Source Data? Source Hypothesis
       Transfer for Unsupervised Domain Adaptation", ICML 2020, arXiv:2002.08546 (SHOT-IM).

    Examples
    --------
    >>> AdaptConfig("tent", lr=1e-3).label
    'tent-lr0.001-s1-b128'
    >>> AdaptConfig("bn", batch_size=64, episodic=True).label
    'bn-b64-episodic'
    >>> METHODS
    ('bn', 'tent', 'eta', 'shot-im')
    """

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

    References
    ----------
    .. [1] E. Kim, M. Sun, C. Baek, A. Raghunathan and J. Z. Kolter, "Test-Time Adaptation Induces
       Stronger Accuracy and Agreement-on-the-Line", NeurIPS 2024, arXiv:2310.04941.
    .. [2] D. Wang, E. Shelhamer, S. Liu, B. Olshausen and T. Darrell, "Tent: Fully Test-Time
       Adaptation by Entropy Minimization", ICLR 2021, arXiv:2006.10726.
    .. [3] S. Niu, J. Wu, Y. Zhang, Y. Chen, S. Zheng, P. Zhao and M. Tan, "Efficient Test-Time Model
       Adaptation without Forgetting", ICML 2022, arXiv:2204.02610 (ETA is EATA without its Fisher
       regulariser).
    .. [4] J. Liang, D. Hu and J. Feng, "Do We Really Need to Access the Source Data? Source Hypothesis
       Transfer for Unsupervised Domain Adaptation", ICML 2020, arXiv:2002.08546 (SHOT-IM).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> layers = [torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)]
    >>> net = torch.nn.Sequential(*layers)
    >>> adapted = Adapted(net.eval(), AdaptConfig("tent", lr=1e-2, batch_size=8))
    >>> shifted = np.random.default_rng(0).normal(2.0, 1.0, (16, 4))
    >>> adapted.predict_proba(shifted).shape, len(adapted.parameters)  # TENT adapts BatchNorm's scale and shift
    ((16, 3), 2)
    >>> bool((adapted.model[1].weight != 1).any()), bool((net[1].weight == 1).all())  # the original is untouched
    (True, True)
    """

    def __init__(self, model: Any, config: AdaptConfig | str) -> None:
        with extra("torch"):
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
        with extra("torch"):
            import torch

        method = self.config.method
        if method == "bn":
            return []
        if method in ("tent", "eta"):
            return [p for m in self._norms for p in (m.weight, m.bias) if p is not None]
        heads = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        if not heads:
            raise InputError(
                "shot-im adapts every layer but the classifier head, the last nn.Linear; the model has none."
            )
        head = {id(p) for p in heads[-1].parameters()}
        return [p for p in self.model.parameters() if id(p) not in head]

    def reset(self) -> None:
        """Restore the original weights and buffers exactly, and forget the optimiser state."""
        with extra("torch"):
            import torch

        self.model.load_state_dict(self._initial)
        self.model.eval()
        for m in self._norms:  # normalise with the test batch's statistics
            m.train()
        self.optimizer: torch.optim.Optimizer | None = None
        if self.parameters:
            if self.config.method == "tent":
                self.optimizer = torch.optim.Adam(self.parameters, lr=self.config.lr)
            else:
                self.optimizer = torch.optim.SGD(self.parameters, lr=self.config.lr, momentum=0.9)
        self._mean_prediction: Any = None

    def forward(self, x: Any) -> Any:
        """Adapt on the batch ``x`` and return its logits (from the last adapting forward pass)."""
        with extra("torch"):
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
        with extra("torch"):
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
        with extra("torch"):
            import torch

        x = torch.as_tensor(np.asarray(inputs, np.float32))
        # Batches of at least batch_size (a short last batch joins the one before): batch statistics need samples.
        n_batches = max(1, len(x) // self.config.batch_size)
        outputs = [torch.softmax(self.forward(batch), dim=1) for batch in torch.tensor_split(x, n_batches)]
        return torch.cat(outputs).detach().numpy().astype(np.float64)
