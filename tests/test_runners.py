import json
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("zarr", reason="the store needs the store extra, which make test installs")
torch = pytest.importorskip("torch", reason="the torch adapter needs the torch extra, which make test installs")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from ontheline.runners import (  # noqa: E402
    Dataset,
    OnnxModel,
    SklearnModel,
    TorchModel,
    load_sklearn,
    load_torch,
    run,
)
from ontheline.store import Store  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


def _mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def test_sklearn_models_run_into_the_store_once(tmp_path, digits):
    x, y = digits
    models = [
        SklearnModel(LogisticRegression(C=c, max_iter=200).fit(x[:800], y[:800]), f"logreg-{c}") for c in (0.1, 1.0)
    ]
    data = [Dataset("val", x[800:1200]), Dataset("test", x[1200:])]
    store = Store(tmp_path)
    first = run(models, data, store)
    assert len(first.computed) == 4 and first.cached == ()
    preds = first.predictions("test")
    assert preds.models == ("logreg-0.1", "logreg-1.0")
    np.testing.assert_allclose(preds.probs[1], models[1].estimator.predict_proba(x[1200:]), atol=1e-6)
    again = run(models, data, store)
    assert again.computed == () and len(again.cached) == 4 and again.keys == first.keys
    refit = SklearnModel(LogisticRegression(C=0.5, max_iter=200).fit(x[:800], y[:800]), "logreg-1.0")
    assert run([refit], data, store).computed == (("logreg-1.0", "val"), ("logreg-1.0", "test"))  # new weights
    shifted = Dataset("test", x[1200:], preprocessing="resized")
    assert len(run(models, [shifted], store).computed) == 2  # same pixels, other preprocessing: new entries


def test_the_torch_adapter_gives_softmax_in_eval_mode_and_restores_the_mode(digits):
    x, _ = digits
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 10))
    net.train()
    model = TorchModel(net, "net", batch_size=100)
    probs = model.predict_proba(x[:250])
    with torch.no_grad():
        expected = torch.softmax(net.eval()(torch.from_numpy(x[:250])), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    net.train()
    model.predict_proba(x[:10])
    assert net.training  # the caller's mode is left as it was


def test_a_torch_fingerprint_follows_the_weights_and_survives_saving(tmp_path):
    from safetensors.torch import save_file

    net = _mlp()
    model = TorchModel(net, "net")
    torch.save(net.state_dict(), tmp_path / "net.pt")
    save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    for path in ("net.pt", "net.safetensors"):
        assert load_torch(_mlp(seed=1), tmp_path / path).fingerprint() == model.fingerprint()
    assert TorchModel(_mlp(seed=1), "other").fingerprint() != model.fingerprint()


def test_load_torch_refuses_a_pickle_that_holds_code(tmp_path):
    torch.save({"model": _mlp()}, tmp_path / "whole.pt")  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="unpickling it could run code"):
        load_torch(_mlp(), tmp_path / "whole.pt")


def test_pickled_sklearn_models_need_an_explicit_trust_flag(tmp_path, digits):
    x, y = digits
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=200).fit(x[:300], y[:300])))
    with pytest.raises(ValueError, match="trust=True"):
        load_sklearn(path)
    assert load_sklearn(path, trust=True).predict_proba(x[:5]).shape == (5, 10)


def test_the_onnx_adapter_matches_the_same_linear_model_in_numpy(tmp_path, digits):
    onnx = pytest.importorskip("onnx", reason="the onnx extra, which make test installs")
    from onnx import TensorProto, helper, numpy_helper

    x, _ = digits
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(64, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "linear.onnx")
    model = OnnxModel(tmp_path / "linear.onnx", batch_size=100)
    logits = x[:300] @ w + b
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(x[:300]), expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert model.name == "linear" and len(model.fingerprint()) == 64


def test_run_refuses_duplicate_model_names_and_an_unknown_dtype_before_any_work(tmp_path, digits):
    x, y = digits
    fitted = LogisticRegression(max_iter=100).fit(x[:300], y[:300])
    with pytest.raises(ValueError, match=r"unique model names; \['a'\]"):
        run([SklearnModel(fitted, "a"), SklearnModel(fitted, "a")], [Dataset("d", x[:10])], Store(tmp_path))
    with pytest.raises(ValueError, match="The 'dtype' parameter of run must be one of"):
        run([SklearnModel(fitted, "a")], [Dataset("d", x[:10])], Store(tmp_path), dtype="int8")
    assert Store(tmp_path).ls() == []


_RUNNER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, torch
    from sklearn.datasets import load_digits
    from ontheline.runners import Dataset, TorchModel, run
    from ontheline.store import Store

    torch.set_num_threads(1)

    class Slow(TorchModel):  # real inference, slowed down so that the test can kill it mid-run
        def predict_proba(self, inputs):
            time.sleep(0.08)
            return super().predict_proba(inputs)

    x = (load_digits().data / 16.0).astype(np.float32)
    models = []
    for seed in range(6):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        models.append(Slow(net, f"net{seed}"))
    report = run(models, [Dataset("a", x[:900]), Dataset("b", x[900:])], Store(sys.argv[1]))
    print(json.dumps({"computed": len(report.computed), "cached": len(report.cached), "keys": report.keys}))
    """
)


def test_a_run_killed_mid_way_resumes_to_the_same_results_without_recomputing(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(_RUNNER)
    killed_store = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, script, killed_store], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if (killed_store / "catalog.sqlite").exists() and len(Store(killed_store).ls()) >= 4:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    survived = len(Store(killed_store).ls())
    assert 4 <= survived < 12, "the run should have been killed part-way"
    runs = [
        subprocess.Popen([sys.executable, script, s], stdout=subprocess.PIPE)
        for s in (killed_store, tmp_path / "clean")
    ]
    resumed, clean = (json.loads(r.communicate(timeout=120)[0]) for r in runs)  # resume, and a clean run beside it
    assert resumed["cached"] == survived and resumed["computed"] == 12 - survived
    assert clean["computed"] == 12 and resumed["keys"] == clean["keys"]
    a, b = Store(killed_store), Store(tmp_path / "clean")
    for per_dataset in clean["keys"].values():
        for key in per_dataset.values():
            np.testing.assert_array_equal(a.get(key).probs, b.get(key).probs)


def test_hugging_face_classifiers_load_from_a_local_folder_and_match_their_logits(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.runners import load_hf

    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(
        transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=16, num_labels=10)
    )  # fmt: skip
    vit.save_pretrained(tmp_path / "vit")
    images = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    model = load_hf(tmp_path / "vit", batch_size=8)
    with torch.no_grad():
        expected = torch.softmax(vit.eval()(pixel_values=torch.from_numpy(images)).logits, dim=1).numpy()
    np.testing.assert_allclose(model.predict_proba(images), expected, atol=1e-5)
    assert model.name == "vit" and load_hf(tmp_path / "vit").fingerprint() == model.fingerprint()

    bert = transformers.BertForSequenceClassification(
        transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16, num_labels=3)
    )  # fmt: skip
    bert.save_pretrained(tmp_path / "bert")
    tokens = np.random.default_rng(1).integers(0, 50, (6, 7))
    probs = load_hf(tmp_path / "bert").predict_proba(tokens)
    assert probs.shape == (6, 3) and np.allclose(probs.sum(axis=1), 1)
    with pytest.raises(ValueError, match="no config.json"):
        load_hf(tmp_path)
