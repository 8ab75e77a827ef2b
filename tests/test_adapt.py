"""Test-time adaptation on a real CNN trained on packaged digits and a real corruption."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="adaptation needs the torch extra, which make test installs")
pytest.importorskip("sklearn", reason="the digits need the bench extra, which make test installs")

from ontheline.adapt import METHODS, AdaptConfig, Adapted  # noqa: E402
from ontheline.bench.data import make_splits  # noqa: E402
from ontheline.shifts import corrupt  # noqa: E402
from ontheline.zoo import NetRecipe, train_net  # noqa: E402

CONFIGS = {
    "bn": AdaptConfig("bn", batch_size=64),
    "tent": AdaptConfig("tent", lr=1e-2, steps=3, batch_size=64),
    "eta": AdaptConfig("eta", lr=5e-2, steps=3, batch_size=64),
    "shot-im": AdaptConfig("shot-im", lr=1e-2, steps=3, batch_size=64),
}


@pytest.fixture(scope="module")
def cnn_and_shift():
    torch.set_num_threads(1)
    splits = make_splits("digits", 0, (0.5, 0.2, 0.3))
    (model,) = train_net(NetRecipe("cnn", 8, 1, 0, 3e-3, 1.0, (8,)), splits.train)
    shifted = corrupt(splits.id_test.images, "gaussian_noise", severity=4)[:, None]
    return model.module, shifted, splits.id_test.labels


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _entropy(probs):
    return float(-(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1).mean())


def _plain_probs(module, x):
    with torch.no_grad():
        return torch.softmax(module(torch.as_tensor(x)), dim=1).numpy()


@pytest.mark.parametrize("method", METHODS)
def test_reset_restores_every_weight_and_buffer_bit_for_bit_and_the_original_is_untouched(method, cnn_and_shift):
    module, shifted, _ = cnn_and_shift
    original = _state(module)
    adapted = Adapted(module, CONFIGS[method])
    first = adapted.predict_proba(shifted)
    changed = _state(adapted.model)
    assert any(not torch.equal(changed[k], original[k]) for k in original)  # adaptation did something
    adapted.reset()
    after = _state(adapted.model)
    assert all(torch.equal(after[k], original[k]) for k in original)
    assert all(torch.equal(v, original[k]) for k, v in _state(module).items())
    np.testing.assert_array_equal(adapted.predict_proba(shifted), first)  # a reset run repeats exactly


@pytest.mark.parametrize("method", METHODS)
def test_only_the_intended_parameters_change(method, cnn_and_shift):
    module, shifted, _ = cnn_and_shift
    adapted = Adapted(module, CONFIGS[method])
    before = {n: p.detach().clone() for n, p in adapted.model.named_parameters()}
    adapted.predict_proba(shifted)
    moved = {n for n, p in adapted.model.named_parameters() if not torch.equal(p, before[n])}
    norms = {f"{name}.{p}" for name, m in adapted.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
             for p in ("weight", "bias")}  # fmt: skip
    head = {n for n in before if n.startswith(f"{len(adapted.model) - 1}.")}  # the last Linear of the Sequential
    expected = {"bn": set(), "tent": norms, "eta": norms, "shot-im": set(before) - head}[method]
    assert moved == expected


@pytest.mark.parametrize("method", METHODS)
def test_each_method_lowers_the_entropy_on_a_shifted_batch(method, cnn_and_shift):
    module, shifted, _ = cnn_and_shift
    adapted = Adapted(module, CONFIGS[method])
    adapted.predict_proba(shifted)  # adapt continually over the shifted set
    if method == "bn":  # no step: batch statistics themselves are the adaptation
        after = adapted.predict_proba(shifted)
    else:
        adapted.optimizer = None  # predict with the adapted weights, no further step
        after = adapted.predict_proba(shifted)
    assert _entropy(after) < _entropy(_plain_probs(module, shifted))


def test_adaptation_is_deterministic_and_episodic_mode_resets_each_batch(cnn_and_shift):
    module, shifted, _ = cnn_and_shift
    config = CONFIGS["tent"]
    np.testing.assert_array_equal(
        Adapted(module, config).predict_proba(shifted), Adapted(module, config).predict_proba(shifted)
    )
    episodic = Adapted(module, AdaptConfig("tent", lr=1e-2, steps=3, batch_size=64, episodic=True))
    whole = episodic.predict_proba(shifted[:128])
    alone = Adapted(module, AdaptConfig("tent", lr=1e-2, steps=3, batch_size=64)).predict_proba(shifted[64:128])
    np.testing.assert_allclose(whole[64:], alone, atol=1e-6)  # the second batch starts from the original weights


def test_a_config_is_checked_and_named():
    assert AdaptConfig("tent", lr=1e-3, steps=2, batch_size=64).label == "tent-lr0.001-s2-b64"
    assert AdaptConfig("bn").label == "bn-b128"
    with pytest.raises(ValueError, match="method"):
        AdaptConfig("magic")
    with pytest.raises(ValueError, match="batch_size"):
        AdaptConfig("tent", batch_size=1)


def test_shot_im_needs_a_linear_head():
    with pytest.raises(ValueError, match="last nn.Linear"):
        Adapted(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()), "shot-im")


@pytest.fixture(scope="module")
def digits_cnns(tmp_path_factory):
    """Four small CNNs (two seeds x two lengths) saved as safetensors, with a module that builds them."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    splits = make_splits("digits", 0, (0.5, 0.2, 0.3))
    folder = tmp_path_factory.mktemp("cnns")
    (folder / "digits_cnn.py").write_text(
        "from ontheline.zoo.images import NetRecipe, _build_net\n\n\n"
        "def make_net():\n    return _build_net(NetRecipe('cnn', 4, 1, 0, 3e-3, 1.0, (1,)), 8)\n"
    )
    paths = []
    for seed in (0, 1):
        for model in train_net(NetRecipe("cnn", 4, 1, seed, 3e-3, 1.0, (2, 6)), splits.train):
            paths.append(folder / f"{model.name}.safetensors")
            save_file(model.module.state_dict(), str(paths[-1]))
    shifted = corrupt(splits.id_test.images, "gaussian_noise", severity=4)[:, None]
    return folder, paths, splits.id_val, shifted, splits.id_test.labels


