"""``ontheline demo`` and ``ontheline bench``: the benchmark suite on packaged data."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ontheline._io import check_output
from ontheline._progress import ConsoleProgress
from ontheline.adapt import METHODS as ADAPT_METHODS
from ontheline.cli._common import check_folder, positive_float, positive_int, to_json, unit_float, writing
from ontheline.cli.adapt import adapt_flags

#: The command-line flag of each AdaptConfig parameter, to name it when a value is refused.
ADAPT_FLAGS = {"method": "--adapt", "lr": "--adapt-lr", "steps": "--adapt-steps", "batch_size": "--adapt-batch-size"}


def register(sub: Any) -> None:
    """Add ``demo`` and ``bench`` to the subparsers ``sub``."""
    for command, config, help_text in (
        ("demo", "quick", "train a zoo on packaged digits, estimate on 116 shifts, score it, write a report"),
        ("bench", "full", "the whole benchmark suite (as recorded in benchmarks/results/)"),
    ):
        bench = sub.add_parser(command, help=help_text)
        bench.add_argument(
            "--config", choices=("tiny", "quick", "full", "text"), default=config,
            help="tiny: seconds, for tests; quick: the demo, ~3 min fresh; full: the recorded suite, ~8 min fresh; "
            "text: linear probes on sentence embeddings, movie reviews to tweets, Amazon and editorials (needs "
            "'ontheline data fetch vader' once)",
        )  # fmt: skip
        bench.add_argument(
            "--out", help=f"folder for report.html, results.json, results.md (default ontheline-{command}[-ADAPTATION])"
        )
        bench.add_argument("--format", choices=("table", "json"), default="table")
        bench.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 8), help="worker processes")
        bench.add_argument("--store", help="the prediction store (default $ONTHELINE_STORE or ~/.cache/ontheline)")
        bench.add_argument("--plots", metavar="DIR", help="also save every shift's agreement plot as PNG and SVG")
        bench.add_argument(
            "--adapt", choices=ADAPT_METHODS, help="score the zoo's networks adapted at test time with this method"
        )
        bench.add_argument("--adapt-lr", type=positive_float, default=1e-3, help="adaptation learning rate")
        bench.add_argument("--adapt-steps", type=positive_int, default=1, help="adaptation steps per batch")
        bench.add_argument("--adapt-batch-size", type=positive_int, default=128, help="test batch size")
        bench.add_argument("--min-r2", type=unit_float, default=0.95, help="trust threshold on the agreement line's R²")
        bench.add_argument(
            "--no-calibrate", dest="calibrate", action="store_false",
            help="score the raw confidence and transport baselines (default: temperature-scaled on ID validation)",
        )  # fmt: skip
        bench.add_argument(
            "--calibration-out", metavar="FILE",
            help="also write auto's calibration table learned on every whole-zoo shift of this run (JSON; the "
            "package ships the one from --config full)",
        )  # fmt: skip
        bench.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> None:
    from ontheline._io import write_text
    from ontheline.bench import tables
    from ontheline.bench.suite import run_benchmark
    from ontheline.report import benchmark_report
    from ontheline.store import Store

    adapt = None
    if args.adapt:
        from ontheline.adapt import AdaptConfig

        with adapt_flags(ADAPT_FLAGS):
            adapt = AdaptConfig(args.adapt, lr=args.adapt_lr, steps=args.adapt_steps, batch_size=args.adapt_batch_size)
    out = Path(args.out or f"ontheline-{args.command}" + (f"-{adapt.label}" if adapt else ""))
    check_folder("--out", str(out))
    check_folder("--store", args.store)
    check_folder("--plots", args.plots)
    if args.calibration_out:
        check_output(args.calibration_out, "--calibration-out")
    store = Store(args.store)
    with writing("--store", store.path):
        result = run_benchmark(
            args.config,
            store=store,
            jobs=args.jobs,
            min_r2=args.min_r2,
            progress=ConsoleProgress(),
            adapt=adapt,
            calibrate=args.calibrate,
        )
    if result.from_store:
        print(f"Every prediction was read from the store at {store.path}: no training, no inference.", file=sys.stderr)
    else:
        print(f"New predictions were written to the store at {store.path}; the next run reads them.", file=sys.stderr)
    command = "ontheline " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    files = {
        "results.json": to_json(result.to_dict(per_model=True)),
        "results.md": tables.results_markdown(result, command, date),
        "report.html": benchmark_report(result),
    }
    with writing("--out", out):
        for name, content in files.items():
            write_text(out / name, content)
    if args.calibration_out:
        from ontheline.bench.calibrate import fit_table, labelled

        table = fit_table(labelled(result.scores), source={"name": f"{args.config}-{date}", "config": args.config,
                                                           "command": command})  # fmt: skip
        with writing("--calibration-out", args.calibration_out):
            write_text(Path(args.calibration_out), to_json(table.to_dict()))
        print(f"Wrote auto's calibration table to {args.calibration_out}.", file=sys.stderr)
    if args.plots:
        from ontheline.report.bench import save_benchmark_figures

        with writing("--plots", args.plots):
            paths = save_benchmark_figures(result, args.plots, progress=ConsoleProgress())
        print(f"Wrote {len(paths)} figures to {args.plots}.", file=sys.stderr)
    if args.format == "json":
        print(to_json(result.to_dict()), end="")
    else:
        _print_tables(result)
    print(f"Wrote {out / 'report.html'}, {out / 'results.json'} and {out / 'results.md'}.", file=sys.stderr)


def _print_tables(result: Any) -> None:
    from ontheline.bench import tables

    models = " and ".join(f"{n} models on {d}" for d, n in result.n_models.items())
    print(f"Benchmark {result.title!r}: {models}, {len(result.select('all'))} shifts, every estimator fitted on ID")
    print("validation and scored against the held-aside OOD labels (mean absolute error, accuracy points).\n")
    for lines in (tables.trust_table(result), tables.zoo_table(result), tables.summary_table(result, "all", "family")):
        print(tables.text(*lines))
        print()
    print("\n".join(tables.quality_lines(result)))
    print()
