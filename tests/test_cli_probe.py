import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the probe zoo trains in torch, which make test installs")

from ontheline.cli import main  # noqa: E402
from ontheline.cli import probe as probe_cli  # noqa: E402
from ontheline.zoo import train_probes  # noqa: E402

D, K = 16, 3
MEANS = 1.2 * np.random.default_rng(100).normal(size=(K, D))
# Small and fast: 12 probes, no bootstrap.
FAST = ("--models", "12", "--steps", "2", "60", "--bootstrap", "0")


def gaussian_mixture(n, seed, *, shift=0.0, noise=1.0):
    """The "ID" mixture, or with ``shift`` and ``noise`` an OOD version: every mean moved, the classes blurred."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, n)
    features = MEANS[labels] + noise * rng.normal(size=(n, D)) + shift
    return features.astype(np.float32), labels


@pytest.fixture
def files(tmp_path):
    paths = {}
    for role, n, seed, shift, noise in [
        ("train", 600, 0, 0.0, 1.0),
        ("id", 500, 1, 0.0, 1.0),
        ("ood", 500, 2, 0.4, 1.5),
    ]:
        features, labels = gaussian_mixture(n, seed, shift=shift, noise=noise)
        paths[role] = tmp_path / f"{role}.npz"
        np.savez(paths[role], features=features, labels=labels)
    return paths


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def probe(capsys, files, *extra):
    return run(capsys, "probe", "--train", files["train"], "--id", files["id"], "--ood", files["ood"], *FAST, *extra)


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


# --- end to end -----------------------------------------------------------------------------------


def test_probe_prints_the_estimate_table_for_every_probe(capsys, files):
    code, out, err = probe(capsys, files)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["rank", "model", "ID", "acc"] and lines[0].rstrip().endswith("OOD acc (true)")
    rows = [line for line in lines if "random-head-" in line]
    assert len(rows) == 12 and any("random-head-11-60steps" in r for r in rows)
    assert "MAE (points)" in out
    assert "Agreement line: slope" in out or "WARNING: agreement line" in out
    assert "Trained 12 linear probes (random-head, 2-60 steps) on 600 x 16 features" in err


def test_probe_prints_what_estimate_prints_on_the_probes_predictions(capsys, files, tmp_path):
    """The same table and JSON as ``ontheline estimate`` on the zoo's saved predictions, plus the recipe."""
    code, probe_table, _ = probe(capsys, files)
    assert code == 0
    _, probe_json, _ = probe(capsys, files, "--format", "json")
    train, id_set, ood = (np.load(files[r]) for r in ("train", "id", "ood"))
    zoo = train_probes(train["features"], train["labels"], n_models=12, steps=(2, 60))
    for role, data in [("id", id_set), ("ood", ood)]:
        save(tmp_path / f"{role}-preds.npz", probs=zoo.predict_proba(data["features"]), models=np.array(zoo.models),
             labels=data["labels"])  # fmt: skip
    estimate = ("estimate", "--id", tmp_path / "id-preds.npz", "--ood", tmp_path / "ood-preds.npz", "--bootstrap", "0")
    code, estimate_table, _ = run(capsys, *estimate)
    assert code == 0 and probe_table == estimate_table
    _, estimate_json, _ = run(capsys, *estimate, "--format", "json")
    from_probe, from_estimate = json.loads(probe_json), json.loads(estimate_json)
    assert from_probe["settings"].pop("probe") == zoo.to_dict()
    assert from_probe == from_estimate


