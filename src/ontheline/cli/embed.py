"""``ontheline embed``: a backbone's sentence embeddings of a text file, as the NPZ the probe commands read.

FILE is plain text (one text per line; blank lines are skipped), a CSV with a header, or JSON
lines (``.jsonl``); from the last two the ``--column`` is embedded (default ``text``) and
``--labels-column`` adds ``labels`` (class indices, or class names, numbered in sorted order
and saved as ``classes``). The embeddings are kept in the prediction store, so a text is
embedded once; the NPZ (``features`` ``(n, d)`` float32, ``labels``) is written atomically.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any, cast

import numpy as np

from ontheline._io import atomic_write, check_output
from ontheline._validation import InputError
from ontheline.cli._common import positive_int, writing

_TABLES = (".csv", ".jsonl", ".json")


def register(sub: Any) -> None:
    """Add ``embed`` to the subparsers ``sub``."""
    embed = sub.add_parser("embed", help="embed texts with a sentence-embedding backbone, into an NPZ of features")
    embed.add_argument("--model", default="minilm", help="'minilm' (packaged; 'paraphrase-minilm-l3' where its "
                       "package is installed), or a sentence-transformers or Hugging Face model folder (default minilm)")  # fmt: skip
    embed.add_argument("--text", required=True, metavar="FILE", help="one text per line, or a .csv / .jsonl file")
    embed.add_argument("--column", default="text", help="the CSV / JSONL column of the texts (default text)")
    embed.add_argument("--labels-column", help="a CSV / JSONL column of labels to save as 'labels'")
    embed.add_argument("--out", required=True, help="the .npz file to write (features, and labels)")
    embed.add_argument("--store", help="the store folder (default $ONTHELINE_STORE or ~/.cache/ontheline)")
    embed.add_argument("--batch-size", type=positive_int, default=64)
    embed.add_argument("--threads", type=positive_int, default=1, help="torch's CPU threads (default 1)")
    embed.set_defaults(run=run_embed)


def run_embed(args: argparse.Namespace) -> None:
    from ontheline.store import Store
    from ontheline.zoo.embed import embed, load_backbone

    check_output(args.out, "--out")
    texts, labels, classes = read_texts(args.text, args.column, args.labels_column)
    backbone = load_backbone(args.model)
    store = Store(args.store)
    with writing("--store", store.path):
        features = embed(
            texts, backbone, store, batch_size=args.batch_size, progress=True, threads=args.threads,
            dataset=Path(args.text).name,
        )  # fmt: skip
    saved: dict[str, np.ndarray] = {"features": features}
    if labels is not None:
        saved["labels"] = labels
    if classes is not None:
        saved["classes"] = classes
    with writing("--out", args.out), atomic_write(args.out) as file:
        np.savez(file, **cast(dict[str, Any], saved))
    extra = "" if labels is None else " and labels"
    print(f"Wrote {len(texts)} embeddings ({features.shape[1]} dimensions, {backbone.name}){extra} to {args.out}.")


def read_texts(
    path: str, column: str = "text", labels_column: str | None = None
) -> tuple[list[str], np.ndarray | None, np.ndarray | None]:
    """``(texts, labels, classes)`` of a text, CSV or JSONL file; problems raise :class:`InputError`.

    ``labels`` are int64 class indices: the column's integers, or its names numbered in sorted
    order (then ``classes`` holds the names); both None without ``labels_column``.
    """
    name = f"--text file {path!r}"
    if not os.path.isfile(path):
        raise InputError(f"{name} does not exist; pass a text file (one text per line), a CSV or a JSONL file.")
    table = path.lower().endswith(_TABLES)
    if labels_column is not None and not table:
        raise InputError(f"--labels-column needs a CSV or JSONL file; {name} is plain text (one text per line).")
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    try:  # utf-8-sig: a byte-order mark (as spreadsheets write) is not part of the first text or column name
        with open(path, encoding="utf-8-sig", newline="" if table else None) as handle:
            if not table:
                lines = [line.rstrip("\n") for line in handle]
            elif path.lower().endswith((".jsonl", ".json")):
                rows = _jsonl(handle, name)
            else:
                rows = list(csv.DictReader(handle))
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    except csv.Error as exc:
        raise InputError(f"{name} is not a readable CSV ({exc}); write a header row, then one text per row.") from None
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    if not table:
        texts = [line for line in lines if line.strip()]
        if not texts:
            raise InputError(f"{name} holds no texts; write one text per line.")
        return texts, None, None
    if not rows:
        raise InputError(f"{name} holds no rows; write a header row (CSV) or JSON objects, one text per row.")
    cells = [_cell(row, column, number, name, "--column") for number, row in enumerate(rows, start=1)]
    wrong = next((n for n, t in enumerate(cells, start=1) if not isinstance(t, str)), None)
    if wrong is not None:
        raise InputError(f"{name} row {wrong}: column {column!r} holds {cells[wrong - 1]!r}, not a text.")
    texts = [str(t) for t in cells]
    if labels_column is None:
        return texts, None, None
    values = [_cell(row, labels_column, number, name, "--labels-column") for number, row in enumerate(rows, start=1)]
    labels, classes = _labels(values, name, labels_column)
    return texts, labels, classes


def _jsonl(handle: Any, name: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name} line {number} is not JSON ({exc.msg}); write one JSON object per line.") from None
        if not isinstance(row, dict):
            raise InputError(f"{name} line {number} is a {type(row).__name__}, not a JSON object; write one per line.")
        rows.append(row)
    return rows


def _cell(row: dict[str, Any], column: str, number: int, name: str, flag: str) -> Any:
    if column not in row or row[column] is None:
        columns = sorted(k for k in row if k is not None)
        raise InputError(f"{name} row {number} has no column {column!r} (it has {columns}); choose one with {flag}.")
    return row[column]


def _labels(values: list[Any], name: str, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Class indices from integers (or integer strings); otherwise names (strings) numbered in sorted order."""
    indices = [_index(v) for v in values]
    if all(i is not None for i in indices):
        low = min(i for i in indices if i is not None)
        if low < 0:
            raise InputError(
                f"{name}: --labels-column {column!r} holds {low}; labels are class indices 0, 1, ... or names."
            )
        return np.array(indices, dtype=np.int64), None
    odd = next((v for v in values if not isinstance(v, str) and _index(v) is None), None)
    if odd is not None:
        raise InputError(f"{name}: --labels-column {column!r} holds {odd!r}; labels are class indices or names.")
    classes = sorted({str(v) for v in values})
    number = {c: i for i, c in enumerate(classes)}
    return np.array([number[str(v)] for v in values], dtype=np.int64), np.array(classes, dtype=str)


def _index(value: Any) -> int | None:
    """``value`` as a class index when it is an integer (or a string of one), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.lstrip("-").isdigit():
        return int(text)
    return None
