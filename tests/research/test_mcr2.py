"""MCR², V-MCR² and ReduNet against slow references, finite differences and the papers' identities."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")

from ontheline.research.mcr2 import (  # noqa: E402
    ClassStatistics,
    ReduNet,
    VariationalMCR2,
    class_moments,
    compression_rate,
    dictionary_penalty,
    optimal_codes,
    rate_reduction,
    textbook_rate_reduction,
    variational_compression,
    variational_objective,
)


def _features(m=60, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(m, d, generator=g, dtype=torch.float64), dim=1)
    return z, torch.arange(m) % k


def _slow_delta_r(z, labels, k, eps2):
    """The textbook formulas, class by class, with numpy's slogdet."""
    z, labels = z.numpy(), labels.numpy()
    m, d = z.shape
    rate = 0.5 * np.linalg.slogdet(np.eye(d) + d / (m * eps2) * z.T @ z)[1]
    compression = 0.0
    for j in range(k):
        zj = z[labels == j]
        compression += len(zj) / (2 * m) * np.linalg.slogdet(np.eye(d) + d / (len(zj) * eps2) * zj.T @ zj)[1]
    return rate - compression


@pytest.mark.parametrize("d", [6, 30])  # classes of 20 rows: d x d log-dets, then Gram-matrix (Sylvester) ones
def test_rate_reduction_equals_the_class_by_class_reference(d):
    for seed in range(5):
        z, labels = _features(d=d, seed=seed)
        assert float(rate_reduction(z, labels, 3, eps2=0.5)) == pytest.approx(
            _slow_delta_r(z, labels, 3, 0.5), abs=1e-10
        )
    uneven = torch.tensor([0] * 25 + [1] * 10 + [2] * 25)  # padded blocks of 25 rows; class 1 fills 10
    assert float(rate_reduction(z, uneven, 3, eps2=0.5)) == pytest.approx(_slow_delta_r(z, uneven, 3, 0.5), abs=1e-10)


@pytest.mark.parametrize("d", [6, 30])  # classes of 20 rows or fewer: the optimised form's d x d, then Gram, path
def test_the_textbook_rate_reduction_equals_the_optimised_one_and_its_gradient_too(d):
    for seed in range(2):
        z, labels = _features(d=d, seed=seed)
        uneven = torch.tensor([0] * 25 + [1] * 10 + [2] * 25)
        for classes in (labels, uneven):
            textbook_z, optimised_z = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
            textbook = textbook_rate_reduction(textbook_z, classes, 3, eps2=0.5)
            optimised = rate_reduction(optimised_z, classes, 3, eps2=0.5)
            assert textbook.item() == pytest.approx(optimised.item(), abs=1e-8)
            textbook.backward()
            optimised.backward()
            torch.testing.assert_close(textbook_z.grad, optimised_z.grad, atol=1e-8, rtol=0)
    empty_class = torch.tensor([0] * 30 + [2] * 30)  # class 1 has no rows: it adds nothing to either
    assert float(textbook_rate_reduction(z, empty_class, 3)) == pytest.approx(
        float(rate_reduction(z, empty_class, 3)), abs=1e-8
    )


def test_the_variational_bound_holds_for_any_basis_and_is_tight_in_the_eigenbasis():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.normal(size=(5, 5))
        s = a @ a.T
        exact = np.linalg.slogdet(np.eye(5) + s)[1]
        u = np.linalg.qr(rng.normal(size=(5, 5)))[0]
        assert np.log1p(np.diag(u.T @ s @ u)).sum() >= exact - 1e-12
        eigvecs = np.linalg.eigh(s)[1]
        assert np.log1p(np.diag(eigvecs.T @ s @ eigvecs)).sum() == pytest.approx(exact, abs=1e-8)


def test_after_latching_with_a_full_dictionary_the_compression_term_is_exact():
    z, labels = _features(d=6)
    vm = VariationalMCR2(dim=6, n_classes=3, atoms=6, eps2=0.5)
    vm.latch(z, labels)
    stats = vm.statistics(z, labels)
    with torch.no_grad():
        assert float(vm.compression(stats.weights)) == pytest.approx(
            float(compression_rate(z, labels, 3, 0.5)), abs=1e-8
        )
        assert float(vm.penalty(stats)) == pytest.approx(0.0, abs=1e-10)  # ||S||^2 is about 3e3: cancellation only
        assert float(vm.objective(z, labels)) == pytest.approx(float(rate_reduction(z, labels, 3, 0.5)), abs=1e-8)


