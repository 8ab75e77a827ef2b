"""``ontheline adapt``: the label-free choice of a test-time adaptation for the user's own torch models."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from ontheline._io import read_npz
from ontheline._progress import ConsoleProgress
from ontheline._validation import InputError
from ontheline.adapt import METHODS as ADAPT_METHODS
from ontheline.cli._common import (
    data_errors,
    one_line,
    pct,
    positive_float,
    positive_int,
    table,
    to_json,
    unit_float,
    writing,
)

#: The command-line flag of each AdaptConfig parameter, to name it when a value is refused.
ADAPT_FLAGS = {"method": "--method", "lr": "--lr", "steps": "--steps", "batch_size": "--batch-size"}


def register(sub: Any) -> None:
    """Add ``adapt`` to the subparsers ``sub``."""
    adapt = sub.add_parser("adapt", help="choose the test-time adaptation of your torch models without OOD labels")
    adapt.add_argument("--arch", required=True, help="module:function that builds one untrained nn.Module")
    adapt.add_argument("--weights", action="append", required=True, help="a model's .safetensors or .pt (repeat)")
    adapt.add_argument("--id", required=True, help="NPZ with inputs x and labels (labelled ID data)")
    adapt.add_argument("--ood", required=True, help="NPZ with inputs x; labels optional (only to report the truth)")
    adapt.add_argument("--method", action="append", choices=ADAPT_METHODS, help="a method to try (repeat; default all)")
    adapt.add_argument("--lr", action="append", type=positive_float, help="a learning rate to try (repeat)")
    adapt.add_argument("--steps", type=positive_int, default=1, help="adaptation steps per batch")
    adapt.add_argument("--batch-size", type=positive_int, default=128, help="test batch size")
    adapt.add_argument("--min-r2", type=unit_float, default=0.95, help="trust threshold on the agreement line's R²")
    adapt.add_argument("--store", help="the prediction store (default $ONTHELINE_STORE or ~/.cache/ontheline)")
    adapt.add_argument("--format", choices=("table", "json"), default="table")
    adapt.set_defaults(run=run_adapt, lr=None)


@contextmanager
def adapt_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """A value AdaptConfig refuses came from the command line: an :class:`InputError` naming its flag in ``flags``."""
    try:
        yield
    except ValueError as exc:
        raise InputError(f"{refused_flag(str(exc), flags)}: {exc}") from exc


def refused_flag(message: str, flags: Mapping[str, str]) -> str:
    """The flag of the parameter that ``message`` quotes (AdaptConfig's "The 'lr' parameter ..."), else every flag."""
    named = [flag for name, flag in flags.items() if f"'{name}'" in message]
    return "/".join(named or flags.values())


def run_adapt(args: argparse.Namespace) -> None:
    from ontheline.adapt import select_adaptation
    from ontheline.runners import Dataset
    from ontheline.store import Store

    models = _load_models(_factory(args.arch), args.arch, args.weights)
    id_x, id_y = _load_inputs(args.id, "id", labels_required=True)
    ood_x, ood_y = _load_inputs(args.ood, "ood", labels_required=False)
    for flag, path, x in (("--id", args.id, id_x), ("--ood", args.ood, ood_x)):
        _check_runs(models[0], x, flag, path)
    grid = _grid(args)
    store = Store(args.store)
    # Labels that do not fit raise InputError, a zoo no adaptation gives a line EstimationError.
    with writing("--store", store.path):
        choice = select_adaptation(
            models, Dataset("id", id_x), id_y, Dataset("ood", ood_x), grid, ood_labels=ood_y,
            store=store, min_r2=args.min_r2, progress=ConsoleProgress(),
        )  # fmt: skip
        best = choice.best
    if args.format == "json":
        print(to_json(choice.to_dict()), end="")
        return
    header = ["adaptation", "estimated OOD acc", "agreement R²", "trusted"]
    header += ["true OOD acc"] if ood_y is not None else []
    rows = [
        [c.label, pct(c.estimated_accuracy), f"{c.agreement_r2:.3f}", not c.trust_issues]
        + ([pct(c.true_accuracy)] if ood_y is not None else [])
        for c in choice.candidates
    ]
    print(table(header, rows))
    if best.trust_issues:
        print(f"\nChosen without labels: {best.label}, the highest ALine-D estimated mean OOD accuracy; but no")
        print(f"candidate's agreement line can be trusted ({'; '.join(best.trust_issues)}), so check it with labels.")
    else:
        print(f"\nChosen without labels: {best.label} (the highest ALine-D estimated mean OOD accuracy of the")
        print("candidates whose agreement line can be trusted).")
    if choice.best_with_labels is not None:
        print(f"With the OOD labels the best is {choice.best_with_labels.label}.")


def _factory(arch: str) -> Callable[[], Any]:
    """The function ``module:function`` names; importing the user's module runs the user's code."""
    import importlib

    module_name, _, factory_name = arch.partition(":")
    try:
        return getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError, ValueError):
        raise InputError(
            f"--arch {arch!r} is not an importable 'module:function'; pass e.g. mypkg.models:make_net "
            "(a function that returns the untrained nn.Module) and put its folder on PYTHONPATH."
        ) from None
    except Exception as exc:  # the module itself failed (a SyntaxError, its own error): the user's code
        raise InputError(
            f"--arch {arch!r}: importing {module_name} raised {_described(exc)}; fix that module."
        ) from exc


