"""``ontheline data fetch vader|ls``: data sets fetched once at set-up time into the store's ``data/`` folder.

Only ``fetch`` reaches the network (pip, from the package index); every other command reads
what was fetched and says what to run when it is missing.
"""

from __future__ import annotations

import argparse
from typing import Any

from ontheline.cli._common import Parser, table, to_json, writing

#: What ``ontheline data fetch`` can fetch, and what each one is.
SOURCES = {"vader": "VADER's sentiment sentences: movie reviews, tweets, Amazon reviews, NYT editorials"}


def register(sub: Any) -> None:
    """Add ``data`` and its actions to the subparsers ``sub``."""
    data = sub.add_parser("data", help="fetch data sets once (at set-up time) and list what is fetched")
    actions = data.add_subparsers(dest="action", required=True, parser_class=Parser)
    where = Parser(add_help=False)
    where.add_argument("--store", help="the store folder (default $ONTHELINE_STORE or ~/.cache/ontheline)")
    fetch = actions.add_parser("fetch", parents=[where], help="download a data set with pip, check it, keep it")
    fetch.add_argument("name", choices=tuple(SOURCES), help="; ".join(f"{k}: {v}" for k, v in SOURCES.items()))
    ls = actions.add_parser("ls", parents=[where], help="what is fetched, with sizes and SHA-256")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    data.set_defaults(run=run_data)


def run_data(args: argparse.Namespace) -> None:
    from ontheline.bench.text import fetch_vader, list_fetched, vader_folder
    from ontheline.store import Store

    store = Store(args.store)
    if args.action == "fetch":
        with writing("--store", vader_folder(store)):
            folder = fetch_vader(store, progress=True)
        print(f"VADER's sentences are in {folder}.")
        return
    rows = list_fetched(store)
    if args.format == "json":
        print(to_json(rows), end="")
    elif not rows:
        print(f"Nothing is fetched in {store.path / 'data'}; 'ontheline data fetch vader' fetches VADER's sentences.")
    else:
        cells = [[r["data"], r["file"], f"{r['bytes']:,}", r["sha256"][:16], r["status"]] for r in rows]
        print(table(["data", "file", "bytes", "sha256", "status"], cells))
        print(f"\nin {store.path / 'data'}")
