import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra, which make test installs")
pytest.importorskip("zarr", reason="the store extra, which make test installs")

import ontheline as otl  # noqa: E402
from ontheline.estimators import make_estimator  # noqa: E402
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


def _zoo_on_dask(chunk):
    id_probs, id_labels, ood_probs, ood_labels = otl.make_line_zoo(n_models=8, n_samples=6000, random_state=3)
    lazy = lambda p: da.from_array(np.asarray(p, np.float32), chunks=(1, chunk, -1))  # noqa: E731
    return (id_probs, id_labels, ood_probs, ood_labels), (lazy(id_probs), id_labels, lazy(ood_probs), ood_labels)


@pytest.mark.parametrize("method", list(otl.METHODS))
def test_every_estimator_on_dask_arrays_equals_the_in_memory_result(method):
    (id_p, id_y, ood_p, _), (id_lazy, _, ood_lazy, _) = _zoo_on_dask(chunk=1_700)
    eager = make_estimator(method, n_bootstrap=30)
    lazy = make_estimator(method, n_bootstrap=30)
    expected = eager.fit(np.asarray(id_p, np.float32), id_y).estimate(np.asarray(ood_p, np.float32))
    result = lazy.fit(id_lazy, id_y).estimate(ood_lazy)
    np.testing.assert_allclose(result.ood_accuracy, expected.ood_accuracy, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.id_accuracy, expected.id_accuracy)
    if expected.interval is not None:  # the bootstrap groups are the same samples, counted block by block
        np.testing.assert_allclose(result.interval, expected.interval, rtol=1e-9)
    if expected.line is not None:
        assert result.line == expected.line


def test_evaluate_reads_probabilities_from_the_store_chunk_by_chunk(tmp_path):
    (id_p, id_y, ood_p, ood_y), _ = _zoo_on_dask(chunk=1_000)
    store = Store(tmp_path)
    keys = {
        split: [
            store.put(probs=p, model=f"m{i}", model_fingerprint=f"w{i}", dataset=split, dataset_fingerprint=split).key
            for i, p in enumerate(probs)
        ]
        for split, probs in (("id", id_p), ("ood", ood_p))
    }
    # Blocks of 1,000 samples (the store's own chunks hold 65,536): several blocks, each read alone.
    id_lazy, ood_lazy = (store.stacked_probs(keys[s]).rechunk({1: 1_000}) for s in ("id", "ood"))
    assert id_lazy.numblocks[1] == 6
    lazy = otl.evaluate(id_lazy, id_y, ood_lazy, ood_labels=ood_y, n_bootstrap=20)
    eager = otl.evaluate(store.stacked_probs(keys["id"]).compute(), id_y, ood_lazy.compute(), ood_labels=ood_y,
                         n_bootstrap=20)  # fmt: skip
    for method, result in eager.results.items():
        np.testing.assert_allclose(lazy.results[method].ood_accuracy, result.ood_accuracy, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lazy.ood_accuracy, eager.ood_accuracy)


def test_lazy_predictions_are_checked_block_by_block_when_computed():
    bad = da.from_array(np.full((3, 10, 4), 0.5, np.float32), chunks=(3, 5, 4))  # rows sum to 2
    preds = otl.as_predictions(bad, name="ood_preds")
    with pytest.raises(ValueError, match="ood_preds rows must be probabilities"):
        otl.pairwise_agreement(preds)
    labels = da.from_array(np.array([[0, 1, 5], [0, 1, 2]]), chunks=(1, 2))
    with pytest.raises(ValueError, match=r"labels outside 0..2"):
        otl.pairwise_agreement(otl.as_predictions(labels, classes=range(3), name="x"))
