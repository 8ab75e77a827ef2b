"""Model adapters: one small contract over torch, scikit-learn and ONNX models.

An adapter has a ``name``, a ``device``, a ``fingerprint()`` of the weights and configuration
(the store's key, so changed weights are never mistaken for cached ones) and
``predict_proba(inputs) -> (n_samples, n_classes)``. Loading never unpickles untrusted data:
torch weights come from safetensors or ``torch.load(weights_only=True)``, and pickled
scikit-learn models need an explicit ``trust=True``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ontheline._optional import extra
from ontheline._validation import check_choice, check_number


class Model(Protocol):
    """What a runner takes: a ``name``, a ``device``, a ``fingerprint()`` of the weights and
    configuration (the store key) and ``predict_proba(inputs)`` returning ``(n_samples, n_classes)``.

    Any object with these runs; :class:`TorchModel`, :class:`SklearnModel` and :class:`OnnxModel`
    are ready-made ones.

    Examples
    --------
    >>> import tempfile
    >>> from ontheline.runners import Dataset, run
    >>> from ontheline.store import Store
    >>> class Uniform:  # a model that knows nothing
    ...     name, device = "uniform", "cpu"
    ...     def fingerprint(self):
    ...         return "uniform-over-3"
    ...     def predict_proba(self, inputs):
    ...         return np.full((len(inputs), 3), 1 / 3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     report = run([Uniform()], [Dataset("d", np.zeros((4, 2)))], Store(folder), progress=False)
    ...     print(report.predictions("d").probs.shape)
    (1, 4, 3)
    """

    name: str
    device: str

    def fingerprint(self) -> str: ...

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray: ...


class TorchModel:
    """A torch ``nn.Module`` run in eval mode without gradients, in batches, on CPU or GPU.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch of inputs to logits (or probabilities, with ``outputs='probs'``).
    name : str
    batch_size : int
    device : str
        Where to run, e.g. ``'cpu'`` or ``'cuda'``.
    outputs : {'logits', 'probs'}

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> model = TorchModel(net, "mlp", batch_size=2)
    >>> probs = model.predict_proba(np.random.default_rng(0).random((5, 4), dtype=np.float32))
    >>> probs.shape, bool(np.allclose(probs.sum(axis=1), 1)), len(model.fingerprint())
    ((5, 3), True, 64)
    """

    def __init__(
        self, module: Any, name: str, *, batch_size: int = 256, device: str = "cpu", outputs: str = "logits"
    ) -> None:
        check_number("TorchModel", "batch_size", batch_size, low=1, integer=True)
        check_choice("TorchModel", "outputs", outputs, ("logits", "probs"))
        self.module, self.name, self.batch_size, self.device, self.outputs = module, name, batch_size, device, outputs

    def fingerprint(self) -> str:
        with extra("torch"):
            import torch

        digest = hashlib.sha256(f"torch|{type(self.module).__qualname__}|{self.module!r}|{self.outputs}".encode())
        for key, tensor in self.module.state_dict().items():
            flat = tensor.detach().cpu().contiguous().view(-1)
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())  # raw bytes, whatever the dtype
        return digest.hexdigest()

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        with extra("torch"):
            import torch

        was_training = self.module.training
        self.module.eval()
        self.module.to(self.device)
        try:
            outputs = []
            with torch.inference_mode():
                for start in range(0, len(inputs), self.batch_size):
                    batch = torch.as_tensor(np.asarray(inputs[start : start + self.batch_size]), device=self.device)
                    scores = self.module(batch).float()
                    outputs.append((scores.softmax(dim=-1) if self.outputs == "logits" else scores).cpu().numpy())
        finally:
            self.module.train(was_training)
        return np.concatenate(outputs).astype(np.float64)


class SklearnModel:
    """A fitted scikit-learn classifier with ``predict_proba``; inputs are flattened to ``(n, features)``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> images, labels = np.random.default_rng(0).random((20, 2, 2)), np.arange(20) % 2
    >>> model = SklearnModel(LogisticRegression().fit(images.reshape(20, -1), labels), "logreg")
    >>> model.predict_proba(images[:3]).shape  # 2 x 2 images, flattened to 4 features
    (3, 2)
    """

    device = "cpu"

    def __init__(self, estimator: Any, name: str) -> None:
        if not hasattr(estimator, "predict_proba"):
            raise ValueError(
                f"SklearnModel needs a classifier with predict_proba; {type(estimator).__name__} has none "
                "(for SVC, wrap it in CalibratedClassifierCV)."
            )
        self.estimator, self.name = estimator, name

    def fingerprint(self) -> str:
        return hashlib.sha256(b"sklearn|" + pickle.dumps(self.estimator, protocol=4)).hexdigest()

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.asarray(inputs)
        return np.asarray(self.estimator.predict_proba(inputs.reshape(len(inputs), -1)), dtype=np.float64)


class OnnxModel:
    """An ONNX model run with onnxruntime on the CPU; its first input takes the batch.

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    name : str, optional
        Default: the file name without its suffix.
    outputs : {'logits', 'probs'}
    batch_size : int

    Examples
    --------
    >>> import tempfile
    >>> import onnx
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> weights = numpy_helper.from_array(np.eye(4, 3, dtype=np.float32), "w")
    >>> graph = helper.make_graph(
    ...     [helper.make_node("MatMul", ["x", "w"], ["logits"])], "linear",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
    ...     [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])], [weights],
    ... )
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"{folder}/linear.onnx")
    ...     model = OnnxModel(f"{folder}/linear.onnx")
    ...     probs = model.predict_proba(np.eye(4, dtype=np.float32))
    >>> model.name, probs.argmax(axis=1).tolist()
    ('linear', [0, 1, 2, 0])
    """

    device = "cpu"

    def __init__(
        self, path: str | os.PathLike[str], name: str | None = None, *, outputs: str = "logits", batch_size: int = 256
    ) -> None:
        check_choice("OnnxModel", "outputs", outputs, ("logits", "probs"))
        check_number("OnnxModel", "batch_size", batch_size, low=1, integer=True)
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"OnnxModel: {str(self.path)!r} does not exist; pass the path of an .onnx file.")
        self.name, self.outputs, self.batch_size = name or self.path.stem, outputs, batch_size
        self._session: Any = None

    def fingerprint(self) -> str:
        return hashlib.sha256(b"onnx|" + self.outputs.encode() + b"|" + self.path.read_bytes()).hexdigest()

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        if self._session is None:
            with extra("onnx"):
                import onnxruntime
            self._session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        input_name = self._session.get_inputs()[0].name
        outputs = [
            self._session.run(None, {input_name: np.asarray(inputs[s : s + self.batch_size], dtype=np.float32)})[0]
            for s in range(0, len(inputs), self.batch_size)
        ]
        scores = np.concatenate(outputs).astype(np.float64)
        if self.outputs == "probs":
            return scores
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


def load_torch(module: Any, weights: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> TorchModel:
    """Load weights into ``module`` from a ``.safetensors`` file or a torch state dict, never unpickling code.

    Torch files are read with ``torch.load(weights_only=True)``, which refuses pickled objects.
    A file that cannot be read as weights raises ValueError naming it.

    Parameters
    ----------
    module : torch.nn.Module
        The architecture, to load the weights into.
    weights : path
        A ``.safetensors`` file or a file saved with ``torch.save(module.state_dict(), path)``.
    name : str, optional
        Default: the file name without its suffix.
    **kwargs
        Passed to :class:`TorchModel` (``batch_size``, ``device``, ``outputs``).

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> trained = torch.nn.Linear(4, 3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     torch.save(trained.state_dict(), f"{folder}/linear.pt")
    ...     model = load_torch(torch.nn.Linear(4, 3), f"{folder}/linear.pt", batch_size=64)
    >>> model.name, bool(torch.equal(model.module.weight, trained.weight))
    ('linear', True)
    """
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"load_torch: {str(path)!r} does not exist; pass a .safetensors or .pt state-dict file.")
    state = _read_state_dict(path)
    module.load_state_dict(state)
    return TorchModel(module, name or path.stem, **kwargs)


def _read_state_dict(path: Path) -> dict[str, Any]:
    with extra("torch"):
        import torch

    if path.suffix == ".safetensors":
        with extra("safetensors"):
            from safetensors.torch import load_file
        reader, kind = (lambda: load_file(str(path))), "a safetensors file"
    else:
        reader, kind = (lambda: torch.load(path, map_location="cpu", weights_only=True)), "a torch state dict"
    try:
        state = reader()
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"load_torch: {str(path)!r} holds more than tensors, and unpickling it could run code "
            f"({str(exc).splitlines()[0]}); save module.state_dict() or use safetensors."
        ) from None
    except Exception as exc:  # the readers raise their own types (EOFError, SafetensorError, ...) on damage
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(
            f"load_torch: {str(path)!r} is not {kind} ({detail}); save the weights with "
            "safetensors.torch.save_file or torch.save(module.state_dict(), path)."
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"load_torch: {str(path)!r} holds a {type(state).__name__}, not a state dict of tensors.")
    return state


def load_sklearn(path: str | os.PathLike[str], name: str | None = None, *, trust: bool = False) -> SklearnModel:
    """Load a pickled scikit-learn model; only with ``trust=True``, because unpickling can run any code.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyClassifier
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with open(f"{folder}/dummy.pkl", "wb") as file:
    ...         pickle.dump(DummyClassifier().fit(np.zeros((4, 1)), [0, 1, 1, 1]), file)
    ...     model = load_sklearn(f"{folder}/dummy.pkl", trust=True)  # a file we just made ourselves
    >>> model.name, model.predict_proba(np.zeros((1, 1))).tolist()
    ('dummy', [[0.25, 0.75]])
    """
    path = Path(path)
    if not trust:
        raise ValueError(
            f"load_sklearn: {str(path)!r} is a pickle, and loading a pickle runs whatever code it holds. "
            "Pass trust=True only for files you made or fully trust."
        )
    with open(path, "rb") as file:
        return SklearnModel(pickle.load(file), name or path.stem)  # noqa: S301 - guarded by trust=True above


def load_hf(directory: str | os.PathLike[str], name: str | None = None, **kwargs: Any) -> TorchModel:
    """A Hugging Face transformers classifier saved in a local folder (``save_pretrained``); no hub access.

    Image classifiers take ``pixel_values`` ``(n, channels, height, width)``; sequence
    classifiers take ``input_ids`` ``(n, length)``. Only safetensors weights are read.

    Parameters
    ----------
    directory : path
        A folder written by ``save_pretrained`` (``config.json`` and safetensors weights).
    name : str, optional
        Default: the folder's name.
    **kwargs
        Passed to :class:`TorchModel` (``batch_size``, ``device``).

    Examples
    --------
    >>> import tempfile
    >>> import transformers
    >>> config = transformers.BertConfig(
    ...     vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, num_labels=3
    ... )
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     transformers.BertForSequenceClassification(config).save_pretrained(f"{folder}/tiny-bert")
    ...     model = load_hf(f"{folder}/tiny-bert")
    >>> model.name, model.predict_proba(np.ones((2, 5), dtype=np.int64)).shape  # token ids in, probabilities out
    ('tiny-bert', (2, 3))
    """
    with extra("torch"):
        import torch
    with extra("hf"):
        import transformers
    path = Path(directory)
    if not (path / "config.json").is_file():
        raise ValueError(f"load_hf: {str(path)!r} has no config.json; pass a folder written by save_pretrained.")
    # A folder can ship its own model code; never run it (transformers would ask, and run it on "y").
    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    architecture = (config.architectures or [""])[0]
    kinds = {
        "ForImageClassification": (transformers.AutoModelForImageClassification, "pixel_values"),
        "ForSequenceClassification": (transformers.AutoModelForSequenceClassification, "input_ids"),
    }
    kind = next((k for k in kinds if architecture.endswith(k)), None)
    if kind is None:
        raise ValueError(f"load_hf: {architecture or 'this model'} is not an image or sequence classifier.")
    auto, input_name = kinds[kind]
    model = auto.from_pretrained(path, local_files_only=True, use_safetensors=True, trust_remote_code=False)

    class LogitsOf(torch.nn.Module):  # the plain tensor-in, logits-out module the torch adapter runs
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: Any) -> Any:
            return self.model(**{input_name: inputs}).logits

    return TorchModel(LogitsOf(), name or path.name, **kwargs)
