"""Test-time adaptation as a runner adapter: every prediction adapts from the original weights."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ontheline.adapt.methods import AdaptConfig, Adapted


class AdaptedModel:
    """A runner adapter (:mod:`ontheline.runners`): ``model`` adapted at test time on each dataset it
    predicts, from the original weights every time. The store key covers the weights, the
    adaptation and this module's code, so each configuration is its own entry.

    Parameters
    ----------
    model : TorchModel
        The unadapted model (its module is copied, never changed).
    config : AdaptConfig or str

    References
    ----------
    .. [1] E. Kim, M. Sun, C. Baek, A. Raghunathan and J. Z. Kolter, "Test-Time Adaptation Induces
       Stronger Accuracy and Agreement-on-the-Line", NeurIPS 2024, arXiv:2310.04941.
    .. [2] D. Wang, E. Shelhamer, S. Liu, B. Olshausen and T. Darrell, "Tent: Fully Test-Time
       Adaptation by Entropy Minimization", ICLR 2021, arXiv:2006.10726.

    Examples
    --------
    >>> import torch
    >>> from ontheline.runners import TorchModel
    >>> _ = torch.manual_seed(0)
    >>> layers = [torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)]
    >>> net = torch.nn.Sequential(*layers)
    >>> base = TorchModel(net.eval(), "mlp")
    >>> adapted = AdaptedModel(base, "bn")
    >>> adapted.name, adapted.predict_proba(np.random.default_rng(0).normal(size=(16, 4))).shape
    ('mlp@bn-b128', (16, 3))
    >>> adapted.fingerprint() != base.fingerprint()  # its own store entries
    True
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
    """A hash of the code that adapts (:mod:`ontheline.adapt.methods`): changing it changes every adapted entry's key.

    Examples
    --------
    >>> len(source_fingerprint()), source_fingerprint() == source_fingerprint()  # SHA-256, computed once
    (64, True)
    """
    from ontheline.adapt import methods

    return hashlib.sha256(Path(methods.__file__).read_bytes()).hexdigest()
