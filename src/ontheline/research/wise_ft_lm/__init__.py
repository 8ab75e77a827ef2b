"""WiSE-FT for reasoning on a real (tiny) language model: ``ontheline repro wise-ft-lm``.

Dang, Baek, Wen, Kolter and Raghunathan, "Weight Ensembling Improves Reasoning in Language
Models" (COLM 2025, arXiv:2504.10478), on the lab of :mod:`ontheline.research.lm`:
:mod:`.experiment` runs one seed, :mod:`.repro` the seeds, the goals and the tables.
"""
