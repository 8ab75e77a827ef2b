import importlib.util
import os
import shutil
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
    with pytest.raises(StoreError, match="'[0-9a-f]{3}' is not an entry key: expected 6 to 32 lowercase hex"):
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
    _put(Store(tmp_path / "a"), _probs())
    db = sqlite3.connect(tmp_path / "a" / "catalog.sqlite")
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    db.close()
    for use in (Store.ls, lambda store: _put(store, _probs(seed=1), model="n")):
        with pytest.raises(StoreError, match="schema version 99"):
            use(Store(tmp_path / "a"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "catalog.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be read"):
        Store(tmp_path / "b").ls()


def test_a_folder_renamed_into_place_but_never_cataloged_stays_invisible_until_put(tmp_path):
    store = Store(tmp_path)
    key = _put(store, _probs(seed=1), dtype="float16").key  # other numbers, in the folder put will use
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    with db:  # as if killed before the insert
        db.execute("DELETE FROM entries")
        db.execute("DELETE FROM chunks")
    db.close()
    assert (tmp_path / "entries" / key[:2] / key).is_dir()
    assert not store.has(key) and store.ls() == []
    assert _put(store, _probs()).key == key and store.has(key)
    np.testing.assert_array_equal(store.get(key).probs, _probs().astype(np.float32))  # replaced, not trusted


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
    (tmp_path / "store" / "tmp" / f"{'a' * 32}-{os.getpid()}-beef").mkdir(parents=True)  # a live writer's staging
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


# --- damage on the lazy path, same key twice, hostile keys, read-only stores -------------------


_DASK = importlib.util.find_spec("dask") is not None


@pytest.fixture
def small_chunks(monkeypatch):
    """Entries of 500 samples written in 4 chunks (128, 128, 128, 116) instead of one of 65,536."""
    import ontheline.store

    monkeypatch.setattr(ontheline.store, "CHUNK_SAMPLES", 128)


def _entry_dir(store, key):
    return store.path / "entries" / key[:2] / key


def test_the_lazy_path_raises_on_a_lost_or_a_swapped_chunk(tmp_path, small_chunks):
    pytest.importorskip("dask", reason="the lazy path needs the dask extra, which make test installs")
    import ontheline as otl

    store = Store(tmp_path)
    keys = {
        data: [_put(store, _probs(seed=10 * i + (data == "ood")), model=m, data=data).key for i, m in enumerate("abc")]
        for data in ("id", "ood")
    }
    a, b, c = keys["ood"]
    assert sorted(os.listdir(_entry_dir(store, a) / "probs" / "c")) == ["0", "1", "2", "3"]  # 4 chunks of samples
    expected = np.stack([store.get(k).probs for k in keys["ood"]])
    np.testing.assert_array_equal(store.stacked_probs(keys["ood"]).compute(), expected)  # intact: read as stored
    os.remove(_entry_dir(store, a) / "labels" / "c" / "2")  # would read as zarr's fill value, 0
    with pytest.raises(StoreError, match=f"{a} .*damaged: its labels of samples 256 to 384 .*ontheline store rm {a}"):
        store.stacked_labels(keys["ood"]).compute()
    one, other = (_entry_dir(store, k) / "probs" / "c" / "1" / "0" for k in (b, c))  # equal shapes: each decodes
    one_bytes = one.read_bytes()
    one.write_bytes(other.read_bytes())
    other.write_bytes(one_bytes)
    for key in (b, c):
        with pytest.raises(StoreError, match=f"{key} .*damaged: its probs of samples 128 to 256 do not match"):
            store.stacked_probs([key]).compute()
    id_lazy, ood_lazy = store.stacked_probs(keys["id"]), store.stacked_probs(keys["ood"])
    with pytest.raises(StoreError, match="damaged"):  # the estimates never see the swapped numbers
        otl.evaluate(id_lazy, np.zeros(500, int), ood_lazy, methods=["doc"])
    np.testing.assert_array_equal(store.stacked_probs([keys["id"][0]]).compute()[0], store.get(keys["id"][0]).probs)


def test_putting_a_key_again_keeps_the_intact_entry_whatever_dtype_or_numbers_come(tmp_path, small_chunks):
    store = Store(tmp_path)
    first = _put(store, _probs())
    assert _put(store, _probs(), dtype="float16") == first  # the same key: the same model, data and code
    assert _put(store, _probs() + 1e-3) == first
    assert store.get(first.key).probs.tolist() == _probs().astype(np.float32).tolist()  # still verifies
    if _DASK:  # the lazy path reads it too
        np.testing.assert_array_equal(store.stacked_probs([first.key]).compute()[0], store.get(first.key).probs)


def test_a_missing_or_damaged_entry_put_again_is_replaced_with_its_own_row(tmp_path, small_chunks):
    store = Store(tmp_path)
    first = _put(store, _probs())
    shutil.rmtree(_entry_dir(store, first.key))  # missing
    again = _put(store, _probs(), dtype="float16", seconds=2.0)
    assert (again.dtype, again.seconds) == ("float16", 2.0) and store.info(first.key) == again
    np.testing.assert_array_equal(store.get(first.key).probs, _probs().astype(np.float16))
    (_entry_dir(store, first.key) / "probs" / "c" / "1" / "0").write_bytes(b"damaged")
    third = _put(store, _probs(seed=1))  # damaged: replaced, arrays and row together
    assert third.dtype == "float32" and store.ls() == [third]
    np.testing.assert_array_equal(store.get(first.key).probs, _probs(seed=1).astype(np.float32))
    if _DASK:  # the lazy path checks the new chunk checksums
        np.testing.assert_array_equal(store.stacked_probs([first.key]).compute()[0], store.get(first.key).probs)


def test_a_hostile_key_in_the_catalog_never_becomes_a_path(tmp_path, capsys):
    from ontheline.cli import main

    store = Store(tmp_path / "a" / "store")
    info = _put(store, _probs())
    victim = tmp_path / "victim_dir"  # where 'entries/../../../victim_dir' leads
    victim.mkdir()
    (victim / "keep.txt").write_text("keep me")
    db = sqlite3.connect(store.path / "catalog.sqlite")
    with db:
        db.execute("UPDATE entries SET key = '../../victim_dir'")
    db.close()
    code = main(["store", "rm", "../../victim_dir", "--store", str(store.path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'../../victim_dir' is not an entry key" in err
    for call in (lambda: store.rm("../../victim_dir"), lambda: store.get("../../victim_dir"), store.ls):
        with pytest.raises(StoreError, match="is not an entry key|damaged: it has an entry key '../../victim_dir'"):
            call()
    # A hostile key found through a valid prefix is damage too.
    db = sqlite3.connect(store.path / "catalog.sqlite")
    with db:
        db.execute("UPDATE entries SET key = ?", (f"{info.key[:8]}/../../../../victim_dir",))
    db.close()
    assert main(["store", "rm", info.key[:8], "--store", str(store.path)]) == 2
    assert "damaged: it has an entry key" in capsys.readouterr().err
    with pytest.raises(StoreError, match="damaged: it has an entry key"):
        store.rm(info.key[:8])
    assert (victim / "keep.txt").read_text() == "keep me"


def test_an_entry_folder_linked_outside_the_store_is_never_followed(tmp_path):
    store = Store(tmp_path / "store")
    info = _put(store, _probs())
    outside = tmp_path / "outside"
    os.rename(store.path / "entries" / info.key[:2], outside)
    os.symlink(outside, store.path / "entries" / info.key[:2])
    for call in (store.rm, store.get):
        with pytest.raises(StoreError, match=f"the folder of entry {info.key} leads outside it"):
            call(info.key)
    assert (outside / info.key / "zarr.json").is_file()


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path, capsys):
    from ontheline.cli import main

    missing = tmp_path / "no" / "store"
    store = Store(missing)
    assert store.ls() == [] and not store.has("0" * 32) and store.clean() == 0
    with pytest.raises(StoreError, match="No entry"):
        store.info("0" * 32)
    for argv in (["ls"], ["info", "0" * 32], ["rm", "0" * 32], ["export", "--dataset", "d", "--out", "x.npz"]):
        code = main(["store", argv[0], "--store", str(missing), *argv[1:]])
        err = capsys.readouterr().err
        assert code == 2 and err == f"ontheline: error: There is no store at {str(missing)!r}; " + err.split("; ", 1)[1]
        assert err.count("\n") == 1
    assert main(["store", "clean", "--store", str(missing)]) == 0  # nothing to clean
    assert not (tmp_path / "no").exists()


def test_an_empty_or_tableless_catalog_is_damage_not_an_empty_store(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "catalog.sqlite").touch()  # zero bytes
    db = sqlite3.connect(tmp_path / "b" / "catalog.sqlite")  # a database, without the store's tables
    db.execute("CREATE TABLE other (x)")
    db.close()
    for name in ("a", "b"):
        with pytest.raises(StoreError, match=r"catalog .* cannot be read \(no such table: meta\)"):
            Store(tmp_path / name).ls()
        with pytest.raises(StoreError, match=r"catalog .* cannot be read \(no such table: meta\)"):
            _put(Store(tmp_path / name), _probs())
    assert (tmp_path / "a" / "catalog.sqlite").stat().st_size == 0


def test_first_writers_racing_to_create_a_store_share_one_catalog(tmp_path):
    import threading

    store, start = Store(tmp_path / "new"), threading.Barrier(6)
    errors = []

    def write(i):
        start.wait()
        try:
            _put(store, _probs(n=50, seed=i), model=f"m{i}")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(i.model for i in store.ls()) == [f"m{i}" for i in range(6)]
    assert list((store.path / "tmp").iterdir()) == []  # no draft catalog left behind


def _catalog_value(path, query):
    db = sqlite3.connect(path / "catalog.sqlite")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_a_version_1_store_is_read_as_it_is_and_migrated_by_its_first_write(tmp_path, small_chunks):
    pytest.importorskip("dask", reason="the lazy path needs the dask extra, which make test installs")
    store = Store(tmp_path)
    old = _put(store, _probs(), model="old")
    db = sqlite3.connect(tmp_path / "catalog.sqlite")  # as version 1 wrote it: no chunk checksums
    with db:
        db.execute("DROP TABLE chunks")
        db.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
    db.close()
    version = "SELECT value FROM meta WHERE name = 'schema_version'"
    np.testing.assert_array_equal(store.stacked_probs([old.key]).compute()[0], store.get(old.key).probs)
    assert store.ls() == [old] and _catalog_value(tmp_path, version) == [("1",)]  # reading never migrates
    new = _put(store, _probs(seed=1), model="new")
    assert _catalog_value(tmp_path, version) == [("2",)]
    chunks = _catalog_value(tmp_path, "SELECT key, array, count(*) FROM chunks GROUP BY key, array")
    assert chunks == [(new.key, "labels", 4), (new.key, "probs", 4)]  # the old entry has none
    both = store.stacked_probs([old.key, new.key]).compute()
    np.testing.assert_array_equal(both, np.stack([store.get(k).probs for k in (old.key, new.key)]))
    chunk = _entry_dir(store, old.key) / "probs" / "c" / "3" / "0"
    chunk.write_bytes(_entry_dir(store, new.key).joinpath("probs", "c", "3", "0").read_bytes())
    with pytest.raises(StoreError, match=f"{old.key} .*damaged: its arrays do not match the checksum"):
        store.stacked_probs([old.key, new.key])  # verified whole before the lazy array is made


# Root keeps its uid but gets no capabilities from this exec on (its bounding set emptied), so
# file permissions bind it as they bind anyone: a reader who cannot write the store.
_UNPRIVILEGED = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None)\n"
    "for cap in range(64):\n"
    "    libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)
_PROBE = "import os, sys, ontheline.cli; sys.exit(3 * os.access(sys.argv[1], os.W_OK))"


def _reader_who_cannot_write(folder):
    """``(argv prefix, subprocess options)`` of a Python that imports ontheline but cannot write ``folder``."""
    if os.geteuid() != 0:
        readers = [([sys.executable], {})]
    else:  # the unprivileged user 'nobody' where it can run this Python, else root without capabilities
        nobody = {"user": 65534, "group": 65534, "extra_groups": []}
        readers = [([sys.executable], nobody), ([sys.executable, "-c", _UNPRIVILEGED], {})]
    for prefix, options in readers:
        try:
            probe = subprocess.run([*prefix, "-c", _PROBE, folder], capture_output=True, **options)
        except OSError:  # e.g. nobody may not execute this interpreter
            continue
        if probe.returncode == 0:
            return prefix, options
    return None


def test_a_read_only_store_is_listed_and_inspected_by_a_reader_who_cannot_write_it(tmp_path):
    import json
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp())  # in /tmp: pytest's own folders are private to their owner
    try:
        base.chmod(0o755)
        store = Store(base / "store")
        info = _put(store, _probs())
        for folder, _, files in os.walk(store.path, topdown=False):  # world-readable, writable by nobody
            for name in files:
                os.chmod(os.path.join(folder, name), 0o444)
            os.chmod(folder, 0o555)
        reader = _reader_who_cannot_write(store.path)
        if reader is None:
            pytest.skip("no user here can run this Python without being able to write the store folder")
        prefix, options = reader
        before = sorted(os.walk(store.path))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        for action, args in (("ls", ["--format", "json"]), ("info", [info.key[:8]])):
            command = [*prefix, "-m", "ontheline.cli", "store", action, "--store", store.path, *args]
            done = subprocess.run(command, capture_output=True, text=True, env=env, **options)
            assert done.returncode == 0, done.stderr
            found = json.loads(done.stdout)
            assert (found[0] if action == "ls" else found)["key"] == info.key
        assert sorted(os.walk(store.path)) == before  # nothing was created
    finally:
        for folder, _, _ in os.walk(base):
            os.chmod(folder, 0o755)
        shutil.rmtree(base)


def test_a_tmp_folder_linked_outside_the_store_is_never_cleaned_nor_written(tmp_path):
    from ontheline.cli import main

    store = Store(tmp_path / "store")
    store.put(
        np.array([[0.9, 0.1], [0.2, 0.8]]), model="m", model_fingerprint="w", dataset="d", dataset_fingerprint="x"
    )
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep-me").write_text("precious")
    shutil.rmtree(store.path / "tmp")
    (store.path / "tmp").symlink_to(victim)
    assert main(["store", "clean", "--store", str(store.path)]) == 2
    with pytest.raises(StoreError, match="tmp/ folder leads outside it"):
        store.clean()
    with pytest.raises(StoreError, match="tmp/ folder leads outside it"):
        store.put(np.array([[0.5, 0.5]]), model="m2", model_fingerprint="w2", dataset="d", dataset_fingerprint="y")
    assert [p.name for p in victim.iterdir()] == ["keep-me"]
