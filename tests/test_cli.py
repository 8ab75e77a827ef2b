import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ontheline as otl
from ontheline.cli import main

NAMES = np.array([f"net{i}" for i in range(8)])


@pytest.fixture(scope="module")
def zoo():
    return otl.make_line_zoo(n_models=8, n_samples=3000, random_state=0)


@pytest.fixture
def files(tmp_path, zoo):
    id_probs, id_labels, ood_probs, ood_labels = zoo
    id_path, ood_path = tmp_path / "id.npz", tmp_path / "ood.npz"
    np.savez(id_path, labels=id_labels, probs=id_probs, models=NAMES)
    np.savez(ood_path, labels=ood_labels, probs=ood_probs[::-1], models=NAMES[::-1])  # order differs: matched by name
    return id_path, ood_path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_estimate_prints_json_with_estimates_truth_and_the_line(capsys, files, zoo):
    code, out, err = run(
        capsys, "estimate", "--id", files[0], "--ood", files[1], "--format", "json", "--bootstrap", "20"
    )
    assert code == 0, err
    report = json.loads(out)
    assert [m["name"] for m in report["models"]] == NAMES.tolist()
    truth = otl.accuracy(zoo[2], zoo[3])
    for model, acc in zip(report["models"], truth):  # the JSON keeps 6 significant digits
        assert model["ood_accuracy"] == pytest.approx(acc, rel=1e-5)
        assert set(model["estimates"]) == {*otl.METHODS, "auto"}  # auto by default, choosing among them
        assert all(0 <= v <= 1 for v in model["estimates"].values())
        assert model["errors"]["aline-d"] == pytest.approx(model["estimates"]["aline-d"] - acc, abs=1e-6)
    line = report["agreement_line"]
    assert set(line) == {"slope", "bias", "r2", "n_pairs", "n_distinct", "spread"} and line["n_pairs"] == 28
    direct = otl.ALineD(n_bootstrap=0).fit(zoo[0], zoo[1]).estimate(zoo[2])
    np.testing.assert_allclose([m["estimates"]["aline-d"] for m in report["models"]], direct.ood_accuracy, rtol=1e-5)


def test_estimate_prints_a_readable_table_by_default(capsys, files):
    code, out, _ = run(
        capsys, "estimate", "--id", files[0], "--ood", files[1], "--method", "aline-d", "--method", "gde"
    )
    assert code == 0
    header = out.splitlines()[0].split()
    assert header[:5] == ["rank", "model", "ID", "acc", "aline-d"] and "gde" in header
    assert "MAE (points)" in out and "slope" in out and "R²" in out


