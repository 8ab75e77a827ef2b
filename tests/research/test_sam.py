"""SAM, 1-SAM, L-SAM, J-SAM and the regulariser against autograd, finite differences and the paper's identities."""

import copy
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra, which make test installs")

from ontheline.research.sam import (  # noqa: E402
    SAM,
    head_penalty,
    logit_weights,
    per_example_gradients,
    perturbations,
    sam_gradient,
)


def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).to(dtype)


def _batch(seed=1, n=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def _closure(optimiser, model, x, y):
    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def _plain_gradient(model, x, y):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("variant", ["1-sam", "l-sam", "j-sam"])
def test_rho_zero_gives_the_plain_gradient(variant):
    model, (x, y) = _mlp(), _batch()
    expected = _plain_gradient(model, x, y)
    for k, g in sam_gradient(model, x, y, rho=0.0, variant=variant).items():
        torch.testing.assert_close(g, expected[k], rtol=1e-12, atol=1e-14)


def test_batch_sam_with_rho_zero_steps_exactly_like_its_base_optimiser():
    model, (x, y) = _mlp(), _batch()
    twin = copy.deepcopy(model)
    sam = SAM(model.parameters(), torch.optim.SGD, rho=0.0, lr=0.1, momentum=0.9)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        sam.step(_closure(sam, model, x, y))
        sgd.zero_grad()
        torch.nn.functional.cross_entropy(twin(x), y).backward()
        sgd.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_batch_sam_uses_the_gradient_at_the_perturbed_point():
    model, (x, y) = _mlp(), _batch()
    rho, lr = 0.1, 0.5
    g = _plain_gradient(model, x, y)
    norm = torch.sqrt(sum(v.pow(2).sum() for v in g.values()))
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in shifted.named_parameters():
            p.add_(rho * g[k] / norm)
    g_shifted = _plain_gradient(shifted, x, y)
    sam = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=lr)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    sam.step(_closure(sam, model, x, y))
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[k] - lr * g_shifted[k])


def test_every_example_is_perturbed_by_exactly_rho():
    model, (x, y) = _mlp(), _batch(n=9)
    eps = perturbations(per_example_gradients(model, x, y), rho=0.05)
    norms = torch.sqrt(sum(e.flatten(1).pow(2).sum(1) for e in eps.values()))
    torch.testing.assert_close(norms, torch.full((9,), 0.05, dtype=torch.float64))


def test_one_sam_equals_the_mean_gradient_at_each_examples_own_perturbation():
    model, (x, y) = _mlp(), _batch(n=4)
    rho = 0.2
    expected = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for i in range(4):  # the slow, obvious way: one example, one perturbed copy, autograd
        g = _plain_gradient(model, x[i : i + 1], y[i : i + 1])
        norm = torch.sqrt(sum(v.pow(2).sum() for v in g.values()))
        copy_i = copy.deepcopy(model)
        with torch.no_grad():
            for k, p in copy_i.named_parameters():
                p.add_(rho * g[k] / norm)
        for k, v in _plain_gradient(copy_i, x[i : i + 1], y[i : i + 1]).items():
            expected[k] += v / 4
    for k, g in sam_gradient(model, x, y, rho=rho, variant="1-sam").items():
        torch.testing.assert_close(g, expected[k])


def test_on_a_linear_model_j_sam_is_sgd_and_l_sam_is_one_sam():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    x, y = _batch()
    plain = _plain_gradient(model, x, y)
    j = sam_gradient(model, x, y, rho=0.3, variant="j-sam")
    l_sam, one = (
        sam_gradient(model, x, y, rho=0.3, variant="l-sam"),
        sam_gradient(model, x, y, rho=0.3, variant="1-sam"),
    )
    for k in plain:
        torch.testing.assert_close(j[k], plain[k])  # the Jacobian of a linear model does not depend on w
        torch.testing.assert_close(l_sam[k], one[k])
    assert any(not torch.allclose(one[k], plain[k]) for k in plain)  # and SAM itself does change the step


