"""``ontheline probe``: a zoo of linear probes trained on one backbone's features, estimated as ``estimate`` does.

The three NPZ files hold ``features`` ``(n_samples, n_features)`` (the backbone's embeddings,
``ontheline embed`` writes them) and ``labels`` ``(n_samples,)``, which the OOD file may leave
out. The probes train on ``--train``, predict ``--id`` and ``--ood``, and the estimates are
printed and reported exactly as ``ontheline estimate`` prints and reports them; the JSON's
``settings`` gains the zoo's recipe under ``"probe"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._io import read_npz
from ontheline._optional import extra
from ontheline._validation import InputError
from ontheline.cli._common import data_errors, non_negative_int, positive_float, positive_int
from ontheline.cli.estimate import add_estimate_options, check_keep, check_outputs, print_evaluation, write_outputs
from ontheline.evaluate import evaluate
from ontheline.zoo.probes import DIVERSITY_SOURCES, train_probes

_FIX = "save features (and labels) with numpy.savez"


def register(sub: Any) -> None:
    """Add ``probe`` to the subparsers ``sub``."""
    parser = sub.add_parser(
        "probe", help="train a zoo of linear probes on a backbone's features (NPZ) and estimate their OOD accuracy"
    )
    parser.add_argument(
        "--train", required=True, help="NPZ with features (n, d) and labels (n,): the probes' training set"
    )
    add_estimate_options(
        parser,
        id_help="NPZ with features (n, d) and labels (n,): labelled ID data, not the training set",
        ood_help="NPZ with features (n, d); labels (n,) optional",
        title="ontheline probe",
    )
    parser.add_argument("--models", type=positive_int, default=64, help="the number of probes (default 64)")
    parser.add_argument(
        "--diversity", choices=DIVERSITY_SOURCES, default="random-head",
        help="what differs between probes beside their training steps: the random initial head (default), "
        "the data order, or a random data subset",
    )  # fmt: skip
    parser.add_argument(
        "--subset-fraction",
        type=_fraction,
        default=0.1,
        help="with --diversity subset: each probe's share of TRAIN (default 0.1)",
    )
    parser.add_argument(
        "--steps", nargs=2, type=positive_int, default=[10, 300], metavar=("MIN", "MAX"),
        help="training steps, log-spaced over the probes from MIN to MAX (default 10 300)",
    )  # fmt: skip
    parser.add_argument("--lr", type=positive_float, default=1e-2, help="Adam's learning rate (default 0.01)")
    parser.add_argument(
        "--weight-decay", type=_non_negative_float, default=0.0, help="L2 penalty on the weights (default 0)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=128, help="samples per step (default 128)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seeds the heads, orders and subsets")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--report", metavar="FILE", help="also write the HTML report to this file")
    parser.set_defaults(run=run_probe, report_flag="--report")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def run_probe(args: argparse.Namespace) -> None:
    check_outputs(args)
    check_keep(args)
    if args.steps[0] > args.steps[1]:
        raise InputError(f"--steps MIN MAX needs MIN <= MAX; got {args.steps[0]} {args.steps[1]}. Try --steps 10 300.")
    train_x, train_y = load_features(args.train, "train", labels_required=True)
    assert train_y is not None
    id_x, id_y = load_features(args.id, "id", labels_required=True, n_features=train_x.shape[1])
    ood_x, ood_y = load_features(args.ood, "ood", labels_required=False, n_features=train_x.shape[1])
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise InputError(
            f"--train file {args.train!r}: the labels hold only the class {classes.tolist()}; "
            "the probes need at least 2 classes to learn from."
        )
    _check_classes(id_y, classes, "--id", args.id)
    _check_classes(ood_y, classes, "--ood", args.ood)
    if args.diversity == "subset" and round(args.subset_fraction * len(train_x)) < 1:
        raise InputError(
            f"--subset-fraction {args.subset_fraction:g} of the {len(train_x)} --train samples is less than one "
            "sample; pass a larger fraction."
        )

    with extra("torch"):
        import torch  # noqa: F401  (loaded before the clock starts: the time printed is the training's)
    start = time.perf_counter()
    with data_errors(f"--train file {args.train!r}"):
        zoo = train_probes(
            train_x, train_y, n_models=args.models, diversity=args.diversity, subset_fraction=args.subset_fraction,
            steps=tuple(args.steps), lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
            seed=args.seed,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    evaluation = evaluate(
        zoo.predictions(id_x), id_y, zoo.predictions(ood_x), methods=args.method, ood_labels=ood_y,
        min_r2=args.min_r2, n_bootstrap=args.bootstrap, keep=tuple(args.keep), calibrate=args.calibrate,
        bounds=("dis2",) if args.bounds else (),
    )  # fmt: skip
    evaluation = dataclasses.replace(evaluation, settings={**evaluation.settings, "probe": zoo.to_dict()})
    print(
        f"Trained {len(zoo)} linear probes ({args.diversity}, {args.steps[0]}-{args.steps[1]} steps) on "
        f"{train_x.shape[0]} x {train_x.shape[1]} features in {seconds:.1f} s.",
        file=sys.stderr,
    )
    print_evaluation(evaluation, args.format)
    source = f"train: {Path(args.train).name}, ID: {Path(args.id).name}, OOD: {Path(args.ood).name}"
    write_outputs(evaluation, args, source=source)


def load_features(
    path: str, role: str, *, labels_required: bool, n_features: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One NPZ of ``features`` ``(n_samples, n_features)`` and ``labels`` ``(n_samples,)``, checked;
    ``n_features``, when given, is what the ``--train`` features have."""
    flag = f"--{role}"
    arrays = read_npz(path, flag, fix=_FIX)
    name = f"{flag} file {path!r}"
    if "features" not in arrays:
        raise InputError(
            f"{name} has no 'features' key (found {sorted(arrays)}); it needs the backbone's embeddings as "
            "features (n_samples, n_features)."
        )
    x = arrays["features"]
    if x.ndim != 2:
        raise InputError(f"{name}: 'features' must be a 2-D array (n_samples, n_features); got shape {x.shape}.")
    if x.dtype.kind not in "fiu":
        raise InputError(f"{name}: 'features' must hold real numbers; got dtype {x.dtype}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name}: 'features' is empty (shape {x.shape}); it needs at least one sample and feature.")
    if n_features is not None and x.shape[1] != n_features:
        raise InputError(
            f"{name}: 'features' has {x.shape[1]} columns but the --train features have {n_features}; "
            "embed every set with the same backbone."
        )
    if not np.isfinite(x).all():
        raise InputError(f"{name}: 'features' holds NaN or infinite values; every feature must be finite.")
    if "labels" not in arrays:
        if labels_required:
            why = "the probes learn from them" if role == "train" else "the ID file needs the true labels"
            raise InputError(f"{name} has no 'labels' key; {why} (n_samples,).")
        return x, None
    return x, _labels(arrays["labels"], len(x), name)


