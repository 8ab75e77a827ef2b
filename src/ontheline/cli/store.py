"""``ontheline store ls|info|rm|clean|export``: the prediction store's entries."""

from __future__ import annotations

import argparse
from typing import Any

from ontheline._io import check_output, read_npy
from ontheline._validation import InputError
from ontheline.cli._common import Parser, data_errors, table, to_json, writing

_COLUMNS = ["key", "model", "dataset", "samples", "classes", "dtype", "seconds", "created"]


def register(sub: Any) -> None:
    """Add ``store`` and its actions to the subparsers ``sub``."""
    store = sub.add_parser("store", help="list, inspect, remove and export entries of the prediction store")
    actions = store.add_subparsers(dest="action", required=True, parser_class=Parser)
    where = Parser(add_help=False)
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
    store.set_defaults(run=run_store)


def run_store(args: argparse.Namespace) -> None:
    from ontheline.store import Store

    store = Store(args.store)
    if args.action != "clean" and not store.path.is_dir():  # a mistyped path is an error, never a new store
        raise InputError(
            f"There is no store at {str(store.path)!r}; pass the folder it was written to with --store "
            "(default $ONTHELINE_STORE or ~/.cache/ontheline)."
        )
    if args.action == "ls":
        _ls(store, args)
    elif args.action == "info":
        print(to_json(store.info(args.key).to_dict()), end="")
    elif args.action == "clean":
        with writing("--store", store.path):
            removed = store.clean()
        print(f"Removed {removed} leftover staging folders from {store.path / 'tmp'}.")
    elif args.action == "rm":
        infos = [store.info(key) for key in args.keys]  # every key checked before anything is removed
        for info in infos:
            with writing("--store", store.path):
                store.rm(info.key)
            print(f"Removed {info.key} ({info.model} on {info.dataset}).")
    else:
        _export(store, args)


def _ls(store: Any, args: argparse.Namespace) -> None:
    entries = store.ls(model=args.model, dataset=args.dataset)
    if args.format == "json":
        print(to_json([e.to_dict() for e in entries]), end="")
        return
    rows = [[e.key[:12], e.model, e.dataset, e.n_samples, e.n_classes, e.dtype, e.seconds, e.created] for e in entries]
    print(table(_COLUMNS, rows) if rows else f"The store at {store.path} is empty.")


def _export(store: Any, args: argparse.Namespace) -> None:
    if bool(args.keys) == bool(args.dataset):
        raise InputError("store export takes either entry keys or --dataset NAME, not both and not neither.")
    keys = [store.info(k).key for k in args.keys]
    if args.dataset:
        keys = _dataset_keys(store, args.dataset)
    labels = read_npy(args.labels, "--labels") if args.labels else None
    check_output(args.out, "--out")
    # What export still refuses is the user's choice: keys of several datasets, labels of another length.
    with writing("--out", args.out), data_errors("store export"):
        path = store.export(keys, args.out, labels=labels)
    print(f"Wrote {len(keys)} models to {path}.")


def _dataset_keys(store: Any, dataset: str) -> list[str]:
    """One entry per model on ``dataset``; two entries of one model (other weights or data) are ambiguous."""
    entries = store.ls(dataset=dataset)
    if not entries:
        raise InputError(f"No entries on dataset {dataset!r}; 'ontheline store ls' lists the datasets.")
    by_model: dict[str, list[str]] = {}
    for e in entries:
        by_model.setdefault(e.model, []).append(e.key)
    clashes = {m: ks for m, ks in by_model.items() if len(ks) > 1}
    if clashes:
        model, clash = next(iter(clashes.items()))
        raise InputError(
            f"Model {model!r} has {len(clash)} entries on {dataset!r} (other weights or data): "
            f"{[k[:12] for k in clash]}; export chosen keys instead."
        )
    return [ks[0] for ks in by_model.values()]
