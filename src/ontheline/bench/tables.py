"""The benchmark's tables as plain rows, rendered as aligned text (terminal) or Markdown (results files)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ontheline._io import printable
from ontheline.agreement import MIN_DISTINCT_PAIRS
from ontheline.bench.calibrate import beyond_summary
from ontheline.bench.score import group_mae, mean_finite, quality, summarise
from ontheline.bench.suite import ABLATED, BenchmarkResult

Row = list[Any]


def summary_table(result: BenchmarkResult, zoo: str, grouping: str) -> tuple[list[str], list[Row]]:
    """Mean MAE (points) per method for each group of shifts, with shift and trust counts."""
    groups = result.summary[zoo][grouping]
    methods = result.methods
    header = [grouping, "shifts", "trusted", "mean R²", *methods]
    rows = [
        [name, g["n_shifts"], g["n_trusted"], g["mean_agreement_r2"], *(g["mae"].get(m) for m in methods)]
        for name, g in groups.items()
    ]
    return header, rows


def trust_table(result: BenchmarkResult, zoo: str = "all") -> tuple[list[str], list[Row]]:
    """Mean MAE per method on the shifts the R² trusts, on those it flags, and on all of them."""
    methods = result.methods
    header = ["shifts", "count", *methods]
    scores = result.select(zoo)
    rows = []
    for label, chosen in (
        (f"trusted (agreement R² >= {result.min_r2})", [s for s in scores if s.trusted]),
        ("flagged", [s for s in scores if not s.trusted]),
        ("all", scores),
    ):
        if chosen:
            mae = summarise(chosen)[zoo]["overall"]["all"]["mae"]
            rows.append([label, len(chosen), *(mae.get(m) for m in methods)])
    return header, rows


def ablation_table(result: BenchmarkResult) -> tuple[list[str], list[Row]]:
    """Each confidence baseline's MAE with and without temperature scaling, on trusted, flagged and all shifts."""
    header = ["method", "probabilities", "trusted", "flagged", "all"]
    main, other = group_mae(result.select("all")), group_mae([s for s in result.ablation if s.zoo == "all"])
    rows: list[Row] = []
    for method in [m for m in result.methods if m in ABLATED]:
        for calibrated, mae in sorted(((result.calibrate, main), (not result.calibrate, other)), reverse=True):
            label = "temperature-scaled" if calibrated else "raw"
            rows.append([method, label, *(mae.get(g, {}).get(method) for g in ("trusted", "flagged", "all"))])
    return header, rows


def settings_table(result: BenchmarkResult) -> tuple[list[str], list[Row]]:
    """Every method's hyperparameters in this run."""
    return ["method", "settings"], [
        [m, ", ".join(f"{k}={v}" for k, v in params.items())] for m, params in result.settings.items()
    ]


def threshold_table(
    result: BenchmarkResult, zoo: str = "all", thresholds: Sequence[float] = (0.8, 0.9, 0.95, 0.99)
) -> tuple[list[str], list[Row]]:
    """How the trust threshold trades coverage for precision: the quality goals at several R² cut-offs."""
    header = ["R² threshold", "trusted shifts", "ALine-D MAE (trusted)", "ATC-MC MAE (trusted)", "failures flagged (%)"]
    scores = [s for s in result.select(zoo) if s.agreement is not None]
    failures = [s for s in scores if s.mae()["aline-d"] > 5]
    rows = []
    for threshold in thresholds:
        # The whole trust rule at this R² threshold (distinct pairs and spread as well).
        trusted = [s.mae() for s in scores if not s.agreement.trust_issues(threshold)]  # type: ignore[union-attr]
        flagged = sum(bool(s.agreement.trust_issues(threshold)) for s in failures)  # type: ignore[union-attr]
        rows.append(
            [
                f"{threshold:g}",
                len(trusted),
                mean_finite([m["aline-d"] for m in trusted]) if trusted else None,
                mean_finite([m["atc-mc"] for m in trusted]) if trusted else None,
                100 * flagged / len(failures) if failures else None,
            ]
        )
    return header, rows


