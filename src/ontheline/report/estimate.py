"""The report of one ``estimate`` run: trust banner, the agreement plot, the model table, and the errors when labels exist."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

import numpy as np

from ontheline.agreement import fit_line
from ontheline.evaluate import Evaluation
from ontheline.report.figures import probit_axis
from ontheline.report.page import page, table
from ontheline.report.svg import Axes, Line, Series, scatter

_MAX_PAIRS = 3000  # pairs drawn; a zoo of 80 models has 3160, and more only slows the page
_WHAT_IT_MEANS = {
    True: (
        "The estimates below can be used to compare and choose models. On the built-in benchmark, ALine-D "
        "was within about 1 accuracy point on average where the R² passed this threshold."
    ),
    False: (
        "Do not choose a model on these numbers alone. Label a few hundred OOD samples to check them, or try "
        "test-time adaptation, which often brings the line back."
    ),
}


def estimate_report(evaluation: Evaluation, *, title: str = "ontheline estimate", source: str = "") -> str:
    """A self-contained HTML page for one evaluation (see :func:`ontheline.evaluate`)."""
    methods = ", ".join(evaluation.results)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = f"{len(evaluation.models)} models; methods: {methods}; ranked by {evaluation.ranking_method}; {stamp}."
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(source + "; " if source else "")}{escape(meta)}</p>',
        _trust_banner(evaluation),
        "<h2>Agreement on the line</h2>",
        "<p>Each blue point is a pair of models: how often they agree on the labelled ID data and on the "
        "unlabelled OOD data, on probit axes. When the points lie on a line, the models' accuracies lie on a "
        "line with the same slope, and that is what the ALine estimates use. Hover a point to see the pair or "
        "model.</p>",
        f'<div class="plots">{agreement_plot(evaluation)}</div>',
        "<h2>Models</h2><p>Accuracies in percent. Click a header to sort.</p>",
        table(*model_table(evaluation)),
    ]
    if evaluation.ood_accuracy is not None:
        body += [
            "<h2>Estimated vs true accuracy</h2>",
            "<p>The OOD labels were used only for this section. Mean absolute error per method, in accuracy "
            "points:</p>",
            table(["method", "MAE (points)"], [[m, v] for m, v in evaluation.mae().items()]),
            f'<div class="plots">{"".join(_estimate_plot(evaluation, m) for m in evaluation.results)}</div>',
        ]
    if evaluation.gde.get("id") is not None:
        body += [
            "<h2>Is GDE justified here? The ensemble's calibration</h2>",
            "<p>GDE estimates accuracy from agreement. Jiang et al. (ICLR 2022, Theorem 4.2) bound how far the "
            "zoo's expected disagreement can be from its expected error by the class-aggregated calibration "
            "error (CACE) of the ensemble that votes with every model. Each point of the reliability diagram "
            "is a level of the ensemble's vote share q for a class; its height is how often that class is the "
            "true one. On the diagonal the ensemble is calibrated and GDE holds; labels are needed, so this is "
            "checked on the labelled sets only.</p>",
            table(*gde_rows(evaluation)),
            f'<div class="plots">{reliability_plot(evaluation)}</div>',
        ]
    notes = [f"{m} skipped: {why}" for m, why in evaluation.skipped.items()] + list(evaluation.warnings)
    notes += [f"{m}: {note}" for m, r in evaluation.results.items() for note in r.notes]
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    if evaluation.settings:
        body += [
            "<h2>Settings</h2><p>Each method's hyperparameters in this run.</p>",
            table(*settings_rows(evaluation.settings)),
        ]
    return page(title, "".join(body))


def settings_rows(settings: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a settings table: a method per row, its hyperparameters as ``name=value``."""
    return ["method", "settings"], [[m, ", ".join(f"{k}={v}" for k, v in p.items())] for m, p in settings.items()]


def _trust_banner(evaluation: Evaluation) -> str:
    trusted = evaluation.trusted
    return (
        f'<div class="banner {"ok" if trusted else "warn"}" id="trust"><strong>{escape(evaluation.trust_message())}'
        f"</strong><p>{escape(_WHAT_IT_MEANS[trusted])}</p></div>"
    )


def agreement_plot(evaluation: Evaluation) -> str:
    """Pairs' ID vs OOD agreement with the line; models' estimated and, with labels, true accuracy."""
    result = evaluation.results[evaluation.ranking_method]
    models = evaluation.models
    series, lines = [], []
    if result.id_agreement is not None and result.ood_agreement is not None:
        upper = np.stack(np.triu_indices(len(models), k=1), axis=1)
        pairs = upper[np.random.default_rng(0).permutation(len(upper))[:_MAX_PAIRS]]
        points = np.stack(
            [result.id_agreement[pairs[:, 0], pairs[:, 1]], result.ood_agreement[pairs[:, 0], pairs[:, 1]]], 1
        )
        tips = [
            f"{models[i]} vs {models[j]}: agreement ID {a:.3f}, OOD {b:.3f}" for (i, j), (a, b) in zip(pairs, points)
        ]
        series.append(Series("agreement (pairs)", points, tips, "#1f77b4", radius=2.0, opacity=0.35))
    if result.line is not None:
        lines.append(Line(f"agreement line (R² {result.line.r2:.3f})", result.line.slope, result.line.bias, "#1f77b4"))
    estimated = np.stack([result.id_accuracy, result.ood_accuracy], axis=1)
    series.append(
        Series(
            f"{result.method} estimate (models)", estimated,
            [f"{m}: ID accuracy {a:.3f}, estimated OOD {b:.3f}" for m, (a, b) in zip(models, estimated)],
            "#2ca02c", radius=3.0,
        )
    )  # fmt: skip
    truth = evaluation.ood_accuracy
    if truth is not None:
        actual = np.stack([result.id_accuracy, truth], axis=1)
        tips = [f"{m}: ID accuracy {a:.3f}, true OOD {b:.3f}" for m, (a, b) in zip(models, actual)]
        series.append(Series("true accuracy (models)", actual, tips, "#e6550d", radius=3.0))
        x = probit_axis(result.id_accuracy)
        if np.ptp(x) > 0:
            slope, bias, r2 = fit_line(x, probit_axis(truth))
            lines.append(Line(f"accuracy line (R² {r2:.3f})", slope, bias, "#e6550d", dash="5 3"))
    axes = Axes("ID agreement or accuracy, % (probit scale)", "OOD, % (probit scale)", width=520, height=440)
    return scatter(series, lines, axes)