def test_on_a_two_layer_linear_net_j_sam_is_sgd_plus_the_derived_penalty():
    """J-SAM = SGD + grad of (rho / 2N) (||x||^2 ||V^T g||^2 + ||g||^2 ||W x||^2), g = dl/df and N held at w."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6, bias=False), torch.nn.Linear(6, 3, bias=False)).double()
    x, y = torch.randn(1, 4, dtype=torch.float64), torch.tensor([1])
    rho = 0.07
    W, V = net[0].weight.detach(), net[1].weight.detach()
    z = (V @ W @ x[0]).requires_grad_(True)
    g = torch.autograd.grad(torch.nn.functional.cross_entropy(z[None], y), z)[0]
    n = torch.sqrt(g.pow(2).sum() * (W @ x[0]).pow(2).sum() + (V.T @ g).pow(2).sum() * x[0].pow(2).sum())

    def penalty(w, v):
        return rho / (2 * n) * (x[0].pow(2).sum() * (v.T @ g).pow(2).sum() + g.pow(2).sum() * (w @ x[0]).pow(2).sum())

    def numerical(f, a, h=1e-6):  # central differences, entry by entry
        out = torch.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            up, down = a.clone(), a.clone()
            up[idx] += h
            down[idx] -= h
            out[idx] = (f(up) - f(down)) / (2 * h)
        return out

    plain = _plain_gradient(net, x, y)
    expected = {
        "0.weight": plain["0.weight"] + numerical(lambda w: penalty(w, V), W),
        "1.weight": plain["1.weight"] + numerical(lambda v: penalty(W, v), V),
    }
    j = sam_gradient(net, x, y, rho=rho, variant="j-sam")
    for k in expected:
        assert float((j[k] - expected[k]).norm() / expected[k].norm()) < 1e-4


def test_the_head_penalty_is_the_documented_sum():
    head = torch.nn.Linear(4, 3)
    features = torch.randn(10, 4)
    value = head_penalty(features, head, lambda_w=0.1, lambda_f=0.2)
    expected = 0.1 * head.weight.pow(2).sum() + 0.2 * features.pow(2).sum(1).mean()
    torch.testing.assert_close(value, expected)


def test_sams_logit_weight_grows_with_the_margin_in_logistic_regression():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2, bias=False).double()
    angles = torch.linspace(0, 2 * np.pi, 41, dtype=torch.float64)[:-1]  # distinct points
    x = torch.stack([torch.cos(angles), torch.sin(angles)], 1)  # unit norm: the ratio depends on the margin only
    y = torch.zeros(40, dtype=torch.long)
    weights = logit_weights(model, x, y, rho=0.3)
    with torch.no_grad():
        z = model(x)
    margin = z[:, 0] - z[:, 1]
    ratio = weights[:, 1] / weights[:, 0]
    order = torch.argsort(margin)
    assert (torch.diff(ratio[order]) > 0).all()


# --- the reproduction, in miniature ---------------------------------------------------------


def test_sam_in_worker_processes_gives_the_same_numbers():
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.sam import repro as sam

    small = {"settings": (("digits", 0.6),), "seeds": (0,), "epochs": 1, "max_train": 96}
    assert sam.run(**small, jobs=2)["settings"] == sam.run(**small)["settings"]


def test_sam_miniature_reports_every_method_and_the_linear_demo(tmp_path):
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.sam import repro as sam

    result = sam.run(settings=(("digits", 0.6),), seeds=(0,), epochs=2, max_train=128)
    assert set(result["methods"]) == {"sgd", "sam", "1-sam", "l-sam", "j-sam", "sgd-reg"}
    for method, v in result["methods"].items():
        assert set(v) == {"final_acc", "selected_acc", "selected_epoch"}, method  # no best test accuracy
        assert 0 <= v["final_acc"] <= 1 and 0 <= v["selected_acc"] <= 1 and 1 <= v["selected_epoch"] <= 2, method
    assert result["selected_on"] == "validation" and result["setup"]["validation_share"] == 0.2
    assert "1-sam_selected_minus_sgd_pp" in result["goals"] and not any("best" in goal for goal in result["goals"])
    curves = result["settings"]["digits-60"]["methods"]["sgd"]
    lengths = {len(curves[key]) for key in ("test_acc", "val_acc", "clean_fit", "noisy_fit")}
    assert lengths == {2}
    printed = sam.text(result)
    assert not re.search(r"\bbest (acc|epoch)\b", printed) and "selected acc" in printed
    demo = result["linear_demo"]
    assert demo["clean_over_noisy_sam"] > demo["clean_over_noisy_sgd"]  # SAM up-weights the clean examples
    ratios = demo["ratio_by_margin_decile"]
    assert all(b > a for a, b in zip(ratios, ratios[1:]))  # and its weight grows with the margin
    paths = sam.figures(result, tmp_path)
    assert sorted(p.name for p in paths) == ["sam-curves.png", "sam-curves.svg"]


def test_symmetric_noise_flips_exactly_the_rate_to_other_classes_and_is_seeded():
    import numpy as np

    from ontheline.research.sam.repro import noisy_labels

    labels = np.arange(1000) % 10
    noisy, mask = noisy_labels(labels, 0.6, seed=3)
    assert mask.sum() == 600 and (noisy[mask] != labels[mask]).all() and (noisy[~mask] == labels[~mask]).all()
    again, mask_again = noisy_labels(labels, 0.6, seed=3)
    assert (again == noisy).all() and (mask_again == mask).all()


def test_the_validation_split_is_a_seeded_fifth_of_the_training_set_disjoint_from_the_rest():
    from ontheline.research.sam.repro import validation_split

    fit, held_out = validation_split(1437, seed=2)
    assert len(held_out) == 287 and len(fit) == 1150 and not set(fit) & set(held_out)
    assert sorted([*fit, *held_out]) == list(range(1437))
    again_fit, again_held_out = validation_split(1437, seed=2)
    assert (again_fit == fit).all() and (again_held_out == held_out).all()
    assert not (validation_split(1437, seed=3)[1] == held_out).all()


def test_the_reported_epoch_is_chosen_on_noisy_validation_labels_so_poisoned_test_labels_cannot_move_it(monkeypatch):
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.sam import repro as sam

    small = {"settings": (("digits", 0.4),), "seeds": (0,), "epochs": 6, "max_train": 400}
    clean = sam.run(**small)["settings"]["digits-40"]["methods"]
    assert len({tuple(v["selected_epochs"]) for v in clean.values()}) > 1  # a real choice, not always epoch 1
    data = sam._data

    def poisoned_test_labels(dataset, seed):
        x_train, y_train, x_test, y_test = data(dataset, seed)
        return x_train, y_train, x_test, (y_test + 1) % 10  # every test label wrong

    monkeypatch.setattr(sam, "_data", poisoned_test_labels)
    poisoned = sam.run(**small)["settings"]["digits-40"]["methods"]
    for method, v in poisoned.items():
        assert v["selected_epochs"] == clean[method]["selected_epochs"], method
        assert v["val_acc"] == clean[method]["val_acc"], method
        assert v["test_acc"] != clean[method]["test_acc"], method  # the test numbers did change
        epoch = v["selected_epochs"][0]  # one seed: the best epoch of the validation curve, the earliest of ties
        assert epoch == 1 + int(np.argmax(v["val_acc"])), method
        assert v["selected_acc"] == v["test_acc"][epoch - 1], method
