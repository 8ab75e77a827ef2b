"""The lab's public API documents itself: every exported name has a docstring with an example, every
constant a ``#:`` comment, and every method from a paper a References section that names it."""

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import ontheline.research.lm as lm

CITED = ("arithmetic", "digit_sums", "markov_text", "FactWorld", "interpolate_models")


def _is_constant(obj):
    return not (inspect.isclass(obj) or inspect.ismodule(obj) or callable(obj))


def test_every_exported_class_and_function_has_a_docstring_with_an_example():
    missing = [
        name
        for name in lm.__all__
        if not _is_constant(getattr(lm, name)) and ">>>" not in (getattr(lm, name).__doc__ or "")
    ]
    assert not missing, missing


def test_every_exported_constant_has_a_doc_comment_above_its_assignment():
    sources = {path: path.read_text().splitlines() for path in Path(lm.__file__).parent.rglob("*.py")}
    undocumented = []
    for name in (n for n in lm.__all__ if _is_constant(getattr(lm, n))):
        found = False
        for lines in sources.values():
            for node in ast.parse("\n".join(lines)).body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign)
                    else []
                )
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found = node.lineno > 1 and lines[node.lineno - 2].strip().startswith("#:")
        if not found:
            undocumented.append(name)
    assert not undocumented, undocumented


def test_the_methods_from_papers_cite_them_with_an_arxiv_id():
    for name in CITED:
        doc = getattr(lm, name).__doc__
        references = doc.split("References\n")[1] if "References\n" in doc else ""
        assert re.search(r"arXiv:\d{4}\.\d{4,5}", references), name


def test_importing_the_lab_loads_neither_torch_nor_transformers():
    code = "import sys, ontheline.research.lm; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
