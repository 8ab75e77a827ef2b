"""Hostile but fair input: every case here once gave a traceback, a wrong number or a runaway
allocation; now each is a clear one-line error (exit 2 on the command line) or a correct answer."""

import io
import json
import os
import pickle
import time
import zipfile

import numpy as np
import pytest

import ontheline as otl
from ontheline import _io
from ontheline.cli import main

NAMES = np.array(["a", "b", "c", "d", "e", "f"])


@pytest.fixture
def good(tmp_path):
    """A valid pair of files (6 models, 300 samples) and their arrays."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.full(3, 0.3), (6, 300))
    np.savez(tmp_path / "id.npz", probs=probs, labels=labels, models=NAMES)
    np.savez(tmp_path / "ood.npz", probs=probs[:, ::-1], labels=labels[::-1], models=NAMES)
    return tmp_path / "id.npz", tmp_path / "ood.npz", probs, labels


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, message):
    assert code == 2 and out == "", err
    assert err.startswith("ontheline: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


def npz_with_members(path, **members):
    """An NPZ written member by member: bytes are stored raw, arrays as .npy."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            if isinstance(value, bytes):
                archive.writestr(name, value)
            else:
                buffer = io.BytesIO()
                np.save(buffer, value)
                archive.writestr(f"{name}.npy", buffer.getvalue())
    return path


def forged_header(shape, dtype="<f8", payload=64):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * payload


# --- tiny files that would exhaust memory or time --------------------------------------------


def test_a_stray_huge_label_is_refused_at_once(capsys, tmp_path, good):
    preds = np.random.default_rng(0).integers(0, 3, (6, 300))
    preds[0, 0] = 10**9
    np.savez_compressed(tmp_path / "big.npz", preds=preds, labels=good[3], models=NAMES)
    start = time.perf_counter()
    code, out, err = run(capsys, "estimate", "--id", tmp_path / "big.npz", "--ood", good[1])
    assert time.perf_counter() - start < 10  # no billion-element class tuple was built
    assert_one_line_error(code, out, err, "has the label 1000000000, so without classes= it would mean")


def test_a_true_label_far_outside_the_classes_allocates_nothing_large():
    # hard labels 0..1 with default classes: a true label of 10**9 is a class no model predicts
    np.testing.assert_allclose(otl.accuracy([[0, 1], [1, 1]], [0, 10**9]), [0.5, 0.0])
    with pytest.raises(ValueError, match=r"labels \['1000000000'\] that are not among classes"):
        otl.accuracy(np.full((2, 2, 2), 0.5), [0, 10**9])


def test_a_header_that_claims_a_huge_shape_is_refused_before_allocating(capsys, tmp_path, good):
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("probs.npy", forged_header((6, 10**7, 10**6)))
        buffer = io.BytesIO()
        np.save(buffer, good[3])
        archive.writestr("labels.npy", buffer.getvalue())
    code, out, err = run(capsys, "estimate", "--id", path, "--ood", good[1])
    assert_one_line_error(code, out, err, "claims shape (6, 10000000, 1000000) of float64")


def test_a_file_larger_than_memory_is_refused(capsys, monkeypatch, good):
    monkeypatch.setattr(_io, "_memory_bytes", lambda: 1000)
    code, out, err = run(capsys, "estimate", "--id", good[0], "--ood", good[1])
    assert_one_line_error(code, out, err, "more than this machine's memory")


def test_a_forged_npy_for_store_labels_is_refused(tmp_path):
    path = tmp_path / "labels.npy"
    path.write_bytes(forged_header((10**12,), "<i8"))
    with pytest.raises(otl.InputError, match="claims shape"):
        _io.read_npy(path, "--labels")


