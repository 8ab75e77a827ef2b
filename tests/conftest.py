import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property-based tests: a bounded run in `make test`, a long one in `make fuzz` (--hypothesis-profile=fuzz).
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(scope="session")
def bench_store(tmp_path_factory):
    """One prediction-store folder for every test that runs the tiny benchmark, so its zoo trains once."""
    return tmp_path_factory.mktemp("bench-store")


@pytest.fixture(scope="session")
def digits_zoo():
    """A real zoo: 10 scikit-learn models trained on packaged digits; OOD is the held-out half with Gaussian noise.

    Returns ``(id_probs, id_labels, ood_probs, ood_labels, names)``.
    """
    pytest.importorskip("sklearn", reason="the digits zoo needs the bench extra, which make test installs")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.tree import DecisionTreeClassifier

    from ontheline.shifts import corrupt

    images, labels = load_digits(return_X_y=True)
    images = images.reshape(-1, 8, 8) / 16.0
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:600], order[600:]
    x_test = images[test]
    ood = corrupt(x_test, "gaussian_noise", severity=3)
    models = {f"logreg-C{c:g}": LogisticRegression(C=c, max_iter=500) for c in (0.001, 0.003, 0.01, 0.03, 0.1, 1.0)}
    models |= {f"tree-depth{d}": DecisionTreeClassifier(max_depth=d, random_state=0) for d in (4, 6, 10)}
    models["naive-bayes"] = GaussianNB()
    id_probs, ood_probs = [], []
    for model in models.values():
        model.fit(images[train].reshape(len(train), -1), labels[train])
        id_probs.append(model.predict_proba(x_test.reshape(len(test), -1)))
        ood_probs.append(model.predict_proba(ood.reshape(len(test), -1)))
    return np.stack(id_probs), labels[test], np.stack(ood_probs), labels[test], list(models)


@pytest.fixture(scope="session")
def generated_benchmark():
    """A benchmark result scored on a generated zoo (8 linear models, no training): the tiny
    configuration's shifts, each a scaling shift of its own strength. The report's tests need
    scores, not trained networks."""
    from ontheline.bench.calibrate import with_auto
    from ontheline.bench.config import CONFIGS
    from ontheline.bench.predict import ZooPredictions
    from ontheline.bench.score import score
    from ontheline.bench.suite import BenchmarkResult
    from ontheline.synthetic import make_line_zoo

    config = CONFIGS["tiny"]
    shifts = config.shifts("digits")
    id_probs, id_labels, _, _ = make_line_zoo(n_models=8, n_samples=400, random_state=0)
    probs, labels = {"id_val": id_probs, "id_test": id_probs}, {"id_val": id_labels, "id_test": id_labels}
    for k, spec in enumerate(shifts):  # the same seed: the same models, shifted more or less
        _, _, probs[spec.name], labels[spec.name] = make_line_zoo(
            n_models=8, n_samples=400, contrast=0.9 - 0.1 * k, noise_scale=1.0 + 0.05 * k, random_state=0
        )
    models = tuple(f"model-{i}" for i in range(8))
    neural = np.array([True] * 5 + [False] * 3)
    preds = ZooPredictions("digits", models, neural, probs, labels)
    scores, calibration = with_auto(score(preds, shifts))
    return BenchmarkResult(config, tuple(scores), {"digits": 8}, True, 0.0, 0.95, calibration=calibration)
