"""The reports in a real browser: headless Debian chromium driven by Playwright (make test installs chromium)."""

import numpy as np
import pytest

pytest.importorskip("playwright", reason="the browser test needs the dev extra, which make test installs")

from ontheline.cli import main  # noqa: E402
from ontheline.report import benchmark_report  # noqa: E402
from ontheline.report.browser import open_report  # noqa: E402

HOSTILE = "<script>alert(1)</script>"

# The text of every cell of one column, in the order the rows are shown.
_COLUMN = """([table, col]) => Array.from(document.querySelectorAll("table.sortable")[table].tBodies[0].rows,
                                  r => r.cells[col].textContent.trim())"""


@pytest.fixture(scope="module")
def estimate_page(tmp_path_factory, digits_zoo):
    """The page `ontheline estimate --report` writes for a digits zoo with a hostile model name."""
    folder = tmp_path_factory.mktemp("estimate-report")
    id_probs, id_labels, ood_probs, ood_labels, names = digits_zoo
    names = [HOSTILE, *names[1:]]
    np.savez(folder / "id.npz", probs=id_probs, labels=id_labels, models=np.array(names))
    np.savez(folder / "ood.npz", probs=ood_probs, labels=ood_labels, models=np.array(names))
    html = folder / "report.html"
    assert (
        main(["estimate", "--id", str(folder / "id.npz"), "--ood", str(folder / "ood.npz"), "--report", str(html)]) == 0
    )
    return html


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory, generated_benchmark):
    html = tmp_path_factory.mktemp("demo-report") / "report.html"
    html.write_text(benchmark_report(generated_benchmark), encoding="utf-8")
    return html


def _numbers(texts):
    return [float(t) for t in texts]


def test_the_estimate_report_renders_plots_a_sortable_table_and_shows_names_as_text(estimate_page, tmp_path):
    with open_report(estimate_page) as opened:
        page = opened.page
        assert page.locator("#trust").is_visible()
        assert page.locator("svg.plot").count() >= 2  # the agreement plot and estimated vs true
        n_models = len(page.evaluate(_COLUMN, [0, 1]))
        pairs = n_models * (n_models - 1) // 2
        assert page.locator("svg.plot").first.locator("circle").count() >= pairs + 2 * n_models

        # Ranked by ALine-D: the first column counts up from 1.
        assert _numbers(page.evaluate(_COLUMN, [0, 0])) == list(range(1, n_models + 1))
        header = page.locator("table.sortable").first.locator("th", has_text="ID acc")
        header.click()
        ascending = _numbers(page.evaluate(_COLUMN, [0, 2]))
        assert ascending == sorted(ascending) and len(set(ascending)) > 1
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        assert _numbers(page.evaluate(_COLUMN, [0, 2])) == sorted(ascending, reverse=True)

        assert HOSTILE in page.evaluate(_COLUMN, [0, 1])  # shown as text, never run
        page.screenshot(path=str(tmp_path / "estimate.png"), full_page=True)
        assert opened.errors == [] and opened.dialogs == []
    assert (tmp_path / "estimate.png").stat().st_size > 10_000


def test_the_demo_report_renders_every_shift_and_sorts_the_shift_table(demo_page, tmp_path):
    with open_report(demo_page) as opened:
        page = opened.page
        details = page.locator("details")
        assert details.count() > 0
        details.first.locator("summary").click()  # open one shift: its section is inflated on the spot
        details.first.locator("svg.plot circle").first.wait_for(state="visible", timeout=10_000)
        models = details.first.locator("table.sortable")
        models.locator("th", has_text="ID acc").click()  # the inflated table sorts too
        id_acc = _numbers(t.strip() for t in models.locator("tbody tr td:nth-child(2)").all_text_contents())
        assert id_acc == sorted(id_acc) and len(id_acc) > 1
        shifts = page.locator("table#shifts")
        header = [h.strip() for h in shifts.locator("th").all_text_contents()]
        r2 = header.index("agreement R²")
        shifts.locator("th").nth(r2).click()
        texts = [t.strip() for t in shifts.locator(f"tbody tr td:nth-child({r2 + 1})").all_text_contents()]
        values = _numbers(t for t in texts if t)  # shifts without a line have no R² and sort last
        assert values == sorted(values) and texts[len(values) :] == [""] * (len(texts) - len(values))
        assert len(texts) == details.count()
        page.screenshot(path=str(tmp_path / "demo.png"))
        assert opened.errors == [] and opened.dialogs == []
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_a_broken_script_is_caught_as_a_console_error(tmp_path):
    """The console check can fail: a page with a script error is reported."""
    html = tmp_path / "broken.html"
    html.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction()</script></body></html>")
    with open_report(html) as opened:
        assert any("undefinedFunction" in e for e in opened.errors)
