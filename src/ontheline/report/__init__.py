"""Self-contained HTML reports and their plots (inline SVG; nothing is fetched when the page opens)."""

from ontheline.report.bench import benchmark_report

__all__ = ["benchmark_report"]
