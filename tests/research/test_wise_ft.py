"""WiSE-FT interpolation of checkpoints: endpoints exact, integers copied, mismatches refused, files streamed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")

from ontheline.research.wise_ft import interpolate, interpolate_files  # noqa: E402


def _net(seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net.train()
    net(torch.randn(16, 4))  # moves the BatchNorm statistics and counts a batch
    if seed:
        net(torch.randn(16, 4))
    return net.state_dict()


def test_endpoints_are_exact_and_the_middle_is_the_average():
    a, b = _net(0), _net(1)
    for alpha, expected in ((0.0, a), (1.0, b)):
        mixed = interpolate(a, b, alpha)
        assert all(torch.equal(mixed[k], expected[k]) for k in a)
    half = interpolate(a, b, 0.5)
    torch.testing.assert_close(half["0.weight"], (a["0.weight"] + b["0.weight"]) / 2)
    same = interpolate(a, a, 0.5)
    assert all(torch.equal(same[k], a[k]) for k in a)  # identical models: a no-op


def test_integer_buffers_are_copied_not_averaged():
    a, b = _net(0), _net(1)
    assert int(a["1.num_batches_tracked"]) == 1 and int(b["1.num_batches_tracked"]) == 2
    assert int(interpolate(a, b, 0.25)["1.num_batches_tracked"]) == 1
    assert int(interpolate(a, b, 0.75)["1.num_batches_tracked"]) == 2
    assert interpolate(a, b, 0.75)["1.num_batches_tracked"].dtype == torch.int64


def test_mismatched_checkpoints_are_refused_with_the_reason():
    a, b = _net(0), _net(1)
    with pytest.raises(ValueError, match=r"only in the first \['0.bias'\]"):
        interpolate(a, {k: v for k, v in b.items() if k != "0.bias"}, 0.5)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(8, 4\) in the first checkpoint and \(8, 5\)"):
        interpolate(a, {**b, "0.weight": torch.zeros(8, 5)}, 0.5)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        interpolate(a, b, 1.5)


def test_safetensors_files_are_interpolated_tensor_by_tensor(tmp_path):
    from safetensors.torch import load_file, save_file

    a, b = _net(0), _net(1)
    a["half"], b["half"] = torch.randn(5, dtype=torch.float16), torch.randn(5, dtype=torch.float16)
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    out = interpolate_files(tmp_path / "a.safetensors", tmp_path / "b.safetensors", 0.3, tmp_path / "w.safetensors")
    loaded = load_file(str(out))  # written by our streaming writer, read by the reference library
    expected = interpolate(a, b, 0.3)
    assert set(loaded) == set(expected)
    for key in expected:
        assert loaded[key].dtype == expected[key].dtype and torch.equal(loaded[key], expected[key])
    torch.save(a, tmp_path / "a.pt")
    torch.save(b, tmp_path / "b.pt")
    pt = interpolate_files(tmp_path / "a.pt", tmp_path / "b.pt", 0.3, tmp_path / "w.pt")
    assert all(torch.equal(v, expected[k]) for k, v in torch.load(pt, weights_only=True).items())


def test_a_hugging_face_checkpoint_folder_is_interpolated(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3
    )
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = transformers.BertForSequenceClassification(config)
        folders.append(tmp_path / f"ckpt{seed}")
        model.save_pretrained(folders[-1], safe_serialization=True)
    out = interpolate_files(folders[0], folders[1], 0.5, tmp_path / "wise")
    merged = transformers.BertForSequenceClassification.from_pretrained(out)
    a = transformers.BertForSequenceClassification.from_pretrained(folders[0]).state_dict()
    b = transformers.BertForSequenceClassification.from_pretrained(folders[1]).state_dict()
    for key, value in merged.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(value, (a[key] + b[key]) / 2)
    assert (out / "config.json").is_file()


def test_double_precision_weights_are_averaged_in_double_precision():
    a = {"w": torch.tensor([1.0, 1e-12], dtype=torch.float64)}
    b = {"w": torch.tensor([1.0 + 2e-12, 3e-12], dtype=torch.float64)}
    mixed = interpolate(a, b, 0.5)["w"]
    assert mixed.dtype == torch.float64 and mixed.tolist() == [1.0 + 1e-12, 2e-12]


def test_numpy_state_dicts_work_too():
    a = {"w": np.array([0.0, 2.0]), "step": np.array([3])}
    b = {"w": np.array([2.0, 4.0]), "step": np.array([5])}
    mixed = interpolate(a, b, 0.5)
    assert mixed["w"].tolist() == [1.0, 3.0] and mixed["step"].tolist() == [5]


# --- the reproduction, in miniature ---------------------------------------------------------


def test_wise_ft_miniature_reports_every_row_consistently():
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.wise_ft import repro as wise_ft

    result = wise_ft.run(seeds=(0,), epochs=200, max_test=150)
    for name in ("early", "late", "wise"):
        row = result[name]
        assert 0 <= row["pass@1"] <= row["pass@2"] <= row["pass@16"] <= 1  # pass@k is monotone in k
        assert 0 <= row["maj@16"] <= 1 and row["jensen_gap@16"] >= 0
    assert result["wise"] == result["wise_alphas"]["0.5"]
    assert result["temperature"]["1.0"] == result["late"]  # T = 1 is the late checkpoint itself
    early = result["early_epoch"][0]
    best = max(result["checkpoints"], key=lambda c: c["validation"]["pass@16"])
    assert early == best["epoch"] and result["checkpoints"][-1]["epoch"] == 200
    assert result["early_selected_on"] == "validation"
    assert result["setup"]["validation_images"] == 400 and result["setup"]["test_images"] == 150
    assert set(result["goals"]) == {
        "late_pass16_below_early", "late_variance_above_early", "wise_pass16_above_late", "wise_pass1_above_early"
    }  # fmt: skip
    assert "WiSE alpha=0.5" in wise_ft.text(result) and "validation images" in wise_ft.text(result)


def test_the_validation_images_are_disjoint_from_the_training_and_test_images_and_drawn_by_the_seed():
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.wise_ft import repro as wise_ft

    x_train, y_train, x_val, y_val, x_test, y_test = wise_ft._data(0)
    assert len(x_train) == 200 and len(x_val) == 400 and len(x_train) + len(x_val) + len(x_test) == 1797
    assert (np.bincount(y_val) == 40).all() and (np.bincount(y_train) == 20).all()
    rows = [{r.tobytes() for r in x} for x in (x_train, x_val, x_test)]
    assert not (rows[0] & rows[1]) and not (rows[1] & rows[2])  # digits has duplicate images, but not across these
    again = wise_ft._data(0)
    assert all((a == b).all() for a, b in zip(again, (x_train, y_train, x_val, y_val, x_test, y_test)))
    assert not (wise_ft._data(1)[2] == x_val).all()


def test_the_early_checkpoint_is_chosen_on_validation_images_so_poisoned_test_labels_cannot_move_it(monkeypatch):
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.wise_ft import repro as wise_ft

    small = {"seeds": (0,), "epochs": 120, "max_test": 150}
    clean = wise_ft.run(**small)
    data = wise_ft._data

    def poisoned_test_labels(seed):
        *rest, y_test = data(seed)
        return (*rest, (y_test + 1) % 10)  # every test label wrong

    monkeypatch.setattr(wise_ft, "_data", poisoned_test_labels)
    poisoned = wise_ft.run(**small)
    assert poisoned["early_epoch"] == clean["early_epoch"]
    assert [c["validation"] for c in poisoned["checkpoints"]] == [c["validation"] for c in clean["checkpoints"]]
    assert poisoned["early"]["accuracy"] < 0.1 < clean["early"]["accuracy"]  # the test numbers did change

    # and it follows the validation images: give it wrong validation labels and it moves
    def poisoned_validation_labels(seed):
        x_train, y_train, x_val, y_val, x_test, y_test = data(seed)
        return x_train, y_train, x_val, (y_val + 1) % 10, x_test, y_test

    monkeypatch.setattr(wise_ft, "_data", poisoned_validation_labels)
    moved = wise_ft.run(**small)
    assert moved["early_epoch"] != clean["early_epoch"]
    assert moved["early_epoch"][0] == max(moved["checkpoints"], key=lambda c: c["validation"]["pass@16"])["epoch"]