def _labels(labels: np.ndarray, n_samples: int, name: str) -> np.ndarray:
    """Class labels as integers or strings: whole floats and booleans become integers, bytes become strings."""
    if labels.ndim != 1 or len(labels) != n_samples:
        raise InputError(
            f"{name}: 'labels' must be a 1-D array with one label per row of 'features' ({n_samples}); "
            f"got shape {labels.shape}."
        )
    kind = labels.dtype.kind
    if kind == "f":
        if not np.isfinite(labels).all() or not np.all(labels == np.round(labels)):
            raise InputError(f"{name}: 'labels' must hold class labels; it has non-integer or non-finite values.")
        return labels.astype(np.int64)
    if kind == "b":
        return labels.astype(np.int64)
    if kind == "S":
        with data_errors(f"{name}: 'labels'"):
            return np.char.decode(labels, "utf-8")
    if kind not in "iuU":
        raise InputError(f"{name}: 'labels' must be integers or strings; got dtype {labels.dtype}.")
    return labels


def _check_classes(labels: np.ndarray | None, classes: np.ndarray, flag: str, path: str) -> None:
    """The labels of ``flag`` must be classes of the training labels: those are all the probes predict."""
    if labels is None:
        return
    text = labels.dtype.kind == "U"
    if text != (classes.dtype.kind == "U"):
        kinds = {True: "string", False: "integer"}
        raise InputError(
            f"{flag} file {path!r} has {kinds[text]} labels but the --train labels are {kinds[not text]}s; "
            "label every set the same way."
        )
    unknown = np.setdiff1d(labels, classes)
    if unknown.size:
        raise InputError(
            f"{flag} file {path!r}: labels {unknown[:5].tolist()} are not among the --train classes "
            f"{classes[:20].tolist()}; the probes only predict classes they were trained on."
        )
