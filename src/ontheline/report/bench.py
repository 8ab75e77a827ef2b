"""The benchmark's HTML report: summaries, the quality goals, one plot per shift."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np

from ontheline._progress import Progress
from ontheline.bench import tables
from ontheline.bench.score import ORACLE, ShiftScore, quality
from ontheline.bench.suite import BenchmarkResult
from ontheline.report.page import compressed, page, table
from ontheline.report.svg import Axes, Line, Series, scatter

_MAX_PAIRS = 250  # pairs drawn per plot: enough to see the line, light enough for 100+ plots


def benchmark_report(result: BenchmarkResult) -> str:
    """A self-contained HTML page for one benchmark run."""
    models = ", ".join(f"{n} models on {d}" for d, n in result.n_models.items())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>ontheline benchmark: {escape(result.title)}</h1>",
        f'<p class="meta">{escape(models)}; {len(result.select("all"))} shifts; '
        f"{result.seconds:.0f} s{' (every prediction read from the store)' if result.from_store else ''}; {stamp}.</p>",
        "<p>Each zoo is fitted on labelled ID validation data and estimates its accuracy on every shifted "
        "test set; the true OOD labels are used only to score the estimates. Errors are mean absolute "
        "errors in accuracy points. <em>oracle</em> is the accuracy line fitted with the OOD labels: the "
        "floor for any method that maps ID accuracy to OOD accuracy along a line.</p>",
        _quality_banner(result),
        "<h2>What agreement-on-the-line looks like here</h2>",
        "<p>Each blue point is a pair of models: how often they agree on ID and on OOD data, on probit axes; "
        "each orange point is a model's ID and OOD accuracy. Where the pairs lie on a line (left, the most "
        "linear shift), the models lie on a line with the same slope, which ALine reads off without OOD labels. "
        "Where they do not (right, the least linear), the R² says so. Hover a point to see the pair or model.</p>",
        _featured(result),
        "<h2>Where the agreement R² trusts the estimates, and where it flags them</h2>",
        table(*tables.trust_table(result)),
        "<h2>The trust threshold</h2><p>A failure is a shift where ALine-D is off by more than 5 points.</p>",
        table(*tables.threshold_table(result)),
        f"<h2>{escape(result.parts_heading())}</h2>",
        table(*tables.zoo_table(result)),
        "<h2>The baselines with and without temperature scaling</h2><p>Fitted per model on ID validation, "
        "as the ATC paper does; the tables above use the "
        + ("temperature-scaled baselines.</p>" if result.calibrate else "raw baselines (--no-calibrate).</p>"),
        table(*tables.ablation_table(result)),
        "<h2>Beyond the line: an answer on every shift</h2>",
        f"<p><em>auto</em> relies, on each shift, on the method that labelled shifts with the same label-free "
        f"diagnostics favoured; every method gets a calibrated 90% interval, and DIS² a lower bound on each "
        f"model's accuracy. Calibration: {escape(result.calibration)}. Coverage is the share of models whose true "
        "accuracy lies in the interval (percent).</p>",
        "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in tables.beyond_lines(result)) + "</ul>",
        table(*tables.beyond_table(result)),
        "<h2>Settings</h2>",
        table(*tables.settings_table(result)),
    ]
    for grouping in ("family", "dataset", "severity"):
        body += [f"<h2>By {grouping} (whole zoo)</h2>", table(*tables.summary_table(result, "all", grouping))]
    body += [
        "<h2>Does the agreement R² warn in advance?</h2>",
        "<p>Each point is a shift. Estimates go wrong where the agreement line stops being a line, and "
        "the R² is computed without a single OOD label.</p>",
        _r2_plot(result),
        "<h2>Every shift (whole zoo)</h2>",
        "<p>Rows in orange are flagged: the agreement R² is below "
        f"{result.min_r2}, so agreement-on-the-line may not hold there. Click a header to sort.</p>",
    ]
    header, rows = tables.shift_table(result)
    body.append(table(header, rows, flags=[not s.trusted for s in result.select("all")], element_id="shifts"))
    body.append(
        "<h2>Shift by shift</h2><p>Open a shift for its agreement plot (probit axes), estimated vs true accuracy, "
        "each method's error and its models. Hover a point to see the pair or model.</p>"
    )
    body += [_shift_details(s) for s in result.select("all")]
    return page(f"ontheline benchmark: {result.title}", "".join(body))


def _quality_banner(result: BenchmarkResult) -> str:
    lines = tables.quality_lines(result)
    verdicts = [q["met"] for zoo in result.zoos for q in quality(result.select(zoo)).values()]
    met = all(v is not False for v in verdicts)
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    verdict = "Quality goals met." if met else "Some quality goals are not met on this run."
    return f'<div class="banner {"ok" if met else "warn"}"><strong>{verdict}</strong><ul>{items}</ul></div>'


def _r2_plot(result: BenchmarkResult) -> str:
    plots = []
    for zoo in result.zoos[:2]:
        scores = [s for s in result.select(zoo) if s.agreement is not None and np.isfinite(s.mae()["aline-d"])]
        if not scores:
            continue
        points = np.array([[s.agreement.r2, s.mae()["aline-d"]] for s in scores])  # type: ignore[union-attr]
        tips = [
            f"{s.shift.dataset} {s.shift.name}: R² {r2:.3f}, ALine-D MAE {mae:.1f}"
            for s, (r2, mae) in zip(scores, points)
        ]
        axes = Axes("agreement R² (label-free)", f"ALine-D MAE, points ({zoo} zoo)", probit=False, same_scale=False)
        plots.append(scatter([Series("shifts", points, tips, "#1f77b4", radius=3.5)], [], axes, diagonal=False))
    return f'<div class="plots">{"".join(plots)}</div>'


def _featured(result: BenchmarkResult) -> str:
    scores = [s for s in result.select("all") if s.agreement is not None]
    if not scores:
        return "<p>No shift had an agreement line.</p>"
    ranked = sorted(scores, key=lambda s: s.agreement.r2)  # type: ignore[union-attr]
    figures = [
        f"<figure>{shift_plot(s)}<figcaption>{escape(s.shift.dataset)} · {escape(s.shift.name)}: agreement R² "
        f"{_r2(s)}, ALine-D MAE {s.mae()['aline-d']:.1f} points</figcaption></figure>"
        for s in (ranked[-1], ranked[0])
    ]
    return f'<div class="plots">{"".join(figures)}</div>'


def _shift_details(score: ShiftScore) -> str:
    verdict = (
        "Agreement-on-the-line holds: the ALine estimates can be trusted."
        if score.trusted
        else "Flagged: agreement-on-the-line may not hold here, and the estimates may be far off."
    )
    mae = score.mae()
    return (
        f"<details><summary>{escape(score.shift.dataset)} · {escape(score.shift.name)} · "
        f"{escape(score.shift.describe())} · agreement R² {_r2(score)}{'' if score.trusted else ' · flagged'}</summary>"
        + compressed(
            f'<p class="{"ok" if score.trusted else "warn"} banner">{verdict}</p>'
            f'<div class="plots">{shift_plot(score)}{_estimate_plot(score)}</div>'
            + table(["MAE (points)", *mae], [["this shift", *mae.values()]], sortable=False)
            + _auto_line(score)
            + table(*_model_table(score))
        )
        + "</details>"
    )


def _auto_line(score: ShiftScore) -> str:
    """Which method auto relied on here, and how its interval and the bounds did."""
    if score.auto is None:
        return ""
    method, bucket = score.auto
    cover = score.coverage().get("auto")
    bounds = "".join(
        f"; {escape(name)} held for {100 * b['held']:.0f}% of models, {b['mean_slack']:.1f} points below the truth on "
        "average"
        for name, b in score.bound_scores().items()
    )
    covered = "" if cover is None else f"; its 90% interval covered {100 * cover:.0f}% of models"
    return f"<p>auto relied on <strong>{escape(method)}</strong> (diagnostics bucket {escape(bucket)}){covered}{bounds}.</p>"


def _estimate_plot(score: ShiftScore) -> str:
    series = []
    for method, color in (("aline-d", "#1f77b4"), ("atc-mc", "#9467bd")):
        points = 100 * np.stack([score.ood_accuracy, score.estimates[method]], axis=1)
        if not np.isfinite(points).all():
            continue
        tips = [f"{m}: true {a:.1f}%, {method} {b:.1f}%" for m, (a, b) in zip(score.models, points)]
        series.append(Series(method, points, tips, color, radius=2.5, opacity=0.7))
    axes = Axes("true OOD accuracy, %", "estimated OOD accuracy, %", probit=False)
    return scatter(series, [], axes) if series else ""


def _model_table(score: ShiftScore) -> tuple[list[str], list[list[object]]]:
    methods = [m for m in score.estimates if m != ORACLE]
    auto = score.intervals.get("auto")
    header = ["model", "ID acc", "true OOD acc", *methods]
    header += ["auto low", "auto high"] if auto is not None else []
    header += [f"{b}: accuracy at least" for b in score.bounds]
    order = np.argsort(-score.ood_accuracy, kind="stable")
    rows = [
        [score.models[i], 100 * float(score.id_accuracy[i]), 100 * float(score.ood_accuracy[i])]
        + [_finite(100 * float(score.estimates[m][i])) for m in methods]
        + ([_finite(100 * float(auto[i, 0])), _finite(100 * float(auto[i, 1]))] if auto is not None else [])
        + [_finite(100 * float(b[i])) for b in score.bounds.values()]
        for i in order
    ]
    return header, rows


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def shift_plot(score: ShiftScore) -> str:
    """ID vs OOD agreement of model pairs and accuracy of models, on probit axes, with both lines."""
    models = score.models
    order = np.random.default_rng(0).permutation(len(score.pairs))[:_MAX_PAIRS]
    pairs, agreement = score.pairs[order], score.pair_agreement[order]
    pair_tips = [
        f"{models[i]} vs {models[j]}: agreement ID {a:.3f}, OOD {b:.3f}" for (i, j), (a, b) in zip(pairs, agreement)
    ]
    acc = np.stack([score.id_accuracy, score.ood_accuracy], axis=1)
    acc_tips = [f"{m}: accuracy ID {a:.3f}, OOD {b:.3f}" for m, (a, b) in zip(models, acc)]
    series = [
        Series("agreement (pairs)", agreement, pair_tips, "#1f77b4", radius=2.0, opacity=0.35),
        Series("accuracy (models)", acc, acc_tips, "#e6550d", radius=3.0),
    ]
    lines = []
    if score.agreement is not None:
        lines.append(
            Line(
                f"agreement line (R² {score.agreement.r2:.3f})", score.agreement.slope, score.agreement.bias, "#1f77b4"
            )
        )
    slope, bias, r2 = score.accuracy_line
    lines.append(Line(f"accuracy line (R² {r2:.3f})", slope, bias, "#e6550d", dash="5 3"))
    return scatter(series, lines, Axes("ID agreement or accuracy, % (probit scale)", "OOD, % (probit scale)"))


def _r2(score: ShiftScore) -> str:
    return "n/a" if score.agreement is None else f"{score.agreement.r2:.3f}"


def save_benchmark_figures(
    result: BenchmarkResult, folder: str | Path, *, progress: Progress | None = None
) -> list[Path]:
    """Each shift's agreement plot (whole zoo) as ``DATASET-SHIFT.png`` and ``.svg`` in ``folder``."""
    from ontheline.report.figures import MODEL, PAIR, Points, ProbitLine, probit_scatter, save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scores = result.select("all")
    paths: list[Path] = []
    for k, score in enumerate(scores):
        if progress is not None:
            progress("saving figures", k, len(scores))
        points = [
            Points("agreement (model pairs)", score.pair_agreement[:, 0], score.pair_agreement[:, 1], PAIR),
            Points("accuracy (models)", score.id_accuracy, score.ood_accuracy, MODEL),
        ]
        slope, bias, r2 = score.accuracy_line
        lines = [ProbitLine(f"accuracy line (R² {r2:.3f})", slope, bias, "--", MODEL["color"])]
        if score.agreement is not None:
            line = score.agreement
            lines.insert(0, ProbitLine(f"agreement line (R² {line.r2:.3f})", line.slope, line.bias))
        title = f"{score.shift.dataset}: {score.shift.name}{'' if score.trusted else ' (flagged)'}"
        paths += save_figure(
            probit_scatter(points, lines, title=title), folder, f"{score.shift.dataset}-{score.shift.name}"
        )
    if progress is not None:
        progress("saving figures", len(scores), len(scores))
    return paths
