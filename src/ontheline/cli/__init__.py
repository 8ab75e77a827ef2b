"""The ``ontheline`` command line: ``estimate`` on your own predictions; ``demo`` and ``bench`` on packaged data.

Bad input exits with status 2 and one line on stderr that names the problem and the fix.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._io import check_output, printable, read_npy, read_npz
from ontheline._progress import ConsoleProgress
from ontheline._validation import InputError
from ontheline.adapt import METHODS as ADAPT_METHODS
from ontheline.estimators import METHODS
from ontheline.evaluate import Evaluation, evaluate
from ontheline.predictions import Predictions, as_predictions
from ontheline.research import REPROS

_SCORE_KEYS = ("probs", "logits", "preds")


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
    for key in ("models", "classes", "labels"):
        if key in arrays and arrays[key].ndim != 1:
            raise InputError(
                f"{flag} file {path!r}: '{key}' must be a 1-D array, one entry per "
                f"{'model' if key == 'models' else 'class' if key == 'classes' else 'sample'}; got shape {arrays[key].shape}."
            )
    kind = {"probs": "probs", "logits": "logits", "preds": "labels"}[present[0]]
    models = arrays["models"].tolist() if "models" in arrays else None
    classes = arrays["classes"].tolist() if "classes" in arrays else None
    try:
        preds = as_predictions(
            arrays[present[0]], models=models, classes=classes, kind=kind, name=f"{flag} '{present[0]}'"
        )
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    return preds, arrays.get("labels")


def _format_table(evaluation: Evaluation) -> str:
    methods = list(evaluation.results)
    truth = evaluation.ood_accuracy
    rank = {r.name: r.rank for r in evaluation.ranking()}
    header = ["rank", "model", "ID acc", *methods] + (["OOD acc (true)"] if truth is not None else [])
    first = next(iter(evaluation.results.values()))
    rows = []
    for i, name in sorted(enumerate(evaluation.models), key=lambda item: rank[item[1]]):
        cells = [str(rank[name]), printable(name), _pct(first.id_accuracy[i])]
        for m in methods:
            result = evaluation.results[m]
            cell = _pct(result.ood_accuracy[i])
            if result.interval is not None and np.isfinite(result.interval[i]).all():
                low, high = result.interval[i]
                cell += f" [{100 * low:.1f}, {100 * high:.1f}]"
            cells.append(cell)
        if truth is not None:
            cells.append(_pct(truth[i]))
        rows.append(cells)
    if truth is not None:
        rows.append(["", "MAE (points)", "", *[f"{v:.2f}" for v in evaluation.mae().values()], ""])
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        "  ".join(str(c).rjust(w) if k != 1 else str(c).ljust(w) for k, (c, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", evaluation.trust_message(), f"Ranked by {evaluation.ranking_method}."])


def _pct(value: float) -> str:
    return f"{100 * float(value):.1f}"


def _print_evaluation(evaluation: Evaluation, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(evaluation.to_dict(), indent=2))
        return
    print(_format_table(evaluation))
    _print_notes(evaluation)


def _print_notes(evaluation: Evaluation) -> None:
    for method, reason in evaluation.skipped.items():
        print(f"note: {method} skipped: {printable(reason)}", file=sys.stderr)
    for message in evaluation.warnings:
        print(f"note: {printable(message)}", file=sys.stderr)


def _cmd_estimate(args: argparse.Namespace) -> None:
    _check_outputs(args)
    evaluation = _evaluate_files(args)
    _print_evaluation(evaluation, args.format)
    _write_outputs(evaluation, args)


def _cmd_report(args: argparse.Namespace) -> None:
    _check_outputs(args)
    evaluation = _evaluate_files(args)
    _print_notes(evaluation)
    _write_outputs(evaluation, args)


def _evaluate_files(args: argparse.Namespace) -> Evaluation:
    id_preds, id_labels = load_npz(args.id, "id", labels_required=True)
    ood_preds, ood_labels = load_npz(args.ood, "ood", labels_required=False)
    return evaluate(
        id_preds, id_labels, ood_preds, methods=args.method, ood_labels=ood_labels,
        min_r2=args.min_r2, n_bootstrap=args.bootstrap, keep=tuple(args.keep),
    )  # fmt: skip


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before any work is done."""
    if args.report:
        check_output(args.report, "--report" if args.command == "estimate" else "--out")
    _check_folder("--plots", args.plots)