def model_table(evaluation: Evaluation) -> tuple[list[str], list[list[object]]]:
    """Rank, ID accuracy, every method's estimate, the DIS² bound, auto's calibrated interval, the
    ranking method's interval, and the truth when known."""
    ranked = evaluation.ranking_method
    result = evaluation.results[ranked]
    truth = evaluation.ood_accuracy
    has_interval = result.interval is not None
    header = ["rank", "model", "ID acc", *evaluation.results]
    bound = evaluation.bounds.get("dis2")
    header += ["accuracy at least (dis2)"] if bound is not None else []
    auto = evaluation.results.get("auto")
    auto_interval = None if auto is None else auto.interval
    header += ["auto low (90%)", "auto high (90%)"] if auto_interval is not None else []
    header += [f"{ranked} low", f"{ranked} high", "could be best"] if has_interval else []
    header += ["true OOD acc", f"{ranked} error"] if truth is not None else []
    index = {m: i for i, m in enumerate(evaluation.models)}
    rows = []
    for entry in evaluation.ranking():
        i = index[entry.name]
        row: list[object] = [entry.rank, entry.name, 100 * float(result.id_accuracy[i])]
        row += [100 * float(r.ood_accuracy[i]) for r in evaluation.results.values()]
        if bound is not None:
            row.append(100 * float(bound.accuracy_at_least[bound.models.index(entry.name)]))
        if auto_interval is not None:
            row += [100 * float(auto_interval[i, 0]), 100 * float(auto_interval[i, 1])]
        if has_interval:
            row += [_pct(entry.low), _pct(entry.high), entry.tied_with_best]
        if truth is not None:
            row += [100 * float(truth[i]), 100 * float(result.ood_accuracy[i] - truth[i])]
        rows.append(row)
    return header, rows


def _estimate_plot(evaluation: Evaluation, method: str) -> str:
    assert evaluation.ood_accuracy is not None
    result = evaluation.results[method]
    points = 100 * np.stack([evaluation.ood_accuracy, result.ood_accuracy], axis=1)
    tips = [f"{m}: true {a:.1f}%, {method} {b:.1f}%" for m, (a, b) in zip(evaluation.models, points)]
    axes = Axes("true OOD accuracy, %", f"{method} estimate, %", probit=False, width=300, height=280)
    return scatter([Series(method, points, tips, "#1f77b4", radius=3.0)], [], axes)


def gde_rows(evaluation: Evaluation) -> tuple[list[str], list[list[object]]]:
    """GDE's check per labelled set: CACE (vote ensemble, exact levels and binned; mean softmax), error, disagreement, gap."""
    header = ["data", "CACE", "CACE (binned)", "mean-softmax CACE", "E[Err]", "E[Dis]", "|gap|", "|gap| <= CACE"]
    rows: list[list[object]] = []
    for key, d in evaluation.gde.items():
        if d is not None:
            softmax = None if d.softmax_cace is None else round(d.softmax_cace, 4)
            rows.append([key.upper(), round(d.cace, 4), round(d.cace_binned, 4), softmax, round(d.expected_error, 4),
                         round(d.expected_disagreement, 4), round(d.gap, 4), d.bound_holds])  # fmt: skip
    return header, rows


def reliability_plot(evaluation: Evaluation) -> str:
    """The class-aggregated reliability diagram of the vote ensemble (and the mean softmax) on each labelled set."""
    colors = {"id": ("#1f77b4", "#9ecae1"), "ood": ("#e6550d", "#fdae6b")}
    series = []
    for key, d in evaluation.gde.items():
        if d is None:
            continue
        curves = [(f"{key.upper()} vote ensemble", d.curve, colors[key][0])]
        if d.softmax_curve is not None:
            curves.append((f"{key.upper()} mean softmax ({d.bins} bins)", d.softmax_curve, colors[key][1]))
        for label, c, color in curves:
            points = np.stack([c.confidence, c.frequency], axis=1)
            tips = [f"{label}: q {q:.3f}, frequency {f:.3f}, weight {w:.4f}" for q, f, w in zip(*points.T, c.weight)]
            series.append(Series(label, points, tips, color, radius=3.5))
    axes = Axes(
        "ensemble confidence q for a class", "how often that class is true", probit=False, width=420, height=380
    )
    return scatter(series, [], axes)


def _pct(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else 100 * value
