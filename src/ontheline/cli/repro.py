"""``ontheline repro NAME``: reproduce a paper's result on packaged data.

Only the registry of names is imported here; the reproduction itself (the research wing) is
imported when the command runs.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any

from ontheline._progress import ConsoleProgress
from ontheline._validation import InputError
from ontheline.cli._common import check_folder, positive_int, to_json, writing
from ontheline.research import REPROS


def register(sub: Any) -> None:
    """Add ``repro`` to the subparsers ``sub``."""
    repro = sub.add_parser("repro", help="reproduce a paper's result on packaged data")
    repro.add_argument("name", choices=sorted(REPROS), help="the reproduction")
    repro.add_argument("--quick", action="store_true", help="a smaller run (minutes at most)")
    repro.add_argument("--format", choices=("table", "json"), default="table")
    repro.add_argument("--plots", metavar="DIR", help="also save the reproduction's figures (PNG and SVG)")
    repro.add_argument(
        "--jobs", type=positive_int, default=1, help="worker processes, where a reproduction has them (sam)"
    )
    repro.set_defaults(run=run_repro)


def run_repro(args: argparse.Namespace) -> None:
    from ontheline.research import load

    module = load(args.name)
    if args.plots and not hasattr(module, "figures"):
        raise InputError(f"repro {args.name} draws no figures; drop --plots.")
    parallel = "jobs" in inspect.signature(module.run).parameters
    if args.jobs > 1 and not parallel:
        raise InputError(f"repro {args.name} runs in one process; drop --jobs.")
    check_folder("--plots", args.plots)
    options = {"jobs": args.jobs} if parallel else {}
    result = module.run(quick=args.quick, progress=ConsoleProgress(), **options)
    print(to_json(result) if args.format == "json" else module.text(result), end="" if args.format == "json" else "\n")
    if args.plots:
        with writing("--plots", args.plots):
            paths = module.figures(result, args.plots)
        print(f"Wrote {', '.join(str(p) for p in paths)}.", file=sys.stderr)