def zoo_table(result: BenchmarkResult) -> tuple[list[str], list[Row]]:
    """Overall mean MAE for the whole zoo and for each of its parts (neural and non-neural models, or backbones)."""
    methods = result.methods
    header = ["zoo", "models", "shifts", "trusted", "mean R²", *methods]
    rows = []
    for zoo in result.zoos:
        scores = result.select(zoo)
        if scores:
            g = result.summary[zoo]["overall"]["all"]
            n_models = len(scores[0].models)
            rows.append(
                [
                    zoo,
                    n_models,
                    g["n_shifts"],
                    g["n_trusted"],
                    g["mean_agreement_r2"],
                    *(g["mae"].get(m) for m in methods),
                ]
            )
    return header, rows


def shift_table(result: BenchmarkResult, zoo: str = "all") -> tuple[list[str], list[Row]]:
    """One row per shift: agreement and accuracy R², the trust flag and every method's MAE."""
    methods = result.methods
    header = ["dataset", "shift", "agreement R²", "accuracy R²", "trusted", *methods]
    rows = []
    for s in result.select(zoo):
        mae = s.mae()
        r2 = None if s.agreement is None else s.agreement.r2
        rows.append([s.shift.dataset, s.shift.name, r2, s.accuracy_line[2], s.trusted, *(mae.get(m) for m in methods)])
    return header, rows


def beyond_table(result: BenchmarkResult) -> tuple[list[str], list[Row]]:
    """Per trust group and shift family: ``auto`` against ALine-D and the best single method, the
    coverage of the calibrated (90%) and bootstrap (95%) intervals, and how the DIS² bound held."""
    header = ["shifts", "count", "auto MAE", "relied on", "aline-d MAE", "best single (MAE)", "auto coverage",
              "aline-d coverage", "aline-d bootstrap coverage", "dis2 held", "dis2 slack"]  # fmt: skip
    beyond = beyond_summary(result.select("all"))
    rows: list[Row] = []
    for name, g in (beyond or {"groups": {}})["groups"].items():
        mae, best, dis2 = g["mae"], g["best_single"], g["bounds"].get("dis2", {})
        relied = ", ".join(f"{m} {n}" for m, n in sorted(g["relied_on"].items(), key=lambda kv: -kv[1]))
        rows.append([
            name.removeprefix("family:"), g["n_shifts"], mae.get("auto"), relied, mae.get("aline-d"),
            None if best is None else f"{best} ({mae[best]:.2f})", _pct(g["coverage"].get("auto")),
            _pct(g["coverage"].get("aline-d")), _pct(g["bootstrap_coverage"].get("aline-d")),
            _pct(dis2.get("held")), dis2.get("mean_slack"),
        ])  # fmt: skip
    return header, rows


def beyond_lines(result: BenchmarkResult) -> list[str]:
    """The issue's goals for ``auto``, the intervals and the bound, one sentence each."""
    beyond = beyond_summary(result.select("all"))
    if beyond is None:
        return []
    words = {
        "auto_mae_at_most_5": "auto's mean MAE over all shifts at most 5 points",
        "auto_below_every_method_on_every_family": "auto below every single method on every family",
        "auto_coverage_at_least_88_trusted_and_flagged": "auto's 90% intervals cover >= 88% on trusted and on flagged shifts",
        "dis2_holds_on_95": "the DIS² bound holds on >= 95% of (model, shift) pairs",
        "auto_no_worse_than_aline_d_on_trusted": "auto no worse than ALine-D on the trusted shifts",
    }
    return [f"{words[k]}: {'-' if v is None else 'met' if v else 'not met'}." for k, v in beyond["goals"].items()]


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def quality_lines(result: BenchmarkResult) -> list[str]:
    """The quality goals, one sentence per zoo and goal."""
    lines = []
    for zoo in result.zoos:
        scores = result.select(zoo)
        if not scores:
            continue
        q = quality(scores)
        good, bad = q["trusted_shifts"], q["flagged_failures"]
        if good["n_shifts"]:
            lines.append(
                f"{zoo}: on the {good['n_shifts']} trusted shifts (R² >= {result.min_r2}), ALine-D MAE "
                f"{good['aline_d_mae']:.2f} vs {good['best_baseline']} {good['best_baseline_mae']:.2f} points, the best "
                f"baseline (goal <= 1.5 and below every baseline: {'met' if good['met'] else 'not met'})."
            )
        else:
            lines.append(f"{zoo}: no shift was trusted (R² >= {result.min_r2}).")
        if bad["n_shifts"]:
            lines.append(
                f"{zoo}: ALine-D is off by more than 5 points on {bad['n_shifts']} shifts; the trust check flagged "
                f"{bad['n_flagged']} of them ({100 * bad['share_flagged']:.0f}%, goal >= 90%: "
                f"{'met' if bad['met'] else 'not met'})."
            )
        else:
            lines.append(f"{zoo}: ALine-D is within 5 points on every shift.")
    return lines


