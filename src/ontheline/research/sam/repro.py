"""SAM is robust to label noise, and its Jacobian half does the work (Baek, Kolter, Raghunathan; ICLR 2024).

An MLP (64-128-128-10 on digits, 784-256-256-10 on MNIST-5k) is trained with SGD (momentum
0.9, learning rate 0.05, batches of 64, 30 epochs) on labels with symmetric noise (each noisy
label is replaced by a different class drawn uniformly; the noise mask is a fixed function of
the seed, and its checksum is reported). Six methods: plain SGD, batch SAM, per-example
1-SAM, its logit half L-SAM and Jacobian half J-SAM (all rho = 0.05), and SGD with the explicit
regulariser (lambda_w = lambda_f = 0.01 on the last layer's weights and the penultimate
features). A seeded fifth of the noisy training set is held out, with its noisy labels, as the
validation split a practitioner would have; the models train on the rest. Reported per method
(mean over seeds): the final test accuracy, and the test accuracy at the epoch with the best
validation accuracy (measured against the noisy labels; the earliest of ties), never the best
test accuracy over epochs; and per epoch the test and validation accuracy and the fraction of
clean and of noisy training examples fit. Plus the linear demo:
logistic regression on two Gaussian blobs with 30% flipped labels, where SAM's per-example
weight ``sigma(-m + rho||x||)`` divided by SGD's ``sigma(-m)`` grows with the margin ``m``, so
SAM up-weights the (mostly clean) examples that are already fit.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress

METHODS = ("sgd", "sam", "1-sam", "l-sam", "j-sam", "sgd-reg")
PER_EXAMPLE = ("1-sam", "l-sam", "j-sam")  # a gradient per example: the slow ones
RHO = 0.05
LAMBDA = 1e-2
EPOCHS, BATCH, LR = 30, 64, 0.05
VALIDATION_SHARE = 0.2  # of the noisy training set, held out with its noisy labels to choose the epoch


def run(
    quick: bool = False, *, settings: tuple[tuple[str, float], ...] | None = None, seeds: tuple[int, ...] | None = None,
    epochs: int = EPOCHS, max_train: int | None = None, jobs: int = 1, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON object of ``ontheline repro sam``.

    ``methods`` holds the headline setting (digits, 60% noise), mean over seeds; ``settings``
    every setting run. ``quick``: digits at 40% and 60% noise, two seeds; otherwise also
    MNIST-5k, three seeds. ``jobs`` worker processes train the runs in parallel, one thread
    each; every run seeds its own generators, so the numbers do not depend on ``jobs``.
    """
    with extra("torch"):
        import torch

    torch.set_num_threads(1)
    settings = settings or ((("digits", 0.6), ("digits", 0.4)) if quick else
                            (("digits", 0.6), ("digits", 0.4), ("mnist", 0.6), ("mnist", 0.4)))  # fmt: skip
    seeds = seeds or ((0, 1) if quick else (0, 1, 2))
    tasks = [(dataset, noise, seed, method, epochs, max_train)
             for dataset, noise in settings for method in METHODS for seed in seeds]  # fmt: skip
    trained = dict(zip(tasks, _run_tasks(tasks, jobs, progress)))
    results: dict[str, dict[str, Any]] = {}
    for dataset, noise in settings:
        runs = {m: [trained[(dataset, noise, seed, m, epochs, max_train)] for seed in seeds] for m in METHODS}
        results[f"{dataset}-{int(100 * noise)}"] = {
            "dataset": dataset,
            "noise": noise,
            "noise_mask_sha256": [r["noise_mask_sha256"] for r in runs["sgd"]],
            "methods": {m: _summarise(rs) for m, rs in runs.items()},
        }
    headline = next(iter(results.values()))
    out: dict[str, Any] = {
        "methods": {
            m: {"final_acc": v["final_acc"], "selected_acc": v["selected_acc"], "selected_epoch": v["selected_epoch"]}
            for m, v in headline["methods"].items()
        },
        "selected_on": "validation",
        "selection": f"the epoch with the best accuracy on a seeded {VALIDATION_SHARE:.0%} of the training set, "
        "held out with its noisy labels (the earliest of ties)",
        "headline": f"{headline['dataset']} at {int(100 * headline['noise'])}% noise",
        "settings": results,
        "seeds": list(seeds),
        "setup": {
            "epochs": epochs,
            "batch": BATCH,
            "lr": LR,
            "momentum": 0.9,
            "rho": RHO,
            "lambda": LAMBDA,
            "validation_share": VALIDATION_SHARE,
        },
        "linear_demo": linear_demo(),
    }
    m = out["methods"]
    out["goals"] = {
        "1-sam_final_minus_sgd_pp": 100 * (m["1-sam"]["final_acc"] - m["sgd"]["final_acc"]),
        "j-sam_final_minus_sgd_pp": 100 * (m["j-sam"]["final_acc"] - m["sgd"]["final_acc"]),
        "l-sam_final_minus_sgd_pp": 100 * (m["l-sam"]["final_acc"] - m["sgd"]["final_acc"]),
        "sgd-reg_final_minus_sgd_pp": 100 * (m["sgd-reg"]["final_acc"] - m["sgd"]["final_acc"]),
        "1-sam_selected_minus_sgd_pp": 100 * (m["1-sam"]["selected_acc"] - m["sgd"]["selected_acc"]),
    }
    return out


