"""The Python code blocks of README.md and docs/*.md run, as a reader would paste them.

Each file's ```python blocks run in order in one namespace (a later block may use what an
earlier one made), in a fresh folder with its own prediction store. A block preceded by an
HTML comment ``<!-- not run: REASON -->`` is shown but not run (say why: a 30-minute job).
"""

import re
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(<!-- not run: [^>]+ -->\s*\n)?[ ]*```python\n(.*?)[ ]*```", re.DOTALL)


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """``(line, code, runs)`` of every ```python block in ``path``."""
    text = path.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, textwrap.dedent(m.group(2)), m.group(1) is None)
        for m in _BLOCK.finditer(text)
    ]


@pytest.mark.parametrize("path", [p for p in FILES if python_blocks(p)], ids=lambda p: p.name)
def test_the_python_blocks_of_the_docs_run(path, tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="some blocks use torch, which make test installs")
    pytest.importorskip("matplotlib", reason="some blocks plot, which the plot extra makes possible")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONTHELINE_STORE", str(tmp_path / "store"))
    namespace: dict = {"__name__": "__docs__"}
    for line, code, runs in python_blocks(path):
        if not runs:
            continue
        with warnings.catch_warnings():
            # The library's own warnings (an untrusted line, say) are part of what a reader sees;
            # a deprecation is a defect of the docs.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", FutureWarning)
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"The block at {path.name}:{line} fails: {type(exc).__name__}: {exc}") from exc
    import matplotlib.pyplot as plt

    plt.close("all")


def test_every_block_that_is_not_run_says_why():
    for path in FILES:
        for marker in re.findall(r"<!-- not run: ([^>]*) -->", path.read_text(encoding="utf-8")):
            assert len(marker.strip()) > 5, f"{path.name}: a block is not run without a reason"
