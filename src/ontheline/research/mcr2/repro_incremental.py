"""Incremental learning via rate reduction (Wu, Baek, You, Ma; CVPR 2021): ReduNet grown task by task.

scikit-learn's digits (each image centred and scaled to unit norm) in 5 tasks of 2 classes.
Three learners see the tasks in order and are scored, after each task, on the test images of
every class seen so far: a ReduNet built jointly on all classes seen (the reference), a ReduNet
grown from the stored class statistics alone (no old images), and an MLP finetuned on each new
task with SGD (which forgets). The ReduNet is built in closed form (no backprop), with the
per-class scalar normalisation under which the grown network equals the joint one exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress

TASKS = tuple((2 * t, 2 * t + 1) for t in range(5))
LAYERS, ETA, EPS2, LAM, RANK = 20, 0.5, 0.1, 500.0, 4


def run(
    quick: bool = False, *, layers: int | None = None, mlp_epochs: int | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """The JSON object of ``ontheline repro incremental``."""
    with extra("torch"):
        import torch

    from ontheline.research.mcr2 import ReduNet

    torch.set_num_threads(1)
    layers = layers or (12 if quick else LAYERS)
    mlp_epochs = mlp_epochs or (30 if quick else 60)
    x_train, y_train, x_test, y_test = _digits()
    grown = ReduNet(n_layers=layers, eta=ETA, eps2=EPS2, lam=LAM)
    mlp = _mlp()
    curves: dict[str, list[float]] = {"joint": [], "incremental": [], "mlp_sequential": []}
    for t, classes in enumerate(TASKS):
        if progress:
            progress(f"task {t + 1}: classes {classes}", t, len(TASKS))
        new = torch.isin(y_train, torch.tensor(classes))
        grown.add_classes(x_train[new], y_train[new] - classes[0], len(classes))
        seen_classes = [c for task in TASKS[: t + 1] for c in task]
        seen = torch.isin(y_train, torch.tensor(seen_classes))
        joint = ReduNet(n_layers=layers, eta=ETA, eps2=EPS2, lam=LAM).fit(
            x_train[seen], y_train[seen], len(seen_classes)
        )
        test = torch.isin(y_test, torch.tensor(seen_classes))
        curves["joint"].append(_accuracy(joint.predict(x_test[test], RANK), y_test[test]))
        curves["incremental"].append(_accuracy(grown.predict(x_test[test], RANK), y_test[test]))
        _finetune(mlp, x_train[new], y_train[new], mlp_epochs, seed=t)
        with torch.no_grad():
            curves["mlp_sequential"].append(_accuracy(mlp(x_test[test].float()).argmax(1), y_test[test]))
    if progress:
        progress("done", len(TASKS), len(TASKS))
    final = {name: values[-1] for name, values in curves.items()}
    return {
        "final_accuracy": final,
        "accuracy_after_each_task": curves,
        "tasks": [list(t) for t in TASKS],
        "setup": {
            "layers": layers,
            "eta": ETA,
            "eps2": EPS2,
            "lambda": LAM,
            "subspace_rank": RANK,
            "mlp_epochs_per_task": mlp_epochs,
        },  # fmt: skip
        "goals": {
            "incremental_minus_joint_pp": 100 * (final["incremental"] - final["joint"]),
            "incremental_minus_mlp_pp": 100 * (final["incremental"] - final["mlp_sequential"]),
        },
    }


def _digits() -> tuple[Any, ...]:
    with extra("torch"):
        import torch
    with extra("bench"):
        from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x - x.mean(axis=1, keepdims=True)  # per image: no statistic shared across tasks
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = torch.tensor(x[order]), torch.tensor(y[order])
    return x[:1437], y[:1437], x[1437:], y[1437:]


def _mlp() -> Any:
    with extra("torch"):
        import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def _finetune(mlp: Any, x: Any, y: Any, epochs: int, seed: int) -> None:
    with extra("torch"):
        import torch

    optimiser = torch.optim.SGD(mlp.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=generator).split(32):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(mlp(x[batch].float()), y[batch]).backward()
            optimiser.step()


def _accuracy(predicted: Any, truth: Any) -> float:
    return float((predicted == truth).double().mean())


def text(result: dict[str, Any]) -> str:
    lines = ["Accuracy on every class seen so far, after each task of 2 digit classes:", ""]
    lines.append(f"  {'learner':<15} " + " ".join(f"{f'task {t + 1}':>7}" for t in range(len(result["tasks"]))))
    for name, values in result["accuracy_after_each_task"].items():
        lines.append(f"  {name:<15} " + " ".join(f"{v:>7.3f}" for v in values))
    goals = result["goals"]
    lines += ["", f"Grown minus joint ReduNet: {goals['incremental_minus_joint_pp']:+.1f} points; grown ReduNet minus "
              f"sequential MLP: {goals['incremental_minus_mlp_pp']:+.1f} points."]  # fmt: skip
    return "\n".join(lines)
