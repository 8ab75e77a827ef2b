"""Premature confidence in chains of thought, and progressive confidence shaping (PCS), on the lab.

A chain of thought is *premature* when the model is already confident of its answer before
the reasoning that should produce it, and *progressive* when the answer's probability grows
as the reasoning proceeds. This topic measures it and shapes it:

- :func:`confidence_trajectory` (and :func:`confidence_trajectories` for many): the probability
  of the final answer at ``K`` truncation points of the chain of thought, by one exact forward
  pass or the paper's Monte-Carlo probe, on the lab's GPT or any local Hugging Face causal LM;
  :func:`cot_span` finds the chain of thought;
- the scores (numpy only): :func:`progressiveness` (Spearman's rho against position),
  :func:`classify` (progressive when ``rho >= tau``), :func:`overconfidence` (``<c, w>``,
  ``w =`` :func:`pcs_weights`);
- PCS: :func:`pcs_penalty`, :func:`pcs_advantages` (the penalty in GRPO's rewards or
  advantages) and :func:`pcs_reward`, a reward for :func:`ontheline.research.lm.grpo`;
- ``ontheline repro pcs`` (:mod:`ontheline.research.confidence.repro`): outcome-only GRPO
  against GRPO with PCS on digit sums, on a hard and an easy task.

References
----------
.. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature Confidence in
   Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

Examples
--------
>>> from ontheline.research.confidence import classify, overconfidence, progressiveness
>>> early, step_by_step = [1, 1, 1, 1, 1, 0.8], [0, 0, 0, 0.2, 0.6, 1]
>>> classify(early), classify(step_by_step)
('premature', 'progressive')
>>> round(overconfidence(early), 2), round(progressiveness(step_by_step), 2)
(0.1, 0.94)
"""

from ontheline.research.confidence.scores import LABELS, classify, overconfidence, pcs_weights, progressiveness
from ontheline.research.confidence.shaping import MODES, pcs_advantages, pcs_penalty, pcs_reward
from ontheline.research.confidence.trajectory import (
    ANSWER_SUFFIX,
    METHODS,
    Trajectory,
    confidence_trajectories,
    confidence_trajectory,
    cot_span,
)

__all__ = [
    "ANSWER_SUFFIX",
    "LABELS",
    "METHODS",
    "MODES",
    "Trajectory",
    "classify",
    "confidence_trajectories",
    "confidence_trajectory",
    "cot_span",
    "overconfidence",
    "pcs_advantages",
    "pcs_penalty",
    "pcs_reward",
    "pcs_weights",
    "progressiveness",
]