def _load_models(factory: Callable[[], Any], arch: str, weights: list[str]) -> list[Any]:
    from ontheline.runners import load_torch

    if len(weights) < 3:
        raise InputError(f"--weights was given {len(weights)} times; the agreement line needs at least 3 models.")
    models = []
    for path in weights:
        try:
            network = factory()
        except Exception as exc:  # the user's function
            raise InputError(f"--arch {arch!r}: calling it raised {_described(exc)}; fix that function.") from exc
        try:
            models.append(load_torch(network, path))
        except RuntimeError as exc:  # the weights do not fit the network --arch builds
            raise InputError(f"--weights {path!r} does not fit {arch}(): {str(exc).splitlines()[0]}") from None
        except ValueError as exc:  # not a weights file at all
            raise InputError(f"--weights: {exc}") from None
    return models


def _load_inputs(path: str, role: str, *, labels_required: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """An NPZ with the model inputs ``x`` (n_samples, ...) and, for ID, the true ``labels``."""
    flag = f"--{role}"
    arrays = read_npz(path, flag, fix="save x (and labels) with numpy.savez")
    if "x" not in arrays:
        raise InputError(f"{flag} file {path!r} has no 'x' key; it needs the model inputs as x (n_samples, ...).")
    if labels_required and "labels" not in arrays:
        raise InputError(f"{flag} file {path!r} has no 'labels' key; the ID file needs the true labels.")
    with data_errors(f"{flag} file {path!r}: 'x'"):
        x = arrays["x"].astype(np.float32)
    return x, arrays.get("labels")


def _check_runs(model: Any, x: np.ndarray, flag: str, path: str) -> None:
    """Run ``model`` on two samples of ``x``: inputs the network cannot take are the user's, said before any work."""
    try:
        model.predict_proba(x[:2])
    except Exception as exc:
        raise InputError(
            f"{flag} file {path!r}: the network --arch builds cannot run on x of shape {x.shape} ({_described(exc)}); "
            "save x with the shape the network takes, with the samples first."
        ) from exc


def _grid(args: argparse.Namespace) -> list[Any]:
    """The configurations to try: those asked for, else the default grid."""
    from ontheline.adapt import AdaptConfig, default_grid

    with adapt_flags(ADAPT_FLAGS):
        if not args.method:
            return default_grid(args.batch_size)
        # BN-adapt takes no step, so its learning rate is irrelevant: one config
        configs = (
            AdaptConfig(m, lr=1e-3 if m == "bn" else lr, steps=args.steps, batch_size=args.batch_size)
            for m in args.method
            for lr in args.lr or [1e-3]
        )
        return list(dict.fromkeys(configs))


def _described(exc: BaseException) -> str:
    """``Type: first line of the message`` (torch's messages run to many lines)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {one_line(lines[0])}" if lines else type(exc).__name__
