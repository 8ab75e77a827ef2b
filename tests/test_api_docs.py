"""The public API documents itself: every exported name has a docstring with an example that runs
(the examples themselves run as doctests, ``--doctest-modules``), every exported constant a ``#:``
comment, and every paper's method a ``References`` section that names the paper."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pydoc
import re
from pathlib import Path
from types import ModuleType

import pytest

#: The public modules, and the package an optional extra brings that each needs to import (None: none).
PUBLIC_MODULES = {
    "ontheline": None,
    "ontheline.agreement": None,
    "ontheline.predictions": None,
    "ontheline.estimators": None,
    "ontheline.evaluate": None,
    "ontheline.store": None,
    "ontheline.runners": None,
    "ontheline.adapt": None,
    "ontheline.zoo": None,
    "ontheline.shifts": None,
    "ontheline.synthetic": None,
    "ontheline.research.sam": "torch",
    "ontheline.research.passk": None,
    "ontheline.research.wise_ft": None,
    "ontheline.research.mcr2": "torch",
    "ontheline.research.rewards": None,
    "ontheline.research.rewards.minigrid": "minigrid",
    "ontheline.research.lm": "torch",
    "ontheline.research.confidence": "torch",
    "ontheline.research.interaction": None,
    "ontheline.research.fm_agl": "torch",
    "ontheline.research.cpi": "torch",
}

#: The objects that implement a paper's method, by the public module that exports them.
PAPER_METHODS = {
    "ontheline.estimators": (
        "ALineS",
        "ALineD",
        "ATC",
        "DoC",
        "AC",
        "COT",
        "COTT",
        "GDE",
        "DIS2",
        "vote_ensemble",
        "calibration_curve",
        "class_aggregated_calibration_error",
        "class_wise_calibration_error",
        "gde_gap",
        "gde_diagnostics",
    ),
    "ontheline.adapt": ("AdaptConfig", "Adapted", "AdaptedModel", "select_adaptation"),
    "ontheline.shifts": ("corrupt",),
    "ontheline.zoo": ("train_probes",),
    "ontheline.research.sam": ("SAM", "sam_gradient", "head_penalty"),
    "ontheline.research.passk": ("pass_at_k", "pass_at_k_decomposition", "best_at_k", "maj_at_k"),
    "ontheline.research.wise_ft": ("interpolate", "interpolate_files"),
    "ontheline.research.mcr2": (
        "coding_rate",
        "compression_rate",
        "rate_reduction",
        "mcr2_loss",
        "VariationalMCR2",
        "variational_objective",
        "ReduNet",
        "ReduLayer",
    ),
    "ontheline.research.rewards": ("value_iteration",),
    "ontheline.research.interaction": (
        "InteractionTensor",
        "build_interaction_tensor",
        "principal_features",
        "cluster_features",
        "tensor_statistics",
        "threshold_sweep",
        "FeatureModel",
        "miss_probability",
        "expected_accuracy",
        "expected_agreement",
        "expected_gde_gap",
        "simulate",
        "fit_feature_model",
        "gde_breaking_model",
        "gde_holding_model",
    ),
    "ontheline.research.fm_agl": ("build_zoo", "paper_finding"),
    "ontheline.research.confidence": (
        "confidence_trajectory",
        "confidence_trajectories",
        "progressiveness",
        "classify",
        "overconfidence",
        "pcs_weights",
        "pcs_penalty",
        "pcs_advantages",
        "pcs_reward",
    ),
    "ontheline.research.cpi": ("conflict_accuracies", "train_theory"),
    "ontheline.research.rewards.minigrid": ("MazeEnv", "DoorsEnv", "q_learning"),
}

ARXIV_ID = re.compile(r"arXiv:\d{4}\.\d{4,5}")
YEAR = re.compile(r"\b(19|20)\d{2}\b")
VENUE = re.compile(r"\b(NeurIPS|ICLR|ICML|ICCV|CVPR|ECCV|COLM|JMLR|JAIR|arXiv)\b")


def _import(name: str) -> ModuleType:
    """The public module ``name``; skipped (only it) when the optional extra it needs is missing."""
    extra = PUBLIC_MODULES[name]
    if extra is not None:
        pytest.importorskip(extra, reason=f"{name} needs an optional extra, which make test installs")
    return importlib.import_module(name)


def _exported(module: ModuleType) -> list[tuple[str, object]]:
    return [(name, getattr(module, name)) for name in getattr(module, "__all__", ()) if hasattr(module, name)]


def _is_constant(obj: object) -> bool:
    return not (inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj))


def _assignment_line(module: ModuleType, name: str, seen: frozenset[str] = frozenset()) -> tuple[Path, int] | None:
    """Where ``name`` is assigned at the top level of ``module``'s source (following ``from X import name``)."""
    path = Path(inspect.getsourcefile(module))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return path, node.lineno
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module not in seen
            and any((alias.asname or alias.name) == name for alias in node.names)
        ):
            return _assignment_line(importlib.import_module(node.module), name, seen | {node.module})
    return None