def test_label_only_files_skip_methods_that_need_probabilities_with_a_note(capsys, tmp_path, zoo):
    np.savez(tmp_path / "id.npz", labels=zoo[1], preds=zoo[0].argmax(-1), models=NAMES)
    np.savez(tmp_path / "ood.npz", preds=zoo[2].argmax(-1), models=NAMES)
    code, out, err = run(
        capsys, "estimate", "--id", tmp_path / "id.npz", "--ood", tmp_path / "ood.npz", "--format", "json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["methods"] == ["aline-d", "aline-s", "gde", "auto"]
    assert set(report["skipped"]) == {"atc-mc", "atc-ne", "doc", "ac", "cot", "cott"}
    assert report["models"][0]["ood_accuracy"] is None


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def bad_inputs(tmp, zoo):
    id_probs, id_labels, ood_probs, _ = zoo
    good_ood = save(tmp / "good_ood.npz", probs=ood_probs, models=NAMES)
    (tmp / "garbage.npz").write_text("not a zip")
    return {
        "missing labels": (save(tmp / "a.npz", probs=id_probs, models=NAMES), good_ood, "has no 'labels' key"),
        "no predictions": (
            save(tmp / "b.npz", labels=id_labels, models=NAMES),
            good_ood,
            "must hold exactly one of 'probs', 'logits' or 'preds'; found keys",
        ),
        "two predictions": (
            save(tmp / "c.npz", labels=id_labels, probs=id_probs, logits=id_probs, models=NAMES),
            good_ood,
            "found ['probs', 'logits']",
        ),
        "unreadable": (tmp / "garbage.npz", good_ood, "is not a readable NPZ file"),
        "missing file": (tmp / "nope.npz", good_ood, "does not exist"),
        "label shape": (
            save(tmp / "d.npz", labels=id_labels[:-1], probs=id_probs, models=NAMES),
            good_ood,
            "id_labels must have one label per sample: expected shape (3000,), got (2999,)",
        ),
        "model mismatch": (
            save(tmp / "e.npz", labels=id_labels, probs=id_probs, models=NAMES),
            save(tmp / "f.npz", probs=ood_probs, models=np.array([*NAMES[:-1], "other"])),
            "ood_preds lacks models ['net7']",
        ),
        "model count": (
            save(tmp / "g.npz", labels=id_labels, probs=id_probs, models=NAMES),
            save(tmp / "h.npz", probs=ood_probs[:7], models=NAMES[:7]),
            "ood_preds has 7 models but",
        ),
        "nan": (
            save(tmp / "i.npz", labels=id_labels, probs=np.where(id_probs > 0.99, np.nan, id_probs), models=NAMES),
            good_ood,
            "NaN or infinite values",
        ),
        "not probabilities": (
            save(tmp / "j.npz", labels=id_labels, probs=id_probs * 3, models=NAMES),
            good_ood,
            "these look like logits: pass them as logits",
        ),
        "object names": (
            save(tmp / "k.npz", labels=id_labels, probs=id_probs, models=np.array(list(NAMES), dtype=object)),
            good_ood,
            "holds Python objects",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing labels",
        "no predictions",
        "two predictions",
        "unreadable",
        "missing file",
        "label shape",
        "model mismatch",
        "model count",
        "nan",
        "not probabilities",
        "object names",
    ],
)
def test_bad_input_exits_2_with_one_clear_line(capsys, tmp_path, zoo, case):
    id_path, ood_path, message = bad_inputs(tmp_path, zoo)[case]
    code, out, err = run(capsys, "estimate", "--id", id_path, "--ood", ood_path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ontheline: error: ")
    assert message in err


def test_methods_that_cannot_run_on_the_zoo_are_skipped_with_the_reason(capsys, tmp_path, zoo):
    id_path = save(tmp_path / "id.npz", labels=zoo[1], probs=zoo[0][:2], models=NAMES[:2])
    ood_path = save(tmp_path / "ood.npz", probs=zoo[2][:2], models=NAMES[:2])
    code, out, err = run(capsys, "estimate", "--id", id_path, "--ood", ood_path, "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["skipped"]["aline-d"] == "ALineD needs at least 3 models; id_preds has 2."
    assert (
        report["methods"] == [*(m for m in otl.METHODS if not m.startswith("aline")), "auto"]
        and report["ranked_by"] == "atc-mc"
    )


def test_bad_options_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", "--id", "a.npz", "--ood", "b.npz", "--method", "magic"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'magic'" in err


def test_the_installed_command_runs_the_benchmark_demo_and_writes_its_files(bench_store, tmp_path):
    pytest.importorskip("torch", reason="the demo's zoo needs the torch extra, which make test installs")
    exe = Path(sys.executable).with_name("ontheline")
    out = tmp_path / "demo"
    done = subprocess.run(
        [exe, "demo", "--config", "tiny", "--store", bench_store, "--out", out, "--format", "json", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_models"] == 7 and len(report["shifts"]) == 7
    for shift in report["shifts"]:
        assert {"name", "dataset", "agreement_r2", "accuracy_r2", "mae"} <= set(shift)
        assert set(shift["mae"]) == {*otl.METHODS, "auto", "oracle"}
        assert shift["dataset"] == "digits" and 0 <= shift["accuracy_r2"] <= 1
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json", "results.md"]
    assert json.loads((out / "results.json").read_text())["shifts"][0]["models"]  # per-model detail for the report
    assert "Wrote" in done.stderr and str(out) in done.stderr
    again = subprocess.run(
        [exe, "demo", "--config", "tiny", "--store", bench_store, "--out", out, "--jobs", "1", "--plots", out / "plots"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0 and "no training, no inference" in again.stderr
    figures = sorted(p.name for p in (out / "plots").iterdir())
    assert figures == sorted(f"digits-{s['name']}.{fmt}" for s in report["shifts"] for fmt in ("png", "svg"))
    assert "Benchmark 'tiny'" in again.stdout and "trusted" in again.stdout
    bad = subprocess.run(
        [exe, "estimate", "--id", "/nonexistent.npz", "--ood", "x.npz"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("option", ["--out", "--store"])
def test_demo_refuses_a_folder_option_that_is_a_file(capsys, tmp_path, option):
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, _, err = run(capsys, "demo", "--config", "tiny", option, target)
    assert code == 2 and option in err and err.count("\n") == 1
    assert target.read_text() == "keep me"


def test_demo_rejects_an_unknown_config_and_zero_jobs(capsys):
    for argv in (["demo", "--config", "huge"], ["bench", "--jobs", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1


def test_the_progress_line_reports_counts_and_time_left():
    import io

    from ontheline._progress import ConsoleProgress

    stream = io.StringIO()
    progress = ConsoleProgress(stream)
    for done in range(0, 11):
        progress("digits: model", done, 10)
    progress("digits: scoring", 0, 0)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[") and "0/10" in lines[0]
    assert "10/10" in lines[-2] and "left" in lines[-2] and lines[-1] == "digits: scoring"


def test_demo_adapt_prints_the_same_json_for_the_adapted_networks(capsys, bench_store, tmp_path):
    pytest.importorskip("torch", reason="the demo's zoo needs the torch extra, which make test installs")
    code, out, err = run(
        capsys, "demo", "--config", "tiny", "--adapt", "bn", "--adapt-batch-size", "64", "--store", bench_store,
        "--out", tmp_path / "adapted", "--format", "json", "--jobs", "1",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["adapt"]["label"] == "bn-b64" and report["adapt"]["method"] == "bn"
    assert report["n_models"] == 4 and len(report["shifts"]) == 7  # the networks only: 2 recipes x 2 checkpoints
    for shift in report["shifts"]:
        assert set(shift["mae"]) == {*otl.METHODS, "auto", "oracle"}
    assert "adapted with bn-b64" in (tmp_path / "adapted" / "report.html").read_text()
    code, _, err = run(capsys, "demo", "--config", "tiny", "--adapt", "bn", "--adapt-batch-size", "1")
    assert code == 2 and "batch_size" in err and err.count("\n") == 1


def test_the_json_carries_every_methods_settings_and_no_calibrate_gives_the_raw_baselines(capsys, files):
    code, out, err = run(
        capsys, "estimate", "--id", files[0], "--ood", files[1], "--format", "json", "--bootstrap", "0"
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report["settings"]) == set(report["methods"])
    assert report["settings"]["atc-mc"]["calibrate"] is True and report["settings"]["aline-d"]["n_bootstrap"] == 0
    code, out, _ = run(capsys, "estimate", "--id", files[0], "--ood", files[1], "--format", "json", "--no-calibrate")
    raw = json.loads(out)
    assert all(raw["settings"][m]["calibrate"] is False for m in ("atc-mc", "atc-ne", "doc", "ac", "cot", "cott"))
    assert raw["models"][0]["estimates"]["ac"] != report["models"][0]["estimates"]["ac"]