def _check_folder(flag: str, path: str | None) -> None:
    if path:
        check_output(path, flag, folder=True)


def _write_outputs(evaluation: Evaluation, args: argparse.Namespace) -> None:
    from ontheline._io import write_text

    if args.report:
        from ontheline.report import estimate_report

        source = f"ID: {Path(args.id).name}, OOD: {Path(args.ood).name}"
        write_text(args.report, estimate_report(evaluation, title=args.title, source=source))
        print(f"Wrote {args.report}.", file=sys.stderr)
    if args.plots:
        from ontheline.report.figures import save_evaluation_figures

        paths = save_evaluation_figures(evaluation, args.plots)
        print(f"Wrote {len(paths)} figures to {args.plots}: {', '.join(p.name for p in paths)}.", file=sys.stderr)


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from ontheline._io import write_text
    from ontheline.bench import tables
    from ontheline.bench.suite import run_benchmark
    from ontheline.report import benchmark_report

    adapt = None
    if args.adapt:
        from ontheline.adapt import AdaptConfig

        adapt = AdaptConfig(args.adapt, lr=args.adapt_lr, steps=args.adapt_steps, batch_size=args.adapt_batch_size)
    out = Path(args.out or f"ontheline-{args.command}" + (f"-{adapt.label}" if adapt else ""))
    _check_folder("--out", str(out))
    from ontheline.store import Store

    _check_folder("--store", args.store)
    _check_folder("--plots", args.plots)
    store = Store(args.store)
    result = run_benchmark(
        args.config, store=store, jobs=args.jobs, min_r2=args.min_r2, progress=ConsoleProgress(), adapt=adapt
    )
    if result.from_store:
        print(f"Every prediction was read from the store at {store.path}: no training, no inference.", file=sys.stderr)
    else:
        print(f"New predictions were written to the store at {store.path}; the next run reads them.", file=sys.stderr)
    command = "ontheline " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    summary = result.to_dict()
    write_text(out / "results.json", _json(result.to_dict(per_model=True)))
    write_text(out / "results.md", tables.results_markdown(result, command, date))
    write_text(out / "report.html", benchmark_report(result))
    if args.plots:
        from ontheline.report.bench import save_benchmark_figures

        paths = save_benchmark_figures(result, args.plots, progress=ConsoleProgress())
        print(f"Wrote {len(paths)} figures to {args.plots}.", file=sys.stderr)
    if args.format == "json":
        print(_json(summary), end="")
    else:
        models = " and ".join(f"{n} models on {d}" for d, n in result.n_models.items())
        print(f"Benchmark {result.title!r}: {models}, {len(result.select('all'))} shifts, every estimator fitted on ID")
        print("validation and scored against the held-aside OOD labels (mean absolute error, accuracy points).\n")
        print(tables.text(*tables.trust_table(result)))
        print()
        print(tables.text(*tables.zoo_table(result)))
        print()
        print(tables.text(*tables.summary_table(result, "all", "family")))
        print()
        print("\n".join(tables.quality_lines(result)))
        print()
    print(f"Wrote {out / 'report.html'}, {out / 'results.json'} and {out / 'results.md'}.", file=sys.stderr)


