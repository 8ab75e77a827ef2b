"""GDE's calibration condition on the benchmark: ``ontheline repro gde``.

The method itself (CACE, the GDE gap, Theorem 4.2's bound) is part of the product:
:func:`ontheline.estimators.gde_diagnostics`. This topic holds only its reproduction.
"""

__all__: list[str] = []