def test_the_json_settings_carry_the_probe_recipe(capsys, files):
    code, out, err = probe(capsys, files, "--format", "json", "--diversity", "subset", "--subset-fraction", "0.5",
                           "--seed", "3", "--lr", "0.02", "--batch-size", "64", "--method", "aline-d", "--method", "gde")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    recipe = report["settings"]["probe"]
    assert recipe["diversity"] == "subset" and recipe["subset_fraction"] == 0.5 and recipe["seed"] == 3
    assert recipe["steps"] == [2, 60] and recipe["n_models"] == 12 and recipe["lr"] == 0.02
    assert recipe["batch_size"] == 64 and recipe["n_train"] == 600 and recipe["classes"] == [0, 1, 2]
    assert set(report["settings"]) == {"aline-d", "gde", "probe"} and report["methods"] == ["aline-d", "gde"]
    assert [m["name"] for m in report["models"]][:2] == ["subset-0.5-00-2steps", "subset-0.5-01-3steps"]
    assert report["mae"] is not None and all(m["ood_accuracy"] is not None for m in report["models"])


def test_probe_writes_the_report_with_the_recipe_and_the_three_files(capsys, files, tmp_path):
    out_file = tmp_path / "out" / "report.html"
    code, _, err = probe(capsys, files, "--report", out_file, "--diversity", "order", "--method", "aline-d")
    assert code == 0, err
    html = out_file.read_text(encoding="utf-8")
    assert "<h1>ontheline probe</h1>" in html
    assert "train: train.npz, ID: id.npz, OOD: ood.npz" in html
    assert "diversity=order" in html and "order-11-60steps" in html
    assert f"Wrote {out_file}." in err


def test_ood_labels_are_optional(capsys, files, tmp_path):
    features, _ = gaussian_mixture(300, 5, shift=0.4)
    unlabelled = save(tmp_path / "unlabelled.npz", features=features)
    code, out, err = run(capsys, "probe", "--train", files["train"], "--id", files["id"], "--ood", unlabelled, *FAST,
                         "--method", "aline-d", "--method", "atc-mc")  # fmt: skip
    assert code == 0, err
    assert "OOD acc (true)" not in out and "MAE" not in out


def test_string_labels_work_end_to_end(capsys, tmp_path):
    names = np.array(["cat", "dog", "eel"])
    paths = []
    for role, seed in [("train", 0), ("id", 1), ("ood", 2)]:
        features, labels = gaussian_mixture(400, seed, shift=0.3 if role == "ood" else 0.0)
        paths.append(save(tmp_path / f"{role}.npz", features=features, labels=names[labels]))
    code, out, err = run(capsys, "probe", "--train", paths[0], "--id", paths[1], "--ood", paths[2], *FAST,
                         "--format", "json", "--method", "aline-d")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["settings"]["probe"]["classes"] == ["cat", "dog", "eel"]


# --- bad input: exit 2, one line that names the flag ----------------------------------------------


def assert_one_line_error(code, out, err, *fragments):
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ontheline: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_features_of_another_width_in_the_id_file_exit_2_naming_it(capsys, files, tmp_path):
    features, labels = gaussian_mixture(100, 0)
    narrow = save(tmp_path / "narrow.npz", features=features[:, :8], labels=labels)
    code, out, err = run(capsys, "probe", "--train", files["train"], "--id", narrow, "--ood", files["ood"], *FAST)
    assert_one_line_error(code, out, err, "--id file", "has 8 columns but the --train features have 16")


def test_one_dimensional_features_exit_2_naming_the_flag(capsys, files, tmp_path):
    flat = save(tmp_path / "flat.npz", features=np.zeros(50, np.float32))
    code, out, err = run(capsys, "probe", "--train", files["train"], "--id", files["id"], "--ood", flat, *FAST)
    assert_one_line_error(code, out, err, "--ood file", "'features' must be a 2-D array", "got shape (50,)")


def test_a_training_file_without_labels_exits_2_naming_it(capsys, files, tmp_path):
    features, _ = gaussian_mixture(100, 0)
    bare = save(tmp_path / "bare.npz", features=features)
    code, out, err = run(capsys, "probe", "--train", bare, "--id", files["id"], "--ood", files["ood"], *FAST)
    assert_one_line_error(code, out, err, "--train file", "has no 'labels' key")


