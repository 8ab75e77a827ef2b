"""The estimate report and the figures for papers: content, escaping, trust banner, CLI outputs."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import ontheline as otl
from ontheline.cli import main
from ontheline.report import estimate_report
from ontheline.report.estimate import model_table

pytest.importorskip("matplotlib", reason="figures need the plot extra, which make test installs")

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def evaluation(digits_zoo):
    id_probs, id_labels, ood_probs, ood_labels, names = digits_zoo
    preds = lambda probs: {n: p for n, p in zip([HOSTILE, *names[1:]], probs)}  # noqa: E731
    return otl.evaluate(preds(id_probs), id_labels, preds(ood_probs), ood_labels=ood_labels, n_bootstrap=50)


def test_the_agreement_plot_draws_every_pair_and_model_and_the_fitted_lines(evaluation):
    import matplotlib.pyplot as plt

    result = evaluation.results["aline-d"]
    ax = result.plot(ood_accuracy=evaluation.ood_accuracy)
    n = len(result.models)
    sizes = [len(c.get_offsets()) for c in ax.collections]
    assert sizes == [n * (n - 1) // 2, n, n]  # pairs, estimates, true accuracies
    pairs = ax.collections[0].get_offsets()
    upper = np.triu_indices(n, k=1)
    assert np.allclose(pairs[:, 0], otl.probit(np.clip(result.id_agreement[upper], 1e-3, 1 - 1e-3)))
    line = next(artist for artist in ax.lines if artist.get_label().startswith("agreement line"))
    x, y = line.get_data()
    assert np.allclose(y, result.line.slope * np.asarray(x) + result.line.bias)
    assert ax.get_xlim() == ax.get_ylim()  # one scale, so y = x is the diagonal
    plt.close(ax.figure)


def test_plot_draws_on_a_given_axes_and_without_labels(evaluation):
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2)
    assert evaluation.results["atc-mc"].plot(ax=right) is right
    assert len(right.collections) == 2 and not left.collections  # pairs and estimates, no truth
    plt.close(figure)
    with pytest.raises(ValueError, match=r"ood_accuracy has shape \(1,\); pass one true accuracy per model"):
        evaluation.results["atc-mc"].plot(ood_accuracy=[0.5])


def test_estimated_vs_true_needs_labels_and_scores_every_method(evaluation, digits_zoo):
    import matplotlib.pyplot as plt

    ax = evaluation.plot_estimates()
    assert len(ax.collections) == len(evaluation.results)
    assert np.allclose(ax.collections[0].get_offsets()[:, 0], 100 * evaluation.ood_accuracy)
    plt.close(ax.figure)
    id_probs, id_labels, ood_probs, _, _ = digits_zoo
    unlabelled = otl.evaluate(id_probs, id_labels, ood_probs, methods=["aline-s"], n_bootstrap=0)
    with pytest.raises(ValueError, match="OOD labels"):
        unlabelled.plot_estimates()


def test_the_model_table_is_ranked_and_reports_truth_and_error(evaluation):
    header, rows = model_table(evaluation)
    assert header[:3] == ["rank", "model", "ID acc"] and header[-2:] == ["true OOD acc", "aline-d error"]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    estimates = [r[header.index("aline-d")] for r in rows]
    assert estimates == sorted(estimates, reverse=True)
    for row in rows:
        assert row[-1] == pytest.approx(row[header.index("aline-d")] - row[-2])
        assert row[header.index("aline-d low")] <= row[header.index("aline-d")] <= row[header.index("aline-d high")]
        assert row[header.index("auto low (90%)")] <= row[header.index("auto")] <= row[header.index("auto high (90%)")]


def test_the_estimate_report_is_self_contained_and_escapes_names(evaluation):
    html = estimate_report(evaluation, title="Zoo <b>v2</b>")
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Zoo &lt;b&gt;v2&lt;/b&gt;" in html
    assert set(re.findall(r"https?://[^\"' ]+", html)) == {"http://www.w3.org/2000/svg"}
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    # The agreement plot, estimated vs true per method, then the ensemble's reliability diagram (GDE's check).
    assert len(svgs) == 1 + len(evaluation.results) + 1
    assert "Is GDE justified here?" in html
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    assert ('class="banner ok"' in html) == evaluation.trusted


def test_the_trust_banner_warns_when_the_line_breaks():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 3000)
    id_preds = np.stack(
        [np.where(rng.random(3000) < p, truth, rng.integers(0, 10, 3000)) for p in np.linspace(0.3, 0.9, 10)]
    )
    ood_preds = rng.integers(0, 10, (10, 3000))  # OOD agreement unrelated to ID agreement
    ood_preds[:5] = ood_preds[0]
    evaluation = otl.evaluate(id_preds, truth, ood_preds, methods=["aline-s"], n_bootstrap=0)
    html = estimate_report(evaluation)
    assert not evaluation.trusted and 'class="banner warn"' in html
    assert "Not to be trusted: ID-vs-OOD agreement is weakly linear" in html
    assert "Do not choose a model on these numbers alone" in html


def test_cli_report_and_plots_write_the_page_and_figures(capsys, tmp_path, digits_zoo):
    id_probs, id_labels, ood_probs, ood_labels, names = digits_zoo
    np.savez(tmp_path / "id.npz", probs=id_probs, labels=id_labels, models=np.array(names))
    np.savez(tmp_path / "ood.npz", probs=ood_probs, labels=ood_labels, models=np.array(names))
    files = ["--id", str(tmp_path / "id.npz"), "--ood", str(tmp_path / "ood.npz"), "--bootstrap", "20"]
    assert main(["report", *files, "--out", str(tmp_path / "r.html"), "--plots", str(tmp_path / "figs")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "r.html" in err
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["agreement.png", "agreement.svg", "estimates.png", "estimates.svg"]
    assert (tmp_path / "figs" / "agreement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ET.parse(tmp_path / "figs" / "agreement.svg")


@pytest.mark.parametrize("option", ["--report", "--plots"])
def test_estimate_refuses_unusable_output_paths_before_any_work(capsys, tmp_path, digits_zoo, option):
    id_probs, id_labels, ood_probs, _, _ = digits_zoo
    np.savez(tmp_path / "id.npz", probs=id_probs, labels=id_labels)
    np.savez(tmp_path / "ood.npz", probs=ood_probs)
    target = tmp_path / "taken"
    target.mkdir() if option == "--report" else target.write_text("keep me")
    code = main(["estimate", "--id", str(tmp_path / "id.npz"), "--ood", str(tmp_path / "ood.npz"), option, str(target)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and option in err and err.count("\n") == 1