def _cmd_adapt(args: argparse.Namespace) -> None:
    """Label-free choice of the test-time adaptation of the user's own torch models."""
    import importlib

    from ontheline.adapt import AdaptConfig, default_grid, select_adaptation
    from ontheline.runners import Dataset, load_torch
    from ontheline.store import Store

    module_name, _, factory_name = args.arch.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError, ValueError):
        raise InputError(
            f"--arch {args.arch!r} is not an importable 'module:function'; pass e.g. mypkg.models:make_net "
            "(a function that returns the untrained nn.Module) and put its folder on PYTHONPATH."
        ) from None
    if len(args.weights) < 3:
        raise InputError(f"--weights was given {len(args.weights)} times; the agreement line needs at least 3 models.")
    models = []
    for path in args.weights:
        try:
            models.append(load_torch(factory(), path))
        except RuntimeError as exc:  # the weights do not fit the network --arch builds
            raise InputError(f"--weights {path!r} does not fit {args.arch}(): {str(exc).splitlines()[0]}") from None
        except ValueError as exc:  # not a weights file at all
            raise InputError(f"--weights: {exc}") from None
    id_x, id_y = _load_inputs(args.id, "id", labels_required=True)
    ood_x, ood_y = _load_inputs(args.ood, "ood", labels_required=False)
    if args.method:  # BN-adapt takes no step, so its learning rate is irrelevant: one config
        grid = list(
            dict.fromkeys(
                AdaptConfig(m, lr=1e-3 if m == "bn" else lr, steps=args.steps, batch_size=args.batch_size)
                for m in args.method
                for lr in args.lr or [1e-3]
            )
        )
    else:
        grid = default_grid(args.batch_size)
    choice = select_adaptation(
        models, Dataset("id", id_x), id_y, Dataset("ood", ood_x), grid, ood_labels=ood_y,
        store=Store(args.store), min_r2=args.min_r2, progress=ConsoleProgress(),
    )  # fmt: skip
    if args.format == "json":
        print(_json(choice.to_dict()), end="")
        return
    from ontheline.bench.tables import text

    header = ["adaptation", "estimated OOD acc", "agreement R²"] + (["true OOD acc"] if ood_y is not None else [])
    rows = [
        [c.label, _pct(c.estimated_accuracy), f"{c.agreement_r2:.3f}"]
        + ([_pct(c.true_accuracy)] if ood_y is not None else [])
        for c in choice.candidates
    ]
    print(text(header, rows))
    print(f"\nChosen without labels: {choice.best.label} (highest ALine-D estimated mean OOD accuracy).")
    if choice.best_with_labels is not None:
        print(f"With the OOD labels the best is {choice.best_with_labels.label}.")


def _load_inputs(path: str, role: str, *, labels_required: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """An NPZ with the model inputs ``x`` (n_samples, ...) and, for ID, the true ``labels``."""
    flag = f"--{role}"
    arrays = read_npz(path, flag, fix="save x (and labels) with numpy.savez")
    if "x" not in arrays:
        raise InputError(f"{flag} file {path!r} has no 'x' key; it needs the model inputs as x (n_samples, ...).")
    if labels_required and "labels" not in arrays:
        raise InputError(f"{flag} file {path!r} has no 'labels' key; the ID file needs the true labels.")
    return arrays["x"].astype(np.float32), arrays.get("labels")


def _cmd_passk(args: argparse.Namespace) -> None:
    """pass@k, maj@k, best@k and the decomposition from a CSV or JSONL file of samples."""
    from ontheline.research.passk import best_at_k, group_samples, maj_at_k, pass_at_k, pass_at_k_decomposition

    samples = group_samples(_read_samples(args.file))
    n, c = samples.n, samples.c
    n_min = int(n.min())
    ks = args.k or [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k <= n_min]
    if max(ks) > n_min:
        raise InputError(
            f"--k {max(ks)} is more than the {n_min} samples of the smallest problem; choose k <= {n_min}."
        )
    k_vote = max(ks)
    result: dict[str, Any] = {
        "problems": len(n), "samples_per_problem": {"min": n_min, "max": int(n.max())},
        "pass@k": {str(k): float(pass_at_k(n, c, k).mean()) for k in ks},
        f"maj@{k_vote}": float(maj_at_k(samples.answers, samples.correct, k_vote).mean()),
        "decomposition": {str(k): pass_at_k_decomposition(c / n, k).to_dict() for k in ks},
    }  # fmt: skip
    if samples.scores is not None:
        result[f"best@{k_vote}"] = float(best_at_k(samples.scores, samples.correct, k_vote).mean())
    if args.format == "json":
        print(_json(result), end="")
        return
    from ontheline.bench.tables import text

    print(f"{len(n)} problems, {n_min}-{int(n.max())} samples each.\n")
    rows = []
    for k in ks:
        d = result["decomposition"][str(k)]
        values = (result["pass@k"][str(k)], d["mean_pass@1"], d["var_pass@1"], d["bias_term"], d["jensen_gap"])
        rows.append([f"pass@{k}"] + [f"{round(v, 4) + 0.0:.4f}" for v in values])  # + 0.0: no "-0.0000"
    print(text(["metric", "value", "mean pass@1", "var pass@1", "(1 - mean)^k", "Jensen gap"], rows))
    extra = [f"maj@{k_vote}"] + ([f"best@{k_vote}"] if samples.scores is not None else [])
    print("\n" + "  ".join(f"{name} {result[name]:.4f}" for name in extra))


def _read_samples(path: str) -> list[dict[str, Any]]:
    """Rows of a CSV (with a header) or JSONL file."""
    import csv

    if not os.path.isfile(path):
        raise InputError(f"FILE {path!r} does not exist; pass a CSV or JSONL file with one sample per row.")
    with open(path, encoding="utf-8") as handle:
        if path.endswith((".jsonl", ".json")):
            try:
                rows = [json.loads(line) for line in handle if line.strip()]
            except json.JSONDecodeError as exc:
                raise InputError(f"FILE {path!r} is not JSON lines ({exc}); write one JSON object per line.") from None
        else:
            rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"FILE {path!r} has no samples.")
    return rows


