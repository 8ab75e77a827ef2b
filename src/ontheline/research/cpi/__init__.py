"""Context-parametric inversion (CPI): context reliance along instruction finetuning.

Goyal, Baek, Kolter and Raghunathan observe that during instruction finetuning a model's
reliance on a counterfactual context (answering from the context rather than from memory)
first rises, then falls, while benchmark accuracy keeps rising; they blame the examples whose
context repeats what the model knows (non-context-critical), explain it with a one-layer
transformer, and try curation, counterfactual augmentation and restricting which weights
train. Here:

- :mod:`~ontheline.research.cpi.metrics`: :func:`classify_answers` (context / parametric /
  other), :func:`knowledge_filter` and :func:`conflict_accuracies` (context and parametric
  accuracy on a knowledge-conflict set);
- :mod:`~ontheline.research.cpi.theory`: :func:`train_theory`, a one-layer attention model
  trained by gradient descent on the mixture, tracking reliance and attention on conflicts;
- :mod:`~ontheline.research.cpi.data`: :func:`ift_mixture`, the finetuning set with an exact
  share ``p`` of non-context-critical examples (and counterfactual augmentation);
- :mod:`~ontheline.research.cpi.lm`: the tiny-LM experiment on the lab's
  :class:`~ontheline.research.lm.FactWorld` (:func:`run_lm`);
- :mod:`~ontheline.research.cpi.repro`: ``ontheline repro cpi [--quick]``.

Examples
--------
>>> from ontheline.research.cpi import conflict_accuracies, knowledge_filter
>>> known = knowledge_filter(["paris", "rome", "oslo"], ["paris", "rome", "bern"])
>>> conflict_accuracies(["lyon", "rome", "x"], ["lyon", "milan", "zurich"], ["paris", "rome", "bern"], known=known)
{'context_accuracy': 0.5, 'parametric_accuracy': 0.5, 'other': 0.0, 'n': 2}

References
----------
.. [1] S. Goyal, C. Baek, J. Z. Kolter and A. Raghunathan, "Context-Parametric Inversion: Why Instruction
   Finetuning May Not Actually Improve Context Reliance", ICLR 2025, arXiv:2410.10796.
"""

from ontheline.research.cpi.data import ift_mixture
from ontheline.research.cpi.metrics import CLASSES, classify_answers, conflict_accuracies, knowledge_filter
from ontheline.research.cpi.theory import TheoryConfig, train_theory

__all__ = ["CLASSES", "TheoryConfig", "classify_answers", "conflict_accuracies", "ift_mixture", "knowledge_filter",
           "train_theory"]  # fmt: skip
