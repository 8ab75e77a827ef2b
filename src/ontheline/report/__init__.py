"""Self-contained HTML reports (inline SVG; nothing is fetched when the page opens) and matplotlib figures."""

from ontheline.report.bench import benchmark_report
from ontheline.report.estimate import estimate_report

__all__ = ["benchmark_report", "estimate_report"]