# --- tracebacks that are now one line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"models": np.array(5)}, "'models' must be a 1-D array, one entry per model; got shape ()"),
        ({"classes": np.array(5)}, "'classes' must be a 1-D array, one entry per class; got shape ()"),
        ({"models": b"abcdef"}, "has a member 'models' that is not a numpy array (.npy)"),
        ({"models": np.array(list("abcdef"), dtype=object)}, "holds Python objects"),
    ],
)
def test_malformed_names_and_classes_exit_2(capsys, tmp_path, good, members, message):
    path = npz_with_members(tmp_path / "bad.npz", probs=good[2], labels=good[3], **members)
    code, out, err = run(capsys, "estimate", "--id", path, "--ood", good[1])
    assert_one_line_error(code, out, err, message)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["[1, 2]"], "Sample 1 is a list, not a record"),
        (['{"problem": [1], "correct": 1}'], "Sample 1 has problem [1]; a problem must be a string or a number"),
        (
            ['{"problem": 1, "correct": 1, "score": null}', '{"problem": 1, "correct": 0, "score": 1}'],
            "Sample 1 has score None; a score must be a finite number",
        ),
        (['{"problem": 1, "correct": null}'], "correct must be true/false or 1/0; got None"),
    ],
)
def test_malformed_passk_samples_exit_2(capsys, tmp_path, lines, message):
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert_one_line_error(*run(capsys, "passk", path), message)


def test_weights_that_are_not_weights_exit_2(capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="adapt needs the torch extra, which make test installs")
    pytest.importorskip("safetensors", reason="needs the safetensors extra, which make test installs")
    (tmp_path / "arch_for_test.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.savez(tmp_path / "x.npz", x=np.zeros((10, 4), np.float32), labels=np.zeros(10, int))
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "pickled.safetensors").write_bytes(pickle.dumps({"weight": [1.0]}))
    for weights, kind in [("empty.pt", "a torch state dict"), ("empty.safetensors", "a safetensors file"),
                          ("pickled.safetensors", "a safetensors file")]:  # fmt: skip
        path = tmp_path / weights
        code, out, err = run(
            capsys, "adapt", "--arch", "arch_for_test:make", "--weights", path, "--weights", path, "--weights", path,
            "--id", tmp_path / "x.npz", "--ood", tmp_path / "x.npz",
        )  # fmt: skip
        assert_one_line_error(code, out, err, f"is not {kind}")


# --- outputs checked before the work, never half-written -------------------------------------


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--report", "afile/r.html", "is a file, so nothing can be written under it"),
        ("--report", "/proc/r.html", "refuses new files"),
        ("--report", "x" * 260 + ".html", "is longer than 255 bytes"),
        ("--plots", "afile", "is a file; pass a folder"),
        ("--plots", "afile/figures", "is a file, so nothing can be written under it"),
        ("--report", "new/deeper/" + "y" * 300 + "/r.html", "is longer than 255 bytes"),
    ],
)
def test_unusable_outputs_are_refused_before_any_work_and_leave_nothing(
    capsys, tmp_path, monkeypatch, good, option, target, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "estimate", "--id", good[0], "--ood", good[1], option, target)
    assert_one_line_error(code, out, err, message)  # out == "": not even the table was printed
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "afile").read_text() == "keep"


def test_a_failed_write_removes_the_folders_it_made(tmp_path):
    target = tmp_path / "made" / "for" / "it.html"
    with pytest.raises(RuntimeError), _io.atomic_write(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []


HOSTILE_NAMES = np.array(["a\ud800b", "\x1b[31mred\x1b[0m", "new\nline", "\x1b]0;title\x07", "\u202eevil", "plain"])


def test_hostile_model_names_are_escaped_on_the_terminal_and_kept_exactly_in_json(capsys, tmp_path, good):
    for role, probs in (("id", good[2]), ("ood", good[2][:, ::-1])):
        np.savez(tmp_path / f"h{role}.npz", probs=probs, labels=good[3], models=HOSTILE_NAMES)
    files = ["--id", tmp_path / "hid.npz", "--ood", tmp_path / "hood.npz"]
    code, out, err = run(capsys, "estimate", *files, "--report", tmp_path / "r.html")
    assert code == 0, err
    assert "\x1b" not in out + err and "\u202e" not in out and "\\x1b[31mred\\x1b[0m" in out
    assert "a\\ud800b" in out and "new\\nline" in out and "\\u202eevil" in out
    assert "a\\ud800b" in (tmp_path / "r.html").read_text(encoding="utf-8")
    code, out, err = run(capsys, "estimate", *files, "--format", "json")
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)["models"]] == HOSTILE_NAMES.tolist()


