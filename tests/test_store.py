import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("zarr", reason="the store needs the store extra, which make test installs")

from ontheline.store import Store, StoreError, entry_key, fingerprint_array  # noqa: E402


def _probs(n=500, k=4, seed=0):
    p = np.random.default_rng(seed).random((n, k))
    return p / p.sum(axis=1, keepdims=True)


def _put(store, probs, model="m", data="d", **kwargs):
    return store.put(
        probs, model=model, model_fingerprint=f"w-{model}", dataset=data, dataset_fingerprint=f"x-{data}", **kwargs
    )


def test_an_entry_reads_back_exactly_with_its_metadata(tmp_path):
    store = Store(tmp_path)
    probs = _probs()
    info = _put(store, probs, seconds=1.5, device="cpu")
    entry = store.get(info.key)
    np.testing.assert_array_equal(entry.probs, probs.astype(np.float32))
    np.testing.assert_array_equal(entry.labels, probs.argmax(axis=1))
    assert (info.n_samples, info.n_classes, info.dtype, info.seconds, info.device) == (500, 4, "float32", 1.5, "cpu")
    assert info.key == entry_key("w-m", "x-d") and store.has(info.key)


def test_float16_entries_keep_the_labels_of_the_unrounded_probabilities(tmp_path):
    store = Store(tmp_path)
    probs = np.array([[0.50001, 0.49999], [0.3, 0.7]])  # equal once rounded to float16
    entry = store.get(_put(store, probs, dtype="float16").key)
    assert entry.probs.dtype == np.float16 and entry.labels.tolist() == [0, 1]


def test_putting_the_same_entry_twice_keeps_one(tmp_path):
    store = Store(tmp_path)
    first = _put(store, _probs())
    again = _put(store, _probs())
    assert again == first and len(store.ls()) == 1


def test_ls_filters_rm_removes_and_keys_may_be_shortened(tmp_path):
    store = Store(tmp_path)
    a = _put(store, _probs(), model="a")
    b = _put(store, _probs(seed=1), model="b", data="e")
    assert [i.model for i in store.ls()] == ["a", "b"] and [i.model for i in store.ls(dataset="e")] == ["b"]
    assert store.info(a.key[:8]) == a
    store.rm(b.key[:10])
    assert [i.key for i in store.ls()] == [a.key] and not store.has(b.key)
    with pytest.raises(StoreError, match="No entry"):
        store.get(b.key)
    with pytest.raises(StoreError, match="No entry"):
        store.info(a.key[:3])


def test_the_array_fingerprint_follows_content_shape_and_dtype():
    x = np.arange(12, dtype=np.float32)
    assert fingerprint_array(x) == fingerprint_array(x.copy())
    assert fingerprint_array(x) != fingerprint_array(x.reshape(3, 4))
    assert fingerprint_array(x) != fingerprint_array(x.astype(np.float64))
    assert fingerprint_array(x[::2]) == fingerprint_array(np.ascontiguousarray(x[::2]))


def _chunk_files(store, key):
    root = store.path / "entries" / key[:2] / key / "probs" / "c"
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def test_a_damaged_entry_raises_instead_of_returning_wrong_numbers(tmp_path):
    store = Store(tmp_path)
    info = _put(store, _probs())
    for path in _chunk_files(store, info.key):
        with open(path, "r+b") as file:
            file.seek(20)
            file.write(b"\x00garbage\x00")
    with pytest.raises(StoreError, match=f"damaged.*ontheline store rm {info.key}"):
        store.get(info.key)


def test_an_entry_changed_behind_the_stores_back_fails_its_checksum(tmp_path):
    import zarr

    store = Store(tmp_path)
    info = _put(store, _probs())
    group = zarr.open_group(str(store.path / "entries" / info.key[:2] / info.key), mode="r+")
    group["probs"][0, 0] = 0.123
    with pytest.raises(StoreError, match="do not match the checksum"):
        store.get(info.key)
    assert _put(store, _probs()).key == info.key  # putting it again repairs it
    np.testing.assert_array_equal(store.get(info.key).probs, _probs().astype(np.float32))