def _run_tasks(tasks: list[tuple[Any, ...]], jobs: int, progress: Progress | None) -> list[dict[str, Any]]:
    """``_train(*task)`` for every task, in order; with ``jobs > 1`` in worker processes, the slowest tasks first."""

    def report(done: int, task: tuple[Any, ...]) -> None:
        if progress:
            dataset, noise, seed, method = task[:4]
            progress(f"{dataset} at {int(100 * noise)}% noise: {method}, seed {seed}", done, len(tasks))

    if jobs <= 1:
        out = []
        for i, task in enumerate(tasks):
            report(i, task)
            out.append(_train(*task))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        slowest_first = sorted(tasks, key=lambda t: (t[0] == "mnist", t[3] in PER_EXAMPLE), reverse=True)
        finished = {}
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_train_in_worker, *task): task for task in slowest_first}
            for done, future in enumerate(as_completed(futures), start=1):
                finished[futures[future]] = future.result()
                report(done, futures[future])
        out = [finished[task] for task in tasks]
    if progress:
        progress("trained", len(tasks), len(tasks))
    return out


def _train_in_worker(*task: Any) -> dict[str, Any]:
    with extra("torch"):
        import torch

    torch.set_num_threads(1)
    return _train(*task)


def noisy_labels(labels: np.ndarray, rate: float, seed: int, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric noise: a ``rate`` share of the labels, chosen by ``seed``, replaced by a different class."""
    rng = np.random.default_rng([seed, 7])
    noisy = np.zeros(len(labels), bool)
    noisy[rng.permutation(len(labels))[: round(rate * len(labels))]] = True
    shift = rng.integers(1, n_classes, len(labels))
    return np.where(noisy, (labels + shift) % n_classes, labels), noisy


def _data(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if dataset == "digits":
        with extra("bench"):
            from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x, n_train = (x / 16.0).astype(np.float32), 1437
    else:
        from ontheline.bench.data import load_images

        images = load_images("mnist")
        x, y, n_train = images.images.reshape(len(images), -1).astype(np.float32), images.labels, 4000
    order = np.random.default_rng([seed, 3]).permutation(len(y))
    return x[order[:n_train]], y[order[:n_train]], x[order[n_train:]], y[order[n_train:]]


def _train(dataset: str, noise: float, seed: int, method: str, epochs: int, max_train: int | None) -> dict[str, Any]:
    with extra("torch"):
        import torch

    from ontheline.research.sam import SAM, fit_fractions, head_penalty, sam_gradient, set_gradients

    x_pool, y_pool, x_test, y_test = _data(dataset, seed)
    x_pool, y_pool = x_pool[:max_train], y_pool[:max_train]
    y_pool_noisy, noisy_pool = noisy_labels(y_pool, noise, seed)
    fit, held_out = validation_split(len(y_pool), seed)
    x_train, y_train, y_noisy, noisy = x_pool[fit], y_pool[fit], y_pool_noisy[fit], noisy_pool[fit]
    xv, yv = torch.from_numpy(x_pool[held_out]), torch.from_numpy(y_pool_noisy[held_out])  # noisy, as in practice
    torch.manual_seed(seed)
    width = 128 if dataset == "digits" else 256
    body = torch.nn.Sequential(
        torch.nn.Linear(x_train.shape[1], width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU()
    )
    head = torch.nn.Linear(width, 10)
    model = torch.nn.Sequential(body, head)
    if method == "sam":
        optimiser: Any = SAM(model.parameters(), torch.optim.SGD, rho=RHO, lr=LR, momentum=0.9)
    else:
        optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_noisy)
    xt, yt = torch.from_numpy(x_test), torch.from_numpy(y_test)
    noisy_t, clean_y = torch.from_numpy(noisy), torch.from_numpy(y_train)
    order_rng = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=order_rng).split(BATCH):
            xb, yb = x[batch], y[batch]

            def loss_at_w(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                optimiser.zero_grad()
                features = body(xb)
                loss = torch.nn.functional.cross_entropy(head(features), yb)
                if method == "sgd-reg":
                    loss = loss + head_penalty(features, head, lambda_w=LAMBDA, lambda_f=LAMBDA)
                loss.backward()
                return loss

            if method == "sam":
                optimiser.step(loss_at_w)
            elif method in PER_EXAMPLE:
                optimiser.zero_grad()
                set_gradients(model, sam_gradient(model, xb, yb, rho=RHO, variant=method))
                optimiser.step()
            else:
                loss_at_w()
                optimiser.step()
        with torch.no_grad():
            accuracy = float((model(xt).argmax(1) == yt).float().mean())
            validation = float((model(xv).argmax(1) == yv).float().mean())
        clean_fit, _ = fit_fractions(model, x, clean_y, noisy_t)
        _, noisy_fit = fit_fractions(model, x, y, noisy_t)
        curve.append({"test_acc": accuracy, "val_acc": validation, "clean_fit": clean_fit, "noisy_fit": noisy_fit})
    return {"curve": curve, "noise_mask_sha256": hashlib.sha256(noisy_pool.tobytes()).hexdigest()[:16]}


def validation_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the training set kept for fitting and those held out for validation, both sorted.

    A ``VALIDATION_SHARE`` of ``n`` (rounded), chosen by ``seed``; the held-out examples keep their noisy labels.
    """
    held_out = np.random.default_rng([seed, 5]).permutation(n)[: round(VALIDATION_SHARE * n)]
    return np.setdiff1d(np.arange(n), held_out), np.sort(held_out)


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds; the selected epoch of each seed is its best validation epoch (noisy labels), the earliest
    of ties: the test curve is only read at that epoch and at the last."""
    tests = np.array([[c["test_acc"] for c in r["curve"]] for r in runs])
    validations = np.array([[c["val_acc"] for c in r["curve"]] for r in runs])
    selected = validations.argmax(axis=1)
    return {
        "final_acc": float(tests[:, -1].mean()),
        "selected_acc": float(tests[np.arange(len(runs)), selected].mean()),
        "selected_epoch": float(selected.mean() + 1),
        "selected_epochs": (selected + 1).tolist(),
        "test_acc": tests.mean(axis=0).tolist(),
        "val_acc": validations.mean(axis=0).tolist(),
        "clean_fit": np.mean([[c["clean_fit"] for c in r["curve"]] for r in runs], axis=0).tolist(),
        "noisy_fit": np.mean([[c["noisy_fit"] for c in r["curve"]] for r in runs], axis=0).tolist(),
    }


def linear_demo(seed: int = 0, rho: float = 1.0) -> dict[str, Any]:
    """Logistic regression on two Gaussian blobs (inputs scaled to unit norm), 30% labels flipped, after a few SGD steps.

    Per example: the margin ``m = y w.x`` (labels in {-1, 1}), SGD's weight ``sigma(-m)`` and
    SAM's ``sigma(-m + rho ||x||)``. Returns the mean weight of clean and of noisy examples
    under each, and the SAM/SGD ratio by margin decile.
    """
    rng = np.random.default_rng(seed)
    n = 400
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    x = rng.normal(size=(n, 2)) + 1.5 * y[:, None] * np.array([1.0, 0.5])
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit norm: the SAM/SGD ratio then depends on the margin only
    flipped = rng.random(n) < 0.3
    y_seen = np.where(flipped, -y, y)
    w = np.zeros(2)
    for _ in range(20):  # early in training, as the paper's argument needs
        m = y_seen * (x @ w)
        w += 0.5 * ((1 / (1 + np.exp(m))) * y_seen) @ x / n
    margin = y_seen * (x @ w)
    sgd = 1 / (1 + np.exp(margin))
    sam = 1 / (1 + np.exp(margin - rho * np.linalg.norm(x, axis=1)))
    deciles = np.quantile(margin, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(deciles, margin, side="right") - 1, 0, 9)
    return {
        "clean_over_noisy_sgd": float(sgd[~flipped].mean() / sgd[flipped].mean()),
        "clean_over_noisy_sam": float(sam[~flipped].mean() / sam[flipped].mean()),
        "ratio_by_margin_decile": [float((sam / sgd)[bins == b].mean()) for b in range(10)],
        "margin_decile_centres": [float(margin[bins == b].mean()) for b in range(10)],
        "rho": rho,
    }


def text(result: dict[str, Any]) -> str:
    lines = []
    for setting in result["settings"].values():
        lines.append(f"{setting['dataset']}, {int(100 * setting['noise'])}% symmetric label noise "
                     f"(mean of seeds {result['seeds']}):")  # fmt: skip
        lines.append(f"  {'method':<8} {'final acc':>10} {'selected acc':>13} {'selected epoch':>15} "
                     f"{'noisy fit (final)':>18}")  # fmt: skip
        for method, v in setting["methods"].items():
            lines.append(f"  {method:<8} {v['final_acc']:>10.4f} {v['selected_acc']:>13.4f} {v['selected_epoch']:>15.1f} "
                         f"{v['noisy_fit'][-1]:>18.3f}")  # fmt: skip
        lines.append("")
    demo = result["linear_demo"]
    lines.append(f"Linear demo: clean/noisy mean weight {demo['clean_over_noisy_sgd']:.2f} under SGD, "
                 f"{demo['clean_over_noisy_sam']:.2f} under SAM; SAM/SGD ratio by margin decile: "
                 + ", ".join(f"{r:.2f}" for r in demo["ratio_by_margin_decile"]))  # fmt: skip
    lines.append("")
    lines.append(f"Test accuracy after the last epoch (final) and at the epoch with the best accuracy on a held-out "
                 f"{result['setup']['validation_share']:.0%} of the noisy training set, against its noisy labels "
                 "(selected); no number is chosen on the test set.")  # fmt: skip
    lines.append("")
    lines += [f"{goal}: {value:+.1f}" for goal, value in result["goals"].items()]
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Any]:
    """``sam-curves.png|svg``: test accuracy, validation accuracy (noisy labels), and clean and noisy training examples
    fit, per epoch (headline setting)."""
    from pathlib import Path

    from ontheline.report.figures import pyplot, save_figure

    setting = next(iter(result["settings"].values()))
    _, axes = pyplot().subplots(1, 4, figsize=(17, 3.8))
    for method, v in setting["methods"].items():
        epochs = range(1, len(v["test_acc"]) + 1)
        for ax, key in zip(axes, ("test_acc", "val_acc", "clean_fit", "noisy_fit")):
            ax.plot(epochs, v[key], label=method, lw=1.4)
    titles = ("test accuracy", "validation accuracy (noisy labels; selects the epoch)", "clean training examples fit",
              "noisy training examples fit (memorised)")  # fmt: skip
    for ax, title in zip(axes, titles):
        ax.set_title(f"{title}\n{result['headline']}", fontsize=9)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(axes[0], Path(folder), "sam-curves")