def test_the_label_free_choice_is_the_highest_estimate_and_reruns_come_from_the_store(tmp_path, digits_cnns):
    import ontheline as otl
    from ontheline.adapt import select_adaptation
    from ontheline.runners import Dataset, load_torch
    from ontheline.store import Store
    from ontheline.zoo.images import _build_net

    _, paths, id_val, shifted, truth = digits_cnns
    models = [load_torch(_build_net(NetRecipe("cnn", 4, 1, 0, 3e-3, 1.0, (1,)), 8), p) for p in paths]
    grid = [AdaptConfig("bn", batch_size=64), AdaptConfig("tent", lr=1e-2, steps=2, batch_size=64)]
    id_data, ood_data = Dataset("id", id_val.images[:, None]), Dataset("ood", shifted)
    store = Store(tmp_path)
    choice = select_adaptation(models, id_data, id_val.labels, ood_data, grid, ood_labels=truth, store=store)
    assert [c.label for c in choice.candidates] == ["none", "bn-b64", "tent-lr0.01-s2-b64"]
    assert choice.best.estimated_accuracy == max(c.estimated_accuracy for c in choice.candidates)
    plain = otl.evaluate(
        np.stack([m.predict_proba(id_data.inputs) for m in models]), id_val.labels,
        np.stack([m.predict_proba(shifted) for m in models]), methods=["aline-d"], n_bootstrap=0,
    )  # fmt: skip
    assert choice.candidates[0].estimated_accuracy == pytest.approx(plain.results["aline-d"].ood_accuracy.mean())
    plain_ood = np.stack([m.predict_proba(shifted) for m in models])
    assert choice.candidates[0].true_accuracy == pytest.approx(otl.accuracy(plain_ood, truth).mean())
    entries = len(store.ls())
    assert entries == 3 * len(models) * 2
    again = select_adaptation(models, id_data, id_val.labels, ood_data, grid, ood_labels=truth, store=store)
    assert len(store.ls()) == entries and again.to_dict() == choice.to_dict()


def test_the_adapt_command_prints_every_candidate_and_the_choice(tmp_path, digits_cnns):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder, paths, id_val, shifted, truth = digits_cnns
    np.savez(tmp_path / "id.npz", x=id_val.images[:, None], labels=id_val.labels)
    np.savez(tmp_path / "ood.npz", x=shifted, labels=truth)
    exe = Path(sys.executable).with_name("ontheline")
    argv = [exe, "adapt", "--arch", "digits_cnn:make_net", "--id", tmp_path / "id.npz", "--ood", tmp_path / "ood.npz",
            "--method", "bn", "--method", "shot-im", "--lr", "1e-3", "--lr", "1e-2", "--batch-size", "64",
            "--store", tmp_path / "store", "--format", "json"]  # fmt: skip
    for path in paths:
        argv += ["--weights", path]
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    labels = [c["label"] for c in result["candidates"]]
    assert labels == ["none", "bn-b64", "shot-im-lr0.001-s1-b64", "shot-im-lr0.01-s1-b64"]
    best = max(result["candidates"], key=lambda c: c["estimated_accuracy"])
    assert result["chosen"] == best["label"]
    oracle = max(result["candidates"], key=lambda c: c["true_accuracy"])
    assert result["chosen_with_labels"] == oracle["label"]
    assert result["regret"] == pytest.approx(oracle["true_accuracy"] - best["true_accuracy"], abs=1e-5)
    bad = subprocess.run([str(a) for a in argv[:4] + ["--arch", "nowhere:nothing"] + argv[4:]], capture_output=True,
                         text=True, timeout=120, env=env)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--arch" in bad.stderr
