"""Test-time adaptation on a real CNN trained on packaged digits and a real corruption."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="adaptation needs the torch extra, which make test installs")
pytest.importorskip("sklearn", reason="the digits need the bench extra, which make test installs")

from ontheline.adapt import METHODS, AdaptConfig, Adapted  # noqa: E402
from ontheline.bench.data import make_splits  # noqa: E402
from ontheline.bench.zoo import NetRecipe, train_net  # noqa: E402
from ontheline.shifts import corrupt  # noqa: E402

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
