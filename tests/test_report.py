import re
from html.parser import HTMLParser

import numpy as np
import pytest

from ontheline.agreement import AgreementLine
from ontheline.bench.config import ShiftSpec
from ontheline.bench.score import ShiftScore
from ontheline.report import benchmark_report
from ontheline.report.bench import shift_plot


class _Balance(HTMLParser):
    """Counts tags left open, ignoring the void elements HTML allows unclosed."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def tiny(generated_benchmark):
    return generated_benchmark


def _inflated(html):
    """The page's compressed sections, decoded as the browser does when they are opened."""
    import base64
    import gzip

    return [gzip.decompress(base64.b64decode(p)).decode("utf-8") for p in re.findall(r'data-gz="([^"]+)"', html)]


def test_the_benchmark_report_is_one_well_formed_self_contained_page(tiny):
    page = benchmark_report(tiny)
    sections = _inflated(page)
    html = page + "".join(sections)
    for part in [page, *sections]:
        parser = _Balance()
        parser.feed(part)
        assert parser.errors == [] and parser.stack == []
    assert len(sections) == len(tiny.select("all"))  # one compressed section per shift, opened on demand
    assert html.startswith("<!DOCTYPE html>")
    assert set(re.findall(r"https?://[^\"' ]+", html)) == {"http://www.w3.org/2000/svg"}  # nothing fetched
    shifts = tiny.select("all")
    assert html.count("<details>") == len(shifts)
    # Per shift: agreement and estimated vs true; the two featured shifts; R² vs error for two zoos.
    assert html.count("<svg") == 2 * len(shifts) + 2 + 2
    # summaries (with the calibration ablation, beyond the line and the settings), shifts' models, all shifts
    assert html.count('<table class="sortable"') == 9 + len(shifts) + 1
    assert "Beyond the line: an answer on every shift" in html
    assert all(f"{s.shift.dataset} · {s.shift.name}" in html for s in shifts)


def test_a_shift_plot_draws_every_model_and_escapes_names():
    names = ("<script>alert(1)</script>", "b&c", "plain")
    spec = ShiftSpec("digits", "rotate", 3)
    truth = np.array([0.5, 0.7, 0.9])
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    agreement = np.array([[0.6, 0.5], [0.7, 0.6], [0.8, 0.75]])
    score = ShiftScore(
        spec, "all", names, 100, 100, truth + 0.05, truth, {"aline-d": truth}, AgreementLine(1.0, -0.1, 0.97, 3, 3, 5.0),
        0.95, {}, pairs, agreement,
    )  # fmt: skip
    svg = shift_plot(score)
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "b&amp;c" in svg
    assert svg.count("<circle") == 3 + 3 + 2  # pairs, models, and two legend marks
