"""Agreement-on-the-line for foundation models (Saxena et al., NeurIPS 2024), on sentence embeddings.

One pretrained backbone, many linear probes: :func:`build_zoo` trains a zoo for each source
of diversity (random head, data order, data subsets, two backbones together);
:func:`score_zoo` gives each shift's agreement and accuracy lines and every estimator's error;
:func:`paper_finding` tests the paper's claim. The reproduction is ``ontheline repro fm-agl``
(:mod:`.repro`); the recipe search on the tuning set is :mod:`.search`.
"""

from ontheline.research.fm_agl.lines import MIXED, SCORED, SOURCES, build_zoo, paper_finding, score_zoo

__all__ = ["MIXED", "SCORED", "SOURCES", "build_zoo", "paper_finding", "score_zoo"]
