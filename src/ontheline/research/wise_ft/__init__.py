"""Weight interpolation between checkpoints (WiSE-FT), and its pass@k reproduction (``ontheline repro wise-ft``)."""

from ontheline.research.wise_ft.weights import (
    interpolate,
    interpolate_files,
    mix,
)

__all__ = ["interpolate", "interpolate_files", "mix"]
