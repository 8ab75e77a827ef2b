"""Test-time adaptation of PyTorch classifiers, and its label-free choice.

Kim, Sun, Baek, Raghunathan and Kolter (NeurIPS 2024) found that adapting every model of a zoo
at test time makes accuracy- and agreement-on-the-line hold again on shifts where they broke,
so the ALine estimates become precise there; and that the adaptation itself can then be chosen
without OOD labels. :mod:`.methods` adapts one model (BN-adapt, TENT, ETA, SHOT-IM),
:mod:`.runner` runs adapted models into the prediction store, :mod:`.select` chooses.

>>> METHODS
('bn', 'tent', 'eta', 'shot-im')
"""

from ontheline.adapt.methods import METHODS, AdaptConfig, Adapted
from ontheline.adapt.runner import AdaptedModel, source_fingerprint
from ontheline.adapt.select import AdaptationChoice, Candidate, default_grid, select_adaptation

__all__ = [
    "METHODS",
    "AdaptConfig",
    "AdaptationChoice",
    "Adapted",
    "AdaptedModel",
    "Candidate",
    "default_grid",
    "select_adaptation",
    "source_fingerprint",
]
