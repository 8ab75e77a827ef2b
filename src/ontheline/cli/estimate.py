"""``ontheline estimate`` and ``ontheline report``: the estimates on the user's own NPZ files of predictions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ontheline._io import check_output, printable, read_npz
from ontheline._validation import InputError
from ontheline.cli._common import (
    Parser,
    check_folder,
    data_errors,
    non_negative_int,
    open_unit_float,
    pct,
    to_json,
    unit_float,
    writing,
)
from ontheline.estimators import METHODS
from ontheline.evaluate import Evaluation, evaluate
from ontheline.predictions import Predictions, as_predictions

_SCORE_KEYS = ("probs", "logits", "preds")
_KINDS: dict[str, Literal["probs", "logits", "labels"]] = {"probs": "probs", "logits": "logits", "preds": "labels"}
_ONE_PER = {"models": "model", "classes": "class", "labels": "sample"}


def register(sub: Any) -> None:
    """Add ``estimate`` and ``report`` to the subparsers ``sub``."""
    common = Parser(add_help=False)
    add_estimate_options(
        common,
        id_help="NPZ with labels, probs|logits|preds and models (labelled ID data)",
        ood_help="NPZ with probs|logits|preds and models; labels optional",
        title="ontheline estimate",
    )

    est = sub.add_parser("estimate", parents=[common], help="estimate OOD accuracy from NPZ files of predictions")
    est.add_argument("--format", choices=("table", "json"), default="table")
    est.add_argument("--report", metavar="FILE", help="also write the HTML report to this file")
    est.set_defaults(run=run_estimate, report_flag="--report")

    report = sub.add_parser(
        "report", parents=[common], help="write the HTML report (and --plots) of an estimate, print nothing"
    )
    report.add_argument("--out", dest="report", default="report.html", help="the HTML file to write")
    report.set_defaults(run=run_report, report_flag="--out")


def add_estimate_options(parser: Any, *, id_help: str, ood_help: str, title: str) -> None:
    """The options of every command that ends in an estimate: the methods and their settings,
    ``--id`` and ``--ood`` (described by ``id_help`` and ``ood_help``), ``--plots`` and ``--title``."""
    parser.add_argument(
        "--method",
        action="append",
        choices=[*METHODS, "auto"],
        help="a method to run (repeatable; default: all, and auto, which runs them all to choose among them)",
    )
    parser.add_argument(
        "--bootstrap", type=non_negative_int, default=200, help="resamples for the ALine intervals (0: none)"
    )
    parser.add_argument("--id", required=True, help=id_help)
    parser.add_argument("--ood", required=True, help=ood_help)
    parser.add_argument("--min-r2", type=unit_float, default=0.95, help="trust threshold on the agreement line's R²")
    parser.add_argument(
        "--keep", nargs=2, type=open_unit_float, default=[0.05, 0.98], metavar=("LOW", "HIGH"),
        help="the agreement filter: pairs with ID and OOD agreement in [LOW, HIGH] make the line (default 0.05 0.98)",
    )  # fmt: skip
    parser.add_argument(
        "--no-calibrate", dest="calibrate", action="store_false",
        help="the raw confidence and transport baselines (default: temperature-scaled on the ID data)",
    )  # fmt: skip
    parser.add_argument(
        "--no-bounds", dest="bounds", action="store_false",
        help="skip the DIS² lower bound ('accuracy at least'; a critic is trained per model)",
    )  # fmt: skip
    parser.add_argument("--plots", metavar="DIR", help="also save the figures as PNG and SVG in this folder")
    parser.add_argument("--title", default=title, help="the report's title")


def run_estimate(args: argparse.Namespace) -> None:
    check_outputs(args)
    evaluation = _evaluate_files(args)
    print_evaluation(evaluation, args.format)
    write_outputs(evaluation, args)


def run_report(args: argparse.Namespace) -> None:
    check_outputs(args)
    evaluation = _evaluate_files(args)
    _print_notes(evaluation)
    write_outputs(evaluation, args)


def print_evaluation(evaluation: Evaluation, fmt: str) -> None:
    """What ``estimate`` prints: the JSON object (``fmt`` 'json'), or the table with the notes on stderr."""
    if fmt == "json":
        print(to_json(evaluation.to_dict()), end="")
    else:
        print(format_table(evaluation))
        _print_notes(evaluation)


def load_npz(path: str, role: str, *, labels_required: bool) -> tuple[Predictions, np.ndarray | None]:
    """Read one NPZ of predictions: ``labels``, exactly one of ``probs`` / ``logits`` / ``preds``, ``models``, optional ``classes``."""
    flag = f"--{role}"
    arrays = read_npz(path, flag)
    present = [k for k in _SCORE_KEYS if k in arrays]
    if len(present) != 1:
        found = f"found {present}" if present else f"found keys {sorted(arrays)}"
        raise InputError(f"{flag} file {path!r} must hold exactly one of 'probs', 'logits' or 'preds'; {found}.")
    if labels_required and "labels" not in arrays:
        raise InputError(f"{flag} file {path!r} has no 'labels' key; the ID file needs the true labels (n_samples,).")
    for key, one in _ONE_PER.items():
        if key in arrays and arrays[key].ndim != 1:
            raise InputError(
                f"{flag} file {path!r}: '{key}' must be a 1-D array, one entry per {one}; got shape {arrays[key].shape}."
            )
    kind = _KINDS[present[0]]
    models = arrays["models"].tolist() if "models" in arrays else None
    classes = arrays["classes"].tolist() if "classes" in arrays else None
    with data_errors(str(path)):
        preds = as_predictions(
            arrays[present[0]], models=models, classes=classes, kind=kind, name=f"{flag} '{present[0]}'"
        )
    return preds, arrays.get("labels")


def check_keep(args: argparse.Namespace) -> None:
    """``--keep LOW HIGH`` must have LOW < HIGH."""
    if args.keep[0] >= args.keep[1]:
        raise InputError(
            f"--keep LOW HIGH needs LOW < HIGH; got {args.keep[0]:g} {args.keep[1]:g}. Try --keep 0.05 0.98."
        )


def _evaluate_files(args: argparse.Namespace) -> Evaluation:
    check_keep(args)
    id_preds, id_labels = load_npz(args.id, "id", labels_required=True)
    ood_preds, ood_labels = load_npz(args.ood, "ood", labels_required=False)
    # Each file is valid on its own here; how the two fit together (models, samples, classes) is
    # checked by evaluate, whose input checks raise InputError naming id_* and ood_*.
    return evaluate(
        id_preds, id_labels, ood_preds, methods=args.method, ood_labels=ood_labels,
        min_r2=args.min_r2, n_bootstrap=args.bootstrap, keep=tuple(args.keep), calibrate=args.calibrate,
        bounds=("dis2",) if args.bounds else (),
    )  # fmt: skip


def format_table(evaluation: Evaluation) -> str:
    """The ranked table of every model's estimates (with the truth and the MAE when known), then the trust verdict."""
    methods = list(evaluation.results)
    truth = evaluation.ood_accuracy
    rank = {r.name: r.rank for r in evaluation.ranking()}
    bound = evaluation.bounds.get("dis2")
    header = ["rank", "model", "ID acc", *methods] + (["accuracy at least"] if bound is not None else [])
    header += ["OOD acc (true)"] if truth is not None else []
    first = next(iter(evaluation.results.values()))
    rows = []
    for i, name in sorted(enumerate(evaluation.models), key=lambda item: rank[item[1]]):
        cells = [str(rank[name]), printable(name), pct(first.id_accuracy[i])]
        cells += [_estimate_cell(evaluation, m, i) for m in methods]
        if bound is not None:
            cells.append(pct(bound.accuracy_at_least[bound.models.index(name)]))
        if truth is not None:
            cells.append(pct(truth[i]))
        rows.append(cells)
    if truth is not None:
        maes = [f"{v:.2f}" for v in evaluation.mae().values()]
        rows.append(["", "MAE (points)", "", *maes, *[""] * (bound is not None), ""])
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        "  ".join(str(c).rjust(w) if k != 1 else str(c).ljust(w) for k, (c, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [evaluation.trust_message(), f"Ranked by {evaluation.ranking_method}.", *gde_notes(evaluation)]
    if bound is not None:
        notes.append(
            f"accuracy at least: the DIS² lower bound (dis2), holding with probability {1 - bound.delta:g} per model "
            "if the critic finds at least the discrepancy the true labels have (docs/dis2.md)."
        )
    return "\n".join([*lines, "", *notes])


def gde_notes(evaluation: Evaluation) -> list[str]:
    """One line per labelled set: GDE's calibration check (CACE of the zoo's vote ensemble against the GDE gap)."""
    lines = []
    for key, where in (("id", "ID data"), ("ood", "OOD data")):
        d = evaluation.gde.get(key)
        if d is None:
            continue
        softmax = "" if d.softmax_cace is None else f"; mean-softmax CACE {d.softmax_cace:.3f} ({d.bins} bins)"
        verdict = "holds" if d.bound_holds else "FAILS (a bug: please report it)"
        lines.append(
            f"GDE check on the {where}: CACE {d.cace:.3f} (the {d.n_models} models' vote ensemble){softmax}; "
            f"|E[Dis] - E[Err]| = |{d.expected_disagreement:.3f} - {d.expected_error:.3f}| = {d.gap:.3f} "
            "(two models drawn with replacement, as in Theorem 4.2); "
            f"the bound |gap| <= CACE {verdict}."
        )
    return lines


def _estimate_cell(evaluation: Evaluation, method: str, i: int) -> str:
    result = evaluation.results[method]
    cell = pct(result.ood_accuracy[i])
    if result.interval is not None and np.isfinite(result.interval[i]).all():
        low, high = result.interval[i]
        cell += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return cell


def _print_notes(evaluation: Evaluation) -> None:
    for method, reason in evaluation.skipped.items():
        print(f"note: {method} skipped: {printable(reason)}", file=sys.stderr)
    for message in evaluation.warnings:
        print(f"note: {printable(message)}", file=sys.stderr)
    for method, result in evaluation.results.items():
        for note in result.notes:
            print(f"note: {method}: {printable(note)}", file=sys.stderr)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths (``args.report`` under ``args.report_flag``, ``args.plots``) before any work is done."""
    if args.report:
        check_output(args.report, args.report_flag)
    check_folder("--plots", args.plots)


def write_outputs(evaluation: Evaluation, args: argparse.Namespace, *, source: str | None = None) -> None:
    """The HTML report (``args.report``) and the figures (``args.plots``) when asked for; ``source``
    names the data in the report (default: the ``--id`` and ``--ood`` files)."""
    from ontheline._io import write_text

    if args.report:
        from ontheline.report import estimate_report

        source = source or f"ID: {Path(args.id).name}, OOD: {Path(args.ood).name}"
        html = estimate_report(evaluation, title=args.title, source=source)
        with writing(args.report_flag, args.report):
            write_text(args.report, html)
        print(f"Wrote {args.report}.", file=sys.stderr)
    if args.plots:
        from ontheline.report.figures import save_evaluation_figures

        with writing("--plots", args.plots):
            paths = save_evaluation_figures(evaluation, args.plots)
        print(f"Wrote {len(paths)} figures to {args.plots}: {', '.join(p.name for p in paths)}.", file=sys.stderr)
