import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra, which make test installs")
pytest.importorskip("zarr", reason="the store extra, which make test installs")

import ontheline as otl  # noqa: E402
from ontheline.store import Store  # noqa: E402


def test_agreement_and_accuracy_on_dask_arrays_equal_the_in_memory_kernels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, (25, 50_000))
    truth = rng.integers(0, 10, 50_000)
    lazy = da.from_array(labels, chunks=(1, 7_000))  # one model per chunk, as the store gives them
    np.testing.assert_array_equal(otl.pairwise_agreement(lazy), otl.pairwise_agreement(labels))
    np.testing.assert_array_equal(otl.accuracy(lazy, truth), otl.accuracy(labels, truth))
    probs = rng.dirichlet(np.ones(4), size=(6, 3_000))
    np.testing.assert_array_equal(
        otl.pairwise_agreement(da.from_array(probs, chunks=(2, 1_000, 4))), otl.pairwise_agreement(probs)
    )


def test_a_dask_array_of_floats_that_are_not_probabilities_is_refused():
    with pytest.raises(ValueError, match="class indices"):
        otl.pairwise_agreement(da.ones((3, 10), chunks=(1, 5)))


def test_labels_read_lazily_from_the_store_give_the_same_agreement(tmp_path):
    store = Store(tmp_path)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, (12, 40_000))
    keys = [
        store.put(labels=row, model=f"m{i}", model_fingerprint=f"w{i}", dataset="d", dataset_fingerprint="x").key
        for i, row in enumerate(labels)
    ]
    lazy = store.stacked_labels(keys)
    assert lazy.shape == (12, 40_000) and store.get(keys[3]).probs is None
    np.testing.assert_array_equal(otl.pairwise_agreement(lazy), otl.pairwise_agreement(labels))


def test_inference_on_a_local_cluster_writes_the_same_entries_as_the_local_runner(tmp_path):
    distributed = pytest.importorskip("distributed")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from ontheline.runners import Dataset, SklearnModel, run, run_distributed

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    models = [SklearnModel(LogisticRegression(C=c, max_iter=500).fit(x[:600], y[:600]), f"lr{c}") for c in (0.1, 1.0)]
    data = [Dataset("rest", x[600:])]
    local = run(models, data, Store(tmp_path / "local"))
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        remote = run_distributed(models, data, Store(tmp_path / "dask"), client, shard_size=250)
        assert run_distributed(models, data, Store(tmp_path / "dask"), client).computed == ()  # all cached now
    assert remote.keys == local.keys and len(remote.computed) == 2
    for name in ("lr0.1", "lr1.0"):
        a = Store(tmp_path / "local").get(local.keys[name]["rest"])
        b = Store(tmp_path / "dask").get(remote.keys[name]["rest"])
        np.testing.assert_array_equal(a.probs, b.probs)