def test_gradients_match_finite_differences():
    z, labels = _features(m=12, d=4, k=2)
    z.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: rate_reduction(x, labels, 2, 0.5), (z,))
    wide, wide_labels = _features(m=8, d=10, k=2)  # 4 rows per class < 10 dimensions: Gram matrices
    assert torch.autograd.gradcheck(lambda x: rate_reduction(x, wide_labels, 2, 0.5), (wide.requires_grad_(True),))
    vm = VariationalMCR2(dim=4, n_classes=2, atoms=2, eps2=0.5, mu=0.3)
    gamma, codes = vm.gamma.detach().clone().requires_grad_(True), (vm.codes.detach() + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, g, a: variational_objective(x, labels, g, a, 2, 0.5, 0.3), (z, gamma, codes)
    )
    vm = VariationalMCR2(dim=10, n_classes=2, atoms=3, eps2=0.5, mu=0.3)  # classes of 4 rows: worked on by rows
    gamma, codes = vm.gamma.detach().clone().requires_grad_(True), (vm.codes.detach() + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, g, a: variational_objective(x, wide_labels, g, a, 2, 0.5, 0.3), (wide, gamma, codes)
    )


def test_class_moments_equal_a_loop_over_classes_with_an_empty_class():
    z, _ = _features(m=17, d=5)
    labels = torch.tensor([3, 0, 3, 1, 0, 0, 3, 1, 3, 3, 0, 1, 1, 0, 3, 0, 3])  # class 2 has no samples
    moments, counts = class_moments(z, labels, 4)
    for j in range(4):
        zj = z[labels == j]
        torch.testing.assert_close(moments[j], zj.T @ zj)
        assert counts[j] == len(zj)


@pytest.mark.parametrize("method", ["ritz", "gradient"])
def test_the_dictionary_update_keeps_unit_columns_and_non_negative_codes(method):
    z, labels = _features()
    vm = VariationalMCR2(dim=6, n_classes=3, atoms=2)
    for _ in range(20):
        vm.update_dictionary(z, labels, steps=2, method=method)
    torch.testing.assert_close(vm.gamma.norm(dim=1), torch.ones(3, 2, dtype=torch.float64))
    assert (vm.codes >= 0).all()


def test_optimal_codes_match_a_grid_search():
    rayleigh = torch.tensor([0.0, 0.05, 0.3, 0.6, 1.0, 2.5, 7.0, 40.0], dtype=torch.float64)
    grid = torch.linspace(0, 45, 450_001, dtype=torch.float64)
    for mu in (0.05, 0.3, 1.0, 10.0):
        codes = optimal_codes(rayleigh, mu)
        for r, a in zip(rayleigh, codes):
            scores = -0.5 * torch.log1p(grid) - mu / 2 * (r - grid) ** 2
            best = grid[scores.argmax()]
            assert float(a) == pytest.approx(float(best), abs=2e-4), (mu, float(r))