def test_an_unknown_schema_version_or_a_broken_catalog_is_refused(tmp_path):
    Store(tmp_path / "a")
    with sqlite3.connect(tmp_path / "a" / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        Store(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be read"):
        Store(tmp_path / "b")


def test_a_folder_renamed_into_place_but_never_cataloged_stays_invisible_until_put(tmp_path):
    store = Store(tmp_path)
    probs = _probs()
    key = entry_key("w-m", "x-d")
    stored = probs.astype(np.float32)
    store._write_entry(
        store._entry_path(key), probs.argmax(axis=1).astype(np.int32), stored
    )  # killed before the insert
    assert not store.has(key) and store.ls() == []
    assert _put(store, probs).key == key and store.has(key)


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from ontheline.store import Store
    store, first, count = Store(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for i in range(first, first + count):
        p = np.random.default_rng(i).random((20000, 10))
        store.put(p / p.sum(1, keepdims=True), model=f"m{i}", model_fingerprint=f"w{i}", dataset="d", dataset_fingerprint="x")
        print(i, flush=True)
    """
)


def _writer(tmp_path, first, count, stdout=subprocess.DEVNULL):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    return subprocess.Popen([sys.executable, script, tmp_path / "store", str(first), str(count)], stdout=stdout)


def _all_entries_valid(store):
    for info in store.ls():
        entry = store.get(info.key)  # verifies the checksum
        expected = np.random.default_rng(int(info.model[1:])).random((20000, 10))
        np.testing.assert_array_equal(entry.probs, (expected / expected.sum(1, keepdims=True)).astype(np.float32))


def test_two_processes_writing_at_once_leave_every_entry_whole(tmp_path):
    Store(tmp_path / "store")
    writers = [_writer(tmp_path, 0, 12), _writer(tmp_path, 6, 12)]  # entries 6-11 are written by both
    for w in writers:
        assert w.wait(timeout=120) == 0
    store = Store(tmp_path / "store")
    assert sorted(int(i.model[1:]) for i in store.ls()) == list(range(18))
    _all_entries_valid(store)


def test_a_writer_killed_at_any_moment_leaves_no_partial_entry(tmp_path):
    Store(tmp_path / "store")
    (tmp_path / "store" / "tmp" / f"{'a' * 32}-{os.getpid()}-beef").mkdir()  # a live writer's staging folder
    for delay in (0.0, 0.02, 0.05, 0.11):
        writer = _writer(tmp_path, 0, 200, stdout=subprocess.PIPE)
        with writer.stdout:
            writer.stdout.readline()  # one entry is written: the writer is now busy in its loop
            time.sleep(delay)
            writer.send_signal(signal.SIGKILL)
        writer.wait()
        _all_entries_valid(Store(tmp_path / "store"))
    store = Store(tmp_path / "store")
    assert len(store.ls()) >= 1
    leftovers = {p.name for p in (store.path / "tmp").iterdir()}
    store.clean()  # removes what the killed writers left, keeps the live writer's folder
    assert {p.name for p in (store.path / "tmp").iterdir()} == {f"{'a' * 32}-{os.getpid()}-beef"} <= leftovers
    _all_entries_valid(store)


def test_the_store_commands_list_inspect_export_and_remove(tmp_path, capsys):
    import json

    from ontheline.cli import main

    store = Store(tmp_path / "s")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    for name in ("a", "b", "c"):
        for data in ("id", "ood"):
            _put(store, _probs(n=300, seed=hash((name, data)) % 1000), model=name, data=data)
    np.save(tmp_path / "labels.npy", labels)

    def cli(*argv):
        code = main([str(a) for a in (*argv[:2], "--store", tmp_path / "s", *argv[2:])])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cli("store", "ls", "--dataset", "id")
    assert code == 0 and len(out.splitlines()) == 2 + 3
    code, out, _ = cli("store", "ls", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 6
    key = store.ls(model="b", dataset="ood")[0].key
    assert json.loads(cli("store", "info", key[:8])[1])["model"] == "b"
    for data, extra in (("id", ["--labels", tmp_path / "labels.npy"]), ("ood", [])):
        assert cli("store", "export", "--dataset", data, "--out", tmp_path / f"{data}.npz", *extra)[0] == 0
    code = main(["estimate", "--id", str(tmp_path / "id.npz"), "--ood", str(tmp_path / "ood.npz"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [m["name"] for m in json.loads(out)["models"]] == ["a", "b", "c"]
    (tmp_path / "s" / "tmp" / f"{key}-removed-0000").mkdir()  # as left by a killed rm
    code, out, _ = cli("store", "clean")
    assert code == 0 and out.startswith("Removed 1 leftover")
    code, out, _ = cli("store", "rm", key)
    assert code == 0 and "Removed" in out and not store.has(key)
    code, _, err = cli("store", "rm", "ffffffffff")
    assert code == 2 and "No entry" in err and err.count("\n") == 1
    code, _, err = cli(
        "store", "export", "--dataset", "id", "--labels", tmp_path / "missing.npy", "--out", tmp_path / "x.npz"
    )
    assert code == 2 and "--labels" in err