# --- ranges -------------------------------------------------------------------------------------


def test_rows_summing_to_slightly_more_than_one_are_normalised_and_accuracies_stay_in_range():
    probs = np.full((3, 50, 2), [1.0009, 0.0])  # inside the tolerance, but AC would say 100.09%
    result = otl.AC().fit(probs, np.zeros(50, int)).estimate(probs)
    assert result.ood_accuracy.max() == 1.0
    np.testing.assert_allclose(otl.as_predictions(probs).probs.sum(-1), 1.0)


def test_probabilities_a_rounding_error_below_zero_are_accepted_and_clipped():
    probs = np.full((2, 4, 2), [1.0 + 1e-9, -1e-9])
    p = otl.as_predictions(probs)
    assert p.probs.min() == 0.0 and (p.labels == 0).all()
    with pytest.raises(ValueError, match="these look like logits"):
        otl.as_predictions(np.full((2, 4, 2), [1.5, -0.5]))


def test_every_estimate_of_every_method_is_an_accuracy():
    id_probs, id_labels, ood_probs, _ = otl.make_line_zoo(n_models=6, n_samples=300, random_state=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluation = otl.evaluate(id_probs, id_labels, ood_probs, n_bootstrap=20)
    for result in evaluation.results.values():
        assert ((result.ood_accuracy >= 0) & (result.ood_accuracy <= 1)).all()


# --- smaller contract breaks -------------------------------------------------------------------


def test_a_string_of_model_names_is_refused():
    with pytest.raises(ValueError, match="models must be a sequence of model names, one per model; got str 'abc'"):
        otl.as_predictions([[0, 1], [1, 0], [0, 0]], models="abc")


def test_nested_classes_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"classes must be a flat sequence of class labels .* holds \[0\]"):
        otl.as_predictions([[0, 1]], classes=[[0], [1]])
    with pytest.raises(ValueError, match="classes must be a sequence of class labels; got int 5"):
        otl.as_predictions(np.full((1, 2, 2), 0.5), classes=5)


def test_load_sklearn_names_only_options_that_exist(tmp_path):
    from ontheline.runners import load_sklearn

    with pytest.raises(ValueError, match="Pass trust=True only for files you made") as error:
        load_sklearn(tmp_path / "model.pkl")
    assert "--trust-pickle" not in str(error.value)


def test_load_hf_never_runs_a_folders_own_code(tmp_path):
    pytest.importorskip("transformers", reason="needs the hf extra, which make test installs")
    from ontheline.runners import load_hf

    marker = tmp_path / "ran"
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "model_type": "custom",
                "architectures": ["CustomForSequenceClassification"],
                "auto_map": {"AutoConfig": "custom_code.CustomConfig"},
            }
        )  # fmt: skip
    )
    (tmp_path / "custom_code.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_hf(tmp_path)
    assert not marker.exists() and not os.path.exists(tmp_path / "__pycache__")


def test_evaluate_skips_aline_d_with_the_reason_when_it_alone_cannot_run():
    # a filter that keeps one pair of three models: no line for ALine-D, while GDE needs none
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 2000)
    base = np.where(rng.random(2000) < 0.7, truth, rng.integers(0, 10, 2000))
    near = np.where(rng.random(2000) < 0.1, rng.integers(0, 10, 2000), base)
    far = np.where(rng.random(2000) < 0.9, rng.integers(0, 10, 2000), base)
    preds = np.stack([near, base, far])
    agreement = otl.pairwise_agreement(preds)
    keep = (float(agreement[:2, 2].max()) + 0.01, 0.98)  # only (near, base) agree that much
    evaluation = otl.evaluate(preds, truth, preds, methods=["aline-d", "gde"], keep=keep, n_bootstrap=0)
    assert "aline-d" in evaluation.skipped and "gde" in evaluation.results
    assert "--keep in the command line" in evaluation.skipped["aline-d"]


def test_float16_rounding_is_accepted_but_rows_far_from_one_are_not_whatever_the_classes():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(1000), (2, 50))
    otl.as_predictions(probs.astype(np.float16))  # rounding only: accepted
    with pytest.raises(ValueError, match="these look like logits"):
        otl.as_predictions((probs * 1.8).astype(np.float16))