def test_top_eigenpairs_from_the_gram_matrices_match_the_full_eigendecomposition():
    z, _ = _features(m=14, d=12, seed=5)
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 2)  # classes smaller than d; class 2 has rank 2 < 4 atoms
    stats = ClassStatistics.of(z, labels, 3, eps2=0.5)
    assert stats.moments is None  # the row (Gram) path
    values, vectors = stats.top_eigenpairs(4)
    full_values, full_vectors = torch.linalg.eigh(stats.scaled_moments())
    torch.testing.assert_close(values, full_values[:, -4:].flip(-1).clamp(min=0), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(vectors.mT @ vectors, torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
    for j, rank in enumerate((4, 4, 2)):  # the same eigen-subspace where the eigenvalues are non-zero
        ours, reference = vectors[j, :, :rank], full_vectors[j, :, -rank:]
        torch.testing.assert_close(ours @ ours.T, reference @ reference.T, atol=1e-9, rtol=0)


def _dictionary_objective(vm, stats):
    return float(
        -variational_compression(vm.codes, stats.weights) - dictionary_penalty(stats, vm.gamma, vm.codes, vm.mu)
    )


@pytest.mark.parametrize("d", [5, 40])  # classes of 20 rows: the d x d moments, then the Gram matrices
def test_the_expanded_penalty_equals_the_frobenius_norm_of_the_difference(d):
    z, labels = _features(m=60, d=d, k=3, seed=2)
    g = torch.Generator().manual_seed(3)
    gamma = torch.nn.functional.normalize(torch.randn(3, d, 4, generator=g, dtype=torch.float64), dim=1)
    codes = torch.rand(3, 4, generator=g, dtype=torch.float64) * 10
    stats = ClassStatistics.of(z, labels, 3, eps2=0.5)
    expected = 0.0
    for j in range(3):
        zj = z[labels == j]
        scaled = d / (len(zj) * 0.5) * zj.T @ zj
        approx = gamma[j] @ torch.diag(codes[j]) @ gamma[j].T
        expected += len(zj) / 60 * 0.7 / 2 * float((scaled - approx).pow(2).sum())
    assert float(dictionary_penalty(stats, gamma, codes, 0.7)) == pytest.approx(expected, rel=1e-10)
    torch.testing.assert_close(stats.apply(gamma), stats.scaled_moments() @ gamma)


def test_ritz_updates_never_decrease_the_dictionary_objective_and_reach_the_latched_optimum():
    z, labels = _features(m=90, d=8, k=3, seed=1)
    vm = VariationalMCR2(dim=8, n_classes=3, atoms=3, mu=2.0, seed=4)
    stats = vm.statistics(z, labels)
    history = [_dictionary_objective(vm, stats)]
    for _ in range(60):
        vm.update_dictionary(z, labels)
        history.append(_dictionary_objective(vm, stats))
    assert all(b >= a - 1e-10 for a, b in zip(history, history[1:]))
    # the global optimum for fixed features: the top eigenvectors, each with its optimal code
    best = VariationalMCR2(dim=8, n_classes=3, atoms=3, mu=2.0)
    best.latch(z, labels)
    best.codes.copy_(optimal_codes(best.codes, best.mu))
    assert history[-1] == pytest.approx(_dictionary_objective(best, stats), abs=1e-8)


def test_a_training_step_returns_the_objective_after_updating_the_dictionary():
    z, labels = _features()
    z.requires_grad_(True)
    vm = VariationalMCR2(dim=6, n_classes=3, atoms=2, mu=3.0)
    value = vm.step(z, labels, latch=True, dictionary_steps=2)
    assert float(value.detach()) == pytest.approx(float(vm.objective(z, labels).detach()), abs=1e-12)
    value.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="method must be one of"):
        vm.step(z, labels, method="newton")
    with pytest.raises(ValueError, match=r"z is torch.float32 but the dictionary is torch.float64"):
        vm.step(z.detach().float(), labels)
    single = vm.to(torch.float32)  # the dictionary follows the module's dtype
    assert torch.isfinite(single.step(z.detach().float(), labels)).all()


def _digits_tasks():
    sklearn = pytest.importorskip("sklearn.datasets", reason="the bench extra, which make test installs")
    x, y = sklearn.load_digits(return_X_y=True)
    x = torch.nn.functional.normalize(torch.tensor(x - x.mean(axis=1, keepdims=True)), dim=1)
    return x[:600], torch.tensor(y[:600]), x[600:900], torch.tensor(y[600:900])


def test_class_moments_are_recovered_from_the_stored_operators():
    x, y, _, _ = _digits_tasks()
    net = ReduNet(n_layers=2).fit(x, y, 10)
    C, counts = net.layers[0].C, net.counts
    alpha_j = x.shape[1] / (counts * net.eps2)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    recovered = (torch.linalg.inv(C / alpha_j[:, None, None]) - eye) / alpha_j[:, None, None]
    moments, _ = class_moments(x.double(), y, 10)
    torch.testing.assert_close(recovered, moments, rtol=1e-8, atol=1e-8)


def test_a_redunet_built_task_by_task_equals_the_one_built_jointly():
    x, y, x_test, _ = _digits_tasks()
    joint = ReduNet(n_layers=8).fit(x, y, 10)
    grown = ReduNet(n_layers=8)
    for task in range(5):  # classes 2t and 2t+1, relabelled 0 and 1 within the task
        seen = (y == 2 * task) | (y == 2 * task + 1)
        grown.add_classes(x[seen], y[seen] - 2 * task, 2)
    for a, b in zip(joint.layers, grown.layers):
        torch.testing.assert_close(a.E, b.E, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(a.C, b.C, rtol=1e-6, atol=1e-9)
    assert torch.equal(joint.predict(x_test), grown.predict(x_test))


def test_the_statistics_recursion_equals_propagating_the_training_samples():
    x, y, _, _ = _digits_tasks()
    net = ReduNet(n_layers=6).fit(x, y, 10)
    z = net.propagate_training(x, y)
    moments, _ = class_moments(z, y, 10)
    torch.testing.assert_close(moments, net.final_moments, rtol=1e-8, atol=1e-8)


# --- the reproductions, in miniature --------------------------------------------------------


def _assert_spread(value, n_seeds):
    assert set(value) == {"mean", "std", "min", "max", "per_seed"}
    assert len(value["per_seed"]) == n_seeds
    assert value["mean"] == pytest.approx(np.mean(value["per_seed"]))
    assert value["std"] == pytest.approx(np.std(value["per_seed"], ddof=1) if n_seeds > 1 else 0.0)
    assert value["min"] == min(value["per_seed"]) <= value["mean"] <= value["max"] == max(value["per_seed"])


def _vmcr2_miniature(**options):
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.mcr2 import repro_vmcr2 as vmcr2

    small = dict(steps=3, timing_steps=2, classes=(10, 20), timing=((8, 10), (16, 10)), sweep_dims=(8, 16),
                 sweep_steps=2)  # fmt: skip
    return vmcr2, vmcr2.run(**{**small, **options})


def test_vmcr2_miniature_reports_the_documented_keys(tmp_path):
    vmcr2, result = _vmcr2_miniature(seeds=(0,))
    assert result["classes"] == [10, 20] and result["seeds"] == [0]
    for method in ("mcr2", "vmcr2"):
        assert len(result["step_seconds"][method]) == 2 and all(s["mean"] > 0 for s in result["step_seconds"][method])
        assert result["delta_r"][method]["mean"] > 0 and 0 <= result["accuracy"][method]["mean"] <= 1
    assert set(result["digits"]) == {"mcr2", *vmcr2.VARIANTS}
    settings = [(t["dim"], t["per_class"]) for t in result["timing"]]
    assert settings == [(8, 10), (16, 10)] and result["timing"][0]["step_seconds"] == result["step_seconds"]
    assert [(g["dim"], g["per_class"]) for g in result["goals"]["speedup_at_100_classes_by_setting"]] == settings
    sweep = result["dimension_sweep"]
    assert [row["dim"] for row in sweep["rows"]] == [8, 16] and sweep["classes"] == 100
    for row in sweep["rows"]:
        assert set(row["step_seconds"]) == {"mcr2_textbook", "mcr2", "vmcr2"}
        assert row["speedup_vs_textbook"]["mean"] > 0 and row["speedup_vs_optimised"]["mean"] > 0
    for key in ("first_dim_2x_vs_textbook", "first_dim_2x_vs_optimised"):
        assert sweep[key] is None or sweep[key] in (8, 16)
        assert result["goals"][key] == sweep[key]
    printed = vmcr2.text(result)
    assert "speed-up over the optimised MCR2 at 100 classes" in printed and "textbook" in printed
    assert "Quick run" not in printed
    pytest.importorskip("matplotlib", reason="the plot extra, which make test installs")
    paths = vmcr2.figures(result, tmp_path)
    assert [p.name for p in paths] == ["vmcr2-step-time.png", "vmcr2-step-time.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_the_first_dimension_where_vmcr2_is_twice_as_fast_is_the_smallest_whose_mean_speed_up_reaches_2():
    from ontheline.research.mcr2.repro_vmcr2 import _first_dim_at_least

    rows = [{"dim": d, "speedup": {"mean": m}} for d, m in ((32, 1.2), (128, 2.0), (512, 3.5))]
    assert _first_dim_at_least(rows, "speedup", 2.0) == 128
    assert _first_dim_at_least(rows, "speedup", 4.0) is None


def test_vmcr2_over_seeds_reports_the_mean_std_min_and_max_of_every_number_and_says_when_it_is_quick():
    vmcr2, result = _vmcr2_miniature(quick=True, seeds=(0, 1))
    assert result["seeds"] == [0, 1] and result["quick"] is True
    for variant in result["digits"].values():
        for value in variant.values():
            _assert_spread(value, 2)
    for setting in result["timing"]:
        for method in ("mcr2", "vmcr2"):
            for value in (*setting["step_seconds"][method], *setting["delta_r"][method]):
                _assert_spread(value, 2)
        for value in setting["speedup"]:
            _assert_spread(value, 2)
    assert result["dimension_sweep"]["seeds"] == [0]  # quick: the sweep on the first seed only
    for row in result["dimension_sweep"]["rows"]:
        for value in (*row["step_seconds"].values(), row["speedup_vs_textbook"], row["speedup_vs_optimised"]):
            _assert_spread(value, 1)
    for key in ("delta_r_share", "accuracy_gap_pp", "speedup_at_100_classes"):
        _assert_spread(result["goals"][key], 2)
    per_seed = result["digits"]["mcr2"]["accuracy"]["per_seed"]
    assert per_seed[0] != per_seed[1]  # the seeds draw different splits and initialisations
    printed = vmcr2.text(result)
    assert "Quick run" in printed and "over seeds [0, 1]" in printed and "±" in printed


def test_incremental_miniature_grows_exactly_the_joint_network_and_the_mlp_forgets():
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.mcr2 import repro_incremental as incremental

    result = incremental.run(seeds=(0, 1), layers=3, mlp_epochs=5)
    curves = result["accuracy_after_each_task"]
    assert curves["incremental"] == curves["joint"]  # built from stored statistics: the same network, seed by seed
    final = result["final_accuracy"]
    assert set(final) == {"joint", "incremental", "mlp_sequential", "mlp_replay", "mlp_joint"}
    for value in final.values():
        _assert_spread(value, 2)
    for values in curves.values():
        assert len(values) == 5
        for value in values:
            _assert_spread(value, 2)
    for value in result["goals"].values():
        _assert_spread(value, 2)
    assert set(result["goals"]) == {
        "incremental_minus_joint_pp", "incremental_minus_mlp_pp", "incremental_minus_mlp_replay_pp",
        "mlp_joint_minus_incremental_pp",
    }  # fmt: skip
    # finetuning task by task forgets the old classes; replaying exemplars and joint training do not
    assert final["mlp_sequential"]["max"] < 0.5 < final["incremental"]["min"]
    assert final["mlp_replay"]["min"] > 0.5 and final["mlp_joint"]["min"] > 0.5
    printed = incremental.text(result)
    assert "mlp_replay" in printed and "over seeds [0, 1]" in printed and "Memory after the last task" in printed


def test_the_replay_buffer_holds_as_many_floats_as_the_grown_redunets_statistics_to_within_one_image():
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.mcr2 import repro_incremental as incremental

    budget = incremental.memory_budget(64)
    assert budget == {"redunet_statistics": 64 * 64 + 1, "floats_per_exemplar": 64, "exemplars_per_class": 64,
                      "replay_exemplars": 64 * 64}  # fmt: skip
    result = incremental.run(seeds=(0,), layers=2, mlp_epochs=1)
    memory = result["memory_floats"]["after_each_task"]
    for t, (redunet, replay) in enumerate(zip(memory["redunet_statistics"], memory["replay_exemplars"])):
        classes = 2 * (t + 1)  # measured on the stored tensors: the moments and counts, the exemplar images
        assert redunet == classes * (64 * 64 + 1) and replay == classes * 64 * 64
        assert replay <= redunet < replay + 64  # not one more image would fit
