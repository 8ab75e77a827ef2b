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
    """A hash of the code that adapts (:mod:`ontheline.adapt.methods`): changing it changes every adapted entry's key."""
    from ontheline.adapt import methods

    return hashlib.sha256(Path(methods.__file__).read_bytes()).hexdigest()
