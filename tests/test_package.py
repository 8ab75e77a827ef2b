import json
import subprocess
import sys

import numpy as np
import pytest

import ontheline as otl


def test_importing_ontheline_imports_only_numpy_and_scipy():
    code = "import sys, json, ontheline; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    )
    assert not loaded & {"torch", "pandas", "matplotlib", "dask", "sklearn", "numba"}
    assert {"numpy", "scipy"} <= loaded


def test_to_frame_names_the_extra_when_pandas_is_missing_and_works_when_present():
    id_preds, id_labels, ood_preds, _ = otl.make_line_zoo(n_models=8, random_state=0)
    res = otl.ALineD(n_bootstrap=10).fit(id_preds, id_labels).estimate(ood_preds)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'ontheline\[frame\]'"):
            res.to_frame()
    else:
        frame = res.to_frame()
        np.testing.assert_allclose(frame["aline-d"], res.ood_accuracy)
        assert list(frame.columns) == ["id_accuracy", "aline-d", "low", "high"]


def test_evaluate_runs_every_method_and_scores_them_against_labels():
    id_preds, id_labels, ood_preds, ood_labels = otl.make_line_zoo(n_models=8, random_state=0)
    evaluation = otl.evaluate(id_preds, id_labels, ood_preds, ood_labels=ood_labels, n_bootstrap=0)
    assert list(evaluation.results) == [*otl.METHODS, "auto"]  # auto by default, after the methods it chooses among
    truth = otl.accuracy(ood_preds, ood_labels)
    for method, mae in evaluation.mae().items():
        assert mae == pytest.approx(100 * np.abs(evaluation.results[method].ood_accuracy - truth).mean())  # points
    json.dumps(evaluation.to_dict())  # JSON-ready


def test_the_product_never_imports_the_research_wing():
    import ast
    from pathlib import Path

    package = Path(otl.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        part = path.relative_to(package).parts[0]
        if part in ("research", "cli"):  # the wing itself; the command line is a face over both
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(package)}: {n}" for n in names if n.startswith("ontheline.research")]
    assert offenders == []


def test_a_missing_optional_package_names_the_extra_that_brings_it(monkeypatch):
    import builtins

    from ontheline._optional import extra

    real_import = builtins.__import__

    def without_torch(name, *args, **kwargs):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_torch)
    message = r"comes with the 'torch' extra: pip install 'ontheline\[torch\]'"
    with pytest.raises(ImportError, match=message), extra("torch"):
        import torch  # noqa: F401