def text(header: Sequence[str], rows: Sequence[Row]) -> str:
    """Columns aligned for a terminal; the first column left, numbers right (control characters escaped)."""
    cells = [list(header)] + [[printable(_format(v)) for v in row] for row in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(header))]
    lines = ["  ".join(v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(header: Sequence[str], rows: Sequence[Row]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if c == 0 else "---:" for c in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return "-" if value != value else f"{value:.2f}"
    return str(value)


def results_markdown(result: BenchmarkResult, command: str, date: str) -> str:
    """The recorded results file: how it was produced, then every table."""
    models = ", ".join(f"{n} models on {d}" for d, n in result.n_models.items())
    parts = [
        f"# Benchmark results: `{result.title}`",
        "",
        f"Produced by `{command}` on {date}; {models}; {len(result.select('all'))} shifts; "
        f"{result.seconds:.0f} s{' with every prediction read from the store' if result.from_store else ''}.",
        "Mean absolute error in accuracy points; `oracle` is the accuracy line fitted with the OOD labels. "
        f"A shift is trusted when the agreement line's R² >= {result.min_r2}, over at least "
        f"{MIN_DISTINCT_PAIRS} distinct pairs whose ID agreements spread beyond their sampling noise (docs/trust.md).",
        "",
        "## Quality goals",
        "",
        *[f"- {line}" for line in quality_lines(result)],
        "",
        "## Trusted and flagged shifts (whole zoo)",
        "",
        markdown(*trust_table(result)),
        "",
        "## The trust threshold (whole zoo)",
        "",
        "A failure is a shift where ALine-D is off by more than 5 points.",
        "",
        markdown(*threshold_table(result)),
        "",
        f"## {result.parts_heading()}",
        "",
        markdown(*zoo_table(result)),
        "",
        "## Ablation: the confidence baselines with and without temperature scaling (whole zoo)",
        "",
        "Temperature scaling is fitted per model on ID validation (as the ATC paper does); the"
        " main tables use " + ("the scaled baselines." if result.calibrate else "the raw baselines (--no-calibrate)."),
        "",
        markdown(*ablation_table(result)),
        "",
        "## Beyond the line: auto, calibrated intervals and the DIS² bound (whole zoo)",
        "",
        f"`auto` and the calibrated 90% intervals: {result.calibration}. Coverage is the share of models whose "
        "true accuracy lies in the interval (percent); the bootstrap intervals are ALine-D's own (95% nominal, "
        "sampling error only). `dis2 held` is the share of models whose true accuracy is at least the DIS² bound, "
        "`dis2 slack` the mean distance above it (points). See docs/beyond-the-line.md.",
        "",
        *[f"- {line}" for line in beyond_lines(result)],
        "",
        markdown(*beyond_table(result)),
        "",
        "## Settings",
        "",
        markdown(*settings_table(result)),
    ]
    for grouping in ("family", "dataset", "severity"):
        for zoo in result.zoos[:2]:
            parts += ["", f"## By {grouping} ({zoo} zoo)", "", markdown(*summary_table(result, zoo, grouping))]
    parts += ["", "## Every shift (whole zoo)", "", markdown(*shift_table(result)), ""]
    return "\n".join(parts)
