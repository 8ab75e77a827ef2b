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