@pytest.mark.parametrize(
    ("role", "arrays", "fragments"),
    [
        ("train", {"x": np.zeros((5, 16))}, ("--train file", "has no 'features' key")),
        ("id", {"features": np.zeros((5, 16))}, ("--id file", "has no 'labels' key", "the ID file needs")),
        ("id", {"features": np.zeros((5, 16)), "labels": np.zeros(4, int)}, ("--id file", "one label per row")),
        ("id", {"features": np.zeros((5, 16)), "labels": np.full(5, 7)}, ("--id file", "labels [7] are not among")),
        ("id", {"features": np.zeros((5, 16)), "labels": np.array(["a"] * 5)}, ("--id file", "string labels")),
        ("ood", {"features": np.full((5, 16), np.nan)}, ("--ood file", "NaN or infinite")),
        ("ood", {"features": np.array([["a"] * 16] * 5)}, ("--ood file", "must hold real numbers")),
        ("train", {"features": np.zeros((5, 16)), "labels": np.zeros(5, int)}, ("--train file", "only the class [0]")),
        ("train", {"features": np.zeros((5, 16)), "labels": np.full(5, 0.5)}, ("--train file", "non-integer")),
    ],
)
def test_bad_files_exit_2_with_one_line_naming_the_flag(capsys, files, tmp_path, role, arrays, fragments):
    files = dict(files, **{role: save(tmp_path / "bad.npz", **arrays)})
    code, out, err = probe(capsys, files)
    assert_one_line_error(code, out, err, *fragments)


def test_a_missing_file_and_a_non_npz_file_exit_2(capsys, files, tmp_path):
    code, out, err = probe(capsys, dict(files, train=tmp_path / "missing.npz"))
    assert_one_line_error(code, out, err, "--train file", "does not exist")
    (tmp_path / "text.npz").write_text("not a zip", encoding="utf-8")
    code, out, err = probe(capsys, dict(files, ood=tmp_path / "text.npz"))
    assert_one_line_error(code, out, err, "--ood file", "is not a readable NPZ file")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--steps", "60", "2"), "--steps MIN MAX needs MIN <= MAX"),
        (("--keep", "0.9", "0.1"), "--keep LOW HIGH needs LOW < HIGH"),
        (("--diversity", "subset", "--subset-fraction", "0.0001"), "--subset-fraction 0.0001 of the 600 --train"),
    ],
)
def test_bad_settings_exit_2_with_one_line(capsys, files, extra, fragment):
    code, out, err = probe(capsys, files, *extra)
    assert_one_line_error(code, out, err, fragment)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--subset-fraction", "1.5"), "expected a number in (0, 1], got '1.5'"),
        (("--subset-fraction", "half"), "expected a number in (0, 1], got 'half'"),
        (("--weight-decay", "-1"), "expected a non-negative number"),
        (("--diversity", "seeds"), "invalid choice: 'seeds'"),
        (("--models", "0"), "expected a positive integer"),
    ],
)
def test_bad_flag_values_exit_2_with_one_line_from_the_parser(capsys, files, extra, fragment):
    with pytest.raises(SystemExit) as exit_info:
        probe(capsys, files, *extra)
    out, err = capsys.readouterr()
    assert_one_line_error(exit_info.value.code, out, err, fragment, "see 'ontheline probe --help'")


def test_an_unwritable_report_is_refused_before_any_training(capsys, files, tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the outputs")

    monkeypatch.setattr(probe_cli, "train_probes", no_training)
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    code, out, err = probe(capsys, files, "--report", tmp_path / "a-file" / "report.html")
    assert_one_line_error(code, out, err, "--report", "is a file")
    code, out, err = probe(capsys, files, "--plots", tmp_path / "a-file")
    assert_one_line_error(code, out, err, "--plots", "is a file; pass a folder")


def test_too_few_probes_for_any_method_exit_2_with_one_line(capsys, files):
    code, out, err = probe(capsys, files, "--models", "2", "--method", "aline-d")
    assert_one_line_error(code, out, err, "None of the methods could run")
