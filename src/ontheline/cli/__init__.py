"""The ``ontheline`` command line: ``estimate`` on your own predictions; ``demo`` and ``bench`` on packaged data.

One module per command group adds its subcommands with ``register(subparsers)`` and sets
``run=`` on each; this module builds the parser from them and runs the command under the error
contract of :mod:`ontheline.cli._common`: bad input exits with status 2 and one line on stderr
that names the problem and the fix; a bug exits with status 1 and one line that says so
(``--debug`` or ``ONTHELINE_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ontheline.cli import adapt, bench, data, embed, estimate, passk, probe, repro, store
from ontheline.cli._common import Parser, debug_requested, error_line, exit_status

#: The command groups, in the order ``ontheline --help`` lists them.
COMMANDS = (estimate, bench, adapt, passk, repro, embed, probe, store, data)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ontheline", description="Predict your models' OOD accuracy without OOD labels.")
    parser.add_argument(
        "--debug", action="store_true", help="on a bug, show the traceback instead of one line (or ONTHELINE_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        args.run(args)
    except (Exception, KeyboardInterrupt) as exc:
        status = exit_status(exc)
        if status != 2 and debug_requested(args.debug, os.environ):
            raise  # the traceback, for whoever fixes the bug (or finds where an interrupted run hung)
        print(error_line(exc, status), file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
