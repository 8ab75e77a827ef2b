"""``ontheline passk``: pass@k, maj@k, best@k and the decomposition from a CSV or JSONL file of samples.

The metrics live in the research wing, imported only when the command runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from typing import Any

from ontheline._validation import InputError
from ontheline.cli._common import data_errors, positive_int, table, to_json

_POWERS_OF_2 = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def register(sub: Any) -> None:
    """Add ``passk`` to the subparsers ``sub``."""
    passk = sub.add_parser("passk", help="pass@k, maj@k, best@k and the decomposition of sampled answers")
    passk.add_argument("file", help="CSV or JSONL: one sample per row with problem, answer, correct (and score)")
    passk.add_argument("--k", type=positive_int, action="append", help="a k to report (repeat; default powers of 2)")
    passk.add_argument("--format", choices=("table", "json"), default="table")
    passk.set_defaults(run=run_passk)


def run_passk(args: argparse.Namespace) -> None:
    from ontheline.research.passk import best_at_k, group_samples, maj_at_k, pass_at_k, pass_at_k_decomposition

    rows = read_samples(args.file)
    with data_errors(f"FILE {args.file!r}"):
        samples = group_samples(rows)
    n, c = samples.n, samples.c
    n_min = int(n.min())
    ks = args.k or [k for k in _POWERS_OF_2 if k <= n_min]
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
        print(to_json(result), end="")
        return
    print(f"{len(n)} problems, {n_min}-{int(n.max())} samples each.\n")
    lines = []
    for k in ks:
        d = result["decomposition"][str(k)]
        values = (result["pass@k"][str(k)], d["mean_pass@1"], d["var_pass@1"], d["bias_term"], d["jensen_gap"])
        lines.append([f"pass@{k}"] + [f"{round(v, 4) + 0.0:.4f}" for v in values])  # + 0.0: no "-0.0000"
    print(table(["metric", "value", "mean pass@1", "var pass@1", "(1 - mean)^k", "Jensen gap"], lines))
    extra = [f"maj@{k_vote}"] + ([f"best@{k_vote}"] if samples.scores is not None else [])
    print("\n" + "  ".join(f"{name} {result[name]:.4f}" for name in extra))


def read_samples(path: str) -> list[dict[str, Any]]:
    """Rows of a CSV (with a header) or JSONL file."""
    if not os.path.isfile(path):
        raise InputError(f"FILE {path!r} does not exist; pass a CSV or JSONL file with one sample per row.")
    jsonl = path.endswith((".jsonl", ".json"))
    try:
        with open(path, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()] if jsonl else list(csv.DictReader(handle))
    except json.JSONDecodeError as exc:
        raise InputError(f"FILE {path!r} is not JSON lines ({exc}); write one JSON object per line.") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"FILE {path!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8."
        ) from None
    except csv.Error as exc:
        raise InputError(
            f"FILE {path!r} is not a readable CSV ({exc}); write a header row, then one sample per row."
        ) from None
    except OSError as exc:
        raise InputError(f"FILE {path!r} cannot be read ({exc.strerror or exc}); check its permissions.") from None
    if not rows:
        raise InputError(f"FILE {path!r} has no samples.")
    return rows