def _references(doc: str) -> str:
    """The text of a numpydoc ``References`` section ('' when there is none)."""
    match = re.search(r"^\s*References\s*\n\s*-{3,}\s*\n(.*?)(?=^\s*\w[\w ]*\n\s*-{3,}\s*$|\Z)", doc, re.M | re.S)
    return match.group(1) if match else ""


def _missing_from_all(module: ModuleType) -> list[str]:
    """The names ``module.__all__`` lists that ``module`` does not have."""
    return [name for name in module.__all__ if not hasattr(module, name)]


def _undocumented(module: ModuleType) -> list[str]:
    """Every exported class or function without a docstring, or whose docstring has no ``>>>`` example."""
    offenders = []
    for name, obj in _exported(module):
        if _is_constant(obj):
            continue
        doc = obj.__doc__
        if not doc or not doc.strip():
            offenders.append(f"{module.__name__}.{name}: no docstring")
        elif ">>>" not in doc:
            offenders.append(f"{module.__name__}.{name}: no example (>>>) in its docstring")
    return offenders


def _undocumented_constants(module: ModuleType) -> list[str]:
    """Every exported constant without a ``#:`` comment on the line directly above its assignment."""
    offenders = []
    for name, obj in _exported(module):
        if not _is_constant(obj):
            continue
        where = _assignment_line(module, name)
        if where is None:
            offenders.append(f"{module.__name__}.{name}: no assignment found in the source")
            continue
        path, line = where
        above = path.read_text(encoding="utf-8").splitlines()[line - 2] if line > 1 else ""
        if not above.strip().startswith("#:"):
            offenders.append(f"{module.__name__}.{name}: no '#:' comment on the line above {path.name}:{line}")
    return offenders


def _uncited(module: ModuleType, names: tuple[str, ...]) -> list[str]:
    """Every one of ``names`` whose docstring lacks a References section with an arXiv id, a year and a venue."""
    offenders = []
    for name in names:
        if name not in getattr(module, "__all__", ()):
            offenders.append(f"{module.__name__}.{name}: not in __all__ (fix PAPER_METHODS, or export it)")
            continue
        references = _references(getattr(module, name).__doc__ or "")
        if not references:
            offenders.append(f"{module.__name__}.{name}: no References section")
            continue
        lacks = [
            what
            for what, found in (
                ("an arXiv id", ARXIV_ID.search(references)),
                ("a year", YEAR.search(ARXIV_ID.sub("", references))),  # not the digits of an arXiv id
                ("a venue or 'arXiv'", VENUE.search(references)),
            )
            if not found
        ]
        if lacks:
            offenders.append(f"{module.__name__}.{name}: its References lack {', '.join(lacks)}")
    return offenders


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_lists_its_api_in_all(name):
    module = _import(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__ list"
    assert not _missing_from_all(module), f"{name}.__all__ names what {name} does not have: {_missing_from_all(module)}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_class_and_function_has_a_docstring_with_an_example(name):
    offenders = _undocumented(_import(name))
    assert not offenders, "Public names that are not documented with an example:\n" + "\n".join(offenders)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_constant_has_a_doc_comment_above_its_assignment(name):
    offenders = _undocumented_constants(_import(name))
    assert not offenders, "Public constants without a '#:' comment:\n" + "\n".join(offenders)


@pytest.mark.parametrize("name", PAPER_METHODS)
def test_every_paper_method_cites_its_paper_with_an_arxiv_id_a_year_and_a_venue(name):
    offenders = _uncited(_import(name), PAPER_METHODS[name])
    assert not offenders, "Paper methods that do not cite their paper:\n" + "\n".join(offenders)


def test_help_for_alined_shows_its_references():
    import ontheline

    text = pydoc.render_doc(ontheline.ALineD, renderer=pydoc.plaintext)
    assert "References" in text
    assert "2206.13089" in text


BROKEN_API = '''"""A module that breaks each rule once."""

__all__ = ["LIMIT", "TOLERANCE", "Thing", "cited", "uncited", "bare", "missing"]

#: Documented.
LIMIT = 3
TOLERANCE = 0.1  # a comment beside it is not a doc comment


class Thing:
    """No example."""


def cited():
    """Cited and shown.

    References
    ----------
    .. [1] A. Author, "A Paper", ICML 2020, arXiv:2001.00001.

    Examples
    --------
    >>> cited()
    """


def uncited():
    """Shown but cited without an arXiv id.

    References
    ----------
    .. [1] A. Author, "A Paper", ICML 2020.

    Examples
    --------
    >>> uncited()
    """


def bare():
    pass
'''


def test_the_checks_name_every_offender_of_a_module_at_once(tmp_path):
    path = tmp_path / "broken_api.py"
    path.write_text(BROKEN_API, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("broken_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert _missing_from_all(module) == ["missing"]
    assert _undocumented(module) == [
        "broken_api.Thing: no example (>>>) in its docstring",
        "broken_api.bare: no docstring",
    ]
    assert _undocumented_constants(module) == [
        "broken_api.TOLERANCE: no '#:' comment on the line above broken_api.py:7"
    ]
    assert _uncited(module, ("cited", "uncited", "bare", "Other")) == [
        "broken_api.uncited: its References lack an arXiv id",
        "broken_api.bare: no References section",
        "broken_api.Other: not in __all__ (fix PAPER_METHODS, or export it)",
    ]