def _cmd_repro(args: argparse.Namespace) -> None:
    from ontheline.research import load

    module = load(args.name)
    if args.plots and not hasattr(module, "figures"):
        raise InputError(f"repro {args.name} draws no figures; drop --plots.")
    parallel = "jobs" in inspect.signature(module.run).parameters
    if args.jobs > 1 and not parallel:
        raise InputError(f"repro {args.name} runs in one process; drop --jobs.")
    _check_folder("--plots", args.plots)
    options = {"jobs": args.jobs} if parallel else {}
    result = module.run(quick=args.quick, progress=ConsoleProgress(), **options)
    print(_json(result) if args.format == "json" else module.text(result), end="" if args.format == "json" else "\n")
    if args.plots:
        paths = module.figures(result, args.plots)
        print(f"Wrote {', '.join(str(p) for p in paths)}.", file=sys.stderr)


def _cmd_store(args: argparse.Namespace) -> None:
    from ontheline.store import Store

    store = Store(args.store)
    if args.action != "clean" and not store.path.is_dir():  # a mistyped path is an error, never a new store
        raise InputError(
            f"There is no store at {str(store.path)!r}; pass the folder it was written to with --store "
            "(default $ONTHELINE_STORE or ~/.cache/ontheline)."
        )
    if args.action == "ls":
        entries = store.ls(model=args.model, dataset=args.dataset)
        if args.format == "json":
            print(_json([e.to_dict() for e in entries]), end="")
            return
        header = ["key", "model", "dataset", "samples", "classes", "dtype", "seconds", "created"]
        rows = [
            [e.key[:12], e.model, e.dataset, e.n_samples, e.n_classes, e.dtype, e.seconds, e.created] for e in entries
        ]
        from ontheline.bench.tables import text

        print(text(header, rows) if rows else f"The store at {store.path} is empty.")
    elif args.action == "info":
        print(_json(store.info(args.key).to_dict()), end="")
    elif args.action == "clean":
        print(f"Removed {store.clean()} leftover staging folders from {store.path / 'tmp'}.")
    elif args.action == "rm":
        infos = [store.info(key) for key in args.keys]  # every key checked before anything is removed
        for info in infos:
            store.rm(info.key)
            print(f"Removed {info.key} ({info.model} on {info.dataset}).")
    else:
        _export(store, args)


def _export(store: Any, args: argparse.Namespace) -> None:
    if bool(args.keys) == bool(args.dataset):
        raise InputError("store export takes either entry keys or --dataset NAME, not both and not neither.")
    keys = [store.info(k).key for k in args.keys]
    if args.dataset:
        entries = store.ls(dataset=args.dataset)
        if not entries:
            raise InputError(f"No entries on dataset {args.dataset!r}; 'ontheline store ls' lists the datasets.")
        by_model: dict[str, list[str]] = {}
        for e in entries:
            by_model.setdefault(e.model, []).append(e.key)
        clashes = {m: ks for m, ks in by_model.items() if len(ks) > 1}
        if clashes:
            model, clash = next(iter(clashes.items()))
            raise InputError(
                f"Model {model!r} has {len(clash)} entries on {args.dataset!r} (other weights or data): "
                f"{[k[:12] for k in clash]}; export chosen keys instead."
            )
        keys = [ks[0] for ks in by_model.values()]
    labels = read_npy(args.labels, "--labels") if args.labels else None
    check_output(args.out, "--out")
    path = store.export(keys, args.out, labels=labels)
    print(f"Wrote {len(keys)} models to {path}.")


