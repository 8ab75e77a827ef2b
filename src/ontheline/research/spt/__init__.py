"""Specialized pretraining (SPT): mixing a small domain set into pretraining, and its overfitting scaling law.

Baek, Monti, Schwab, ... Maini ("The Finetuner's Fallacy", 2026) mix a fraction delta of
domain tokens (a small set, repeated many times) into pretraining and then finetune on the
domain; against pretraining on general text alone and finetuning (NPT, delta = 0) it gives a
lower domain loss with less forgetting, and a scaling law of the train loss and the train-test
gap predicts the best delta for a compute budget. Here:

- :mod:`~ontheline.research.spt.mixer`: the corpus (a general character stream, a small
  domain set with disjoint validation and test splits, :func:`make_corpus`), the mixer with
  exact token accounting and late insertion (:func:`mixed_batches`,
  :func:`domain_rows_per_step`), :func:`epochs` and the held-out check :func:`check_held_out`;
- :mod:`~ontheline.research.spt.metrics`: :func:`relative_gain`, :func:`compute_multiplier`
  (interpolated in log T), :func:`forgetting`;
- :mod:`~ontheline.research.spt.law`: the overfitting scaling law (:class:`Law`,
  :func:`fit_law`, :func:`overfitting_onset`, the post-finetuning correction, :func:`optimal_delta`)
  and the user-facing :func:`recommend_delta`;
- :mod:`~ontheline.research.spt.experiment`: the sweep on the lab's tiny GPT;
- :mod:`~ontheline.research.spt.repro`: ``ontheline repro spt [--quick]``.

Examples
--------
>>> from ontheline.research.spt import epochs, relative_gain
>>> epochs(200e9, 0.05, 300e6)  # 5% of 200B tokens over a 300M-token domain set
33.333333333333336
>>> round(relative_gain(2.0, 1.96), 6)
2.0

References
----------
.. [1] C. Baek, G. Monti, D. Schwab et al. and P. Maini, "The Finetuner's Fallacy: When to Pretrain with Your
   Finetuning Data", arXiv 2026, arXiv:2603.16177.
"""

from ontheline.research.spt.law import (
    PARAMS,
    Law,
    Recommendation,
    fit_correction,
    fit_law,
    measured_onset,
    optimal_delta,
    overfitting_onset,
    predict_post_ft,
    recommend_delta,
)
from ontheline.research.spt.metrics import compute_multiplier, forgetting, relative_gain, tokens_to_reach
from ontheline.research.spt.mixer import (
    CharChain,
    Corpus,
    check_held_out,
    domain_batches,
    domain_rows_per_step,
    epochs,
    make_corpus,
    mixed_batches,
    row_hash,
)

__all__ = ["PARAMS", "CharChain", "Corpus", "Law", "Recommendation", "check_held_out", "compute_multiplier",
           "domain_batches", "domain_rows_per_step", "epochs", "fit_correction", "fit_law", "forgetting",
           "make_corpus", "measured_onset", "mixed_batches", "optimal_delta", "overfitting_onset", "predict_post_ft",
           "recommend_delta", "relative_gain", "row_hash", "tokens_to_reach"]  # fmt: skip