def _json(obj: Any) -> str:
    """Indented JSON with floats rounded to 6 significant digits: exact enough, and half the size."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.6g}")
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    return json.dumps(rounded(obj), indent=1, allow_nan=False) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, status 2, no usage dump: the same contract as every other bad input.
        self.exit(2, f"ontheline: error: {message}; see 'ontheline {self.prog.split()[-1]} --help'.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ontheline", description="Predict your models' OOD accuracy without OOD labels.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument(
        "--method", action="append", choices=list(METHODS), help="a method to run (repeatable; default: all)"
    )
    common.add_argument(
        "--bootstrap", type=_non_negative_int, default=200, help="resamples for the ALine intervals (0: none)"
    )

    outputs = _Parser(add_help=False)
    outputs.add_argument(
        "--id", required=True, help="NPZ with labels, probs|logits|preds and models (labelled ID data)"
    )
    outputs.add_argument("--ood", required=True, help="NPZ with probs|logits|preds and models; labels optional")
    outputs.add_argument("--min-r2", type=_unit_float, default=0.95, help="trust threshold on the agreement line's R²")
    outputs.add_argument(
        "--keep", nargs=2, type=_open_unit_float, default=[0.05, 0.98], metavar=("LOW", "HIGH"),
        help="the agreement filter: pairs with ID and OOD agreement in [LOW, HIGH] make the line (default 0.05 0.98)",
    )  # fmt: skip
    outputs.add_argument("--plots", metavar="DIR", help="also save the figures as PNG and SVG in this folder")
    outputs.add_argument("--title", default="ontheline estimate", help="the report's title")

    est = sub.add_parser(
        "estimate", parents=[common, outputs], help="estimate OOD accuracy from NPZ files of predictions"
    )
    est.add_argument("--format", choices=("table", "json"), default="table")
    est.add_argument("--report", metavar="FILE", help="also write the HTML report to this file")
    est.set_defaults(run=_cmd_estimate)

    report = sub.add_parser(
        "report", parents=[common, outputs], help="write the HTML report (and --plots) of an estimate, print nothing"
    )
    report.add_argument("--out", dest="report", default="report.html", help="the HTML file to write")
    report.set_defaults(run=_cmd_report)

    for command, config, help_text in (
        ("demo", "quick", "train a zoo on packaged digits, estimate on 116 shifts, score it, write a report"),
        ("bench", "full", "the whole benchmark suite (as recorded in benchmarks/results/)"),
    ):
        bench = sub.add_parser(command, help=help_text)
        bench.add_argument(
            "--config", choices=("tiny", "quick", "full"), default=config,
            help="tiny: seconds, for tests; quick: the demo, ~3 min fresh; full: the recorded suite, ~8 min fresh",
        )  # fmt: skip
        bench.add_argument(
            "--out", help=f"folder for report.html, results.json, results.md (default ontheline-{command}[-ADAPTATION])"
        )
        bench.add_argument("--format", choices=("table", "json"), default="table")
        bench.add_argument("--jobs", type=_positive_int, default=min(os.cpu_count() or 1, 8), help="worker processes")
        bench.add_argument("--store", help="the prediction store (default $ONTHELINE_STORE or ~/.cache/ontheline)")
        bench.add_argument("--plots", metavar="DIR", help="also save every shift's agreement plot as PNG and SVG")
        bench.add_argument(
            "--adapt", choices=ADAPT_METHODS, help="score the zoo's networks adapted at test time with this method"
        )
        bench.add_argument("--adapt-lr", type=_positive_float, default=1e-3, help="adaptation learning rate")
        bench.add_argument("--adapt-steps", type=_positive_int, default=1, help="adaptation steps per batch")
        bench.add_argument("--adapt-batch-size", type=_positive_int, default=128, help="test batch size")
        bench.add_argument(
            "--min-r2", type=_unit_float, default=0.95, help="trust threshold on the agreement line's R²"
        )
        bench.set_defaults(run=_cmd_benchmark)

    adapt = sub.add_parser("adapt", help="choose the test-time adaptation of your torch models without OOD labels")
    adapt.add_argument("--arch", required=True, help="module:function that builds one untrained nn.Module")
    adapt.add_argument("--weights", action="append", required=True, help="a model's .safetensors or .pt (repeat)")
    adapt.add_argument("--id", required=True, help="NPZ with inputs x and labels (labelled ID data)")
    adapt.add_argument("--ood", required=True, help="NPZ with inputs x; labels optional (only to report the truth)")
    adapt.add_argument("--method", action="append", choices=ADAPT_METHODS, help="a method to try (repeat; default all)")
    adapt.add_argument("--lr", action="append", type=_positive_float, help="a learning rate to try (repeat)")
    adapt.add_argument("--steps", type=_positive_int, default=1, help="adaptation steps per batch")
    adapt.add_argument("--batch-size", type=_positive_int, default=128, help="test batch size")
    adapt.add_argument("--min-r2", type=_unit_float, default=0.95, help="trust threshold on the agreement line's R²")
    adapt.add_argument("--store", help="the prediction store (default $ONTHELINE_STORE or ~/.cache/ontheline)")
    adapt.add_argument("--format", choices=("table", "json"), default="table")
    adapt.set_defaults(run=_cmd_adapt, lr=None)

    passk = sub.add_parser("passk", help="pass@k, maj@k, best@k and the decomposition of sampled answers")
    passk.add_argument("file", help="CSV or JSONL: one sample per row with problem, answer, correct (and score)")
    passk.add_argument("--k", type=_positive_int, action="append", help="a k to report (repeat; default powers of 2)")
    passk.add_argument("--format", choices=("table", "json"), default="table")
    passk.set_defaults(run=_cmd_passk)

    repro = sub.add_parser("repro", help="reproduce a paper's result on packaged data")
    repro.add_argument("name", choices=sorted(REPROS), help="the reproduction")
    repro.add_argument("--quick", action="store_true", help="a smaller run (minutes at most)")
    repro.add_argument("--format", choices=("table", "json"), default="table")
    repro.add_argument("--plots", metavar="DIR", help="also save the reproduction's figures (PNG and SVG)")
    repro.add_argument(
        "--jobs", type=_positive_int, default=1, help="worker processes, where a reproduction has them (sam)"
    )
    repro.set_defaults(run=_cmd_repro)

    store = sub.add_parser("store", help="list, inspect, remove and export entries of the prediction store")
    actions = store.add_subparsers(dest="action", required=True, parser_class=_Parser)
    where = _Parser(add_help=False)
    where.add_argument("--store", help="the store folder (default $ONTHELINE_STORE or ~/.cache/ontheline)")
    ls = actions.add_parser("ls", parents=[where], help="one line per entry")
    ls.add_argument("--model")
    ls.add_argument("--dataset")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    info = actions.add_parser("info", parents=[where], help="everything recorded about one entry")
    info.add_argument("key", help="an entry key, or a unique prefix of at least 6 characters")
    rm = actions.add_parser("rm", parents=[where], help="remove entries")
    rm.add_argument("keys", nargs="+", metavar="key")
    actions.add_parser("clean", parents=[where], help="delete staging folders left by killed writers")
    export = actions.add_parser("export", parents=[where], help="write the NPZ that 'ontheline estimate' reads")
    export.add_argument("keys", nargs="*", metavar="key", help="entries to export (default: all of --dataset)")
    export.add_argument("--dataset", help="export every model's entry on this dataset")
    export.add_argument("--labels", help="a .npy file of true labels to include (needed for the ID file)")
    export.add_argument("--out", required=True, help="the .npz file to write")
    store.set_defaults(run=_cmd_store)
    return parser


def _number(text: str, convert: Any, ok: Any, expected: str) -> Any:
    """An argparse type: ``convert(text)`` if ``ok`` of it, else a one-line error naming what was expected."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "a non-negative integer")


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def _open_unit_float(text: str) -> float:
    return _number(text, float, lambda v: 0.0 < v < 1.0, "a number strictly between 0 and 1")


def _unit_float(text: str) -> float:
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        args.run(args)
    except ValueError as exc:  # every documented bad input is a ValueError with a one-line message
        print(f"ontheline: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be created or written: a path the user gave
        print(f"ontheline: error: {_one_line(exc)}; check the paths given and their permissions.", file=sys.stderr)
        return 2
    return 0


def _one_line(exc: Any) -> str:
    return printable(" ".join(str(exc).split()))


if __name__ == "__main__":
    sys.exit(main())
