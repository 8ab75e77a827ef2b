"""Incremental learning via rate reduction (Wu, Baek, You, Ma; CVPR 2021): ReduNet grown task by task.

scikit-learn's digits (each image centred and scaled to unit norm) in 5 tasks of 2 classes.
Five learners see the tasks in order and are scored, after each task, on the test images of
every class seen so far:

- ``joint``: a ReduNet built jointly on all classes seen (the reference);
- ``incremental``: a ReduNet grown from the stored class statistics alone (no old images): each
  class's ``d x d`` second moment and its count, ``d * d + 1`` floats per class;
- ``mlp_sequential``: an MLP finetuned on each new task with SGD and no memory (which forgets);
- ``mlp_replay``: the same MLP with exemplar replay under the ReduNet's memory: per class, as
  many raw training images (``d`` floats each; the class is the buffer's, as a moment's class is
  its position) as fit in ``d * d + 1`` floats, drawn at random (seeded) when the class arrives,
  replayed with the new task's images when training each later task;
- ``mlp_joint``: an MLP trained from scratch on all classes seen so far at once (an upper
  bound for the MLPs).

The ReduNet is built in closed form (no backprop), with the per-class scalar normalisation
under which the grown network equals the joint one exactly. Nothing is selected: every
learner has fixed settings and is scored after every task. Three seeds (each draws the
train/test split, the MLPs' initialisation, their batch order and the replayed exemplars);
every number is reported as mean and spread (sample std, min, max) over them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline.research._spread import pm, spread

TASKS = tuple((2 * t, 2 * t + 1) for t in range(5))
LAYERS, ETA, EPS2, LAM, RANK = 20, 0.5, 0.1, 500.0, 4
DIM = 64  # digits: 8 x 8 images
SEEDS = (0, 1, 2)
LEARNERS = ("joint", "incremental", "mlp_sequential", "mlp_replay", "mlp_joint")


def memory_budget(dim: int = DIM) -> dict[str, int]:
    """Per class: the floats the grown ReduNet stores (``d * d + 1``), and the replay exemplars that fit in them."""
    statistics = dim * dim + 1
    exemplars = statistics // dim
    return {
        "redunet_statistics": statistics,
        "floats_per_exemplar": dim,
        "exemplars_per_class": exemplars,
        "replay_exemplars": exemplars * dim,
    }


def run(
    quick: bool = False, *, seeds: tuple[int, ...] | None = None, layers: int | None = None,
    mlp_epochs: int | None = None, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON object of ``ontheline repro incremental``.

    Seeds 0, 1, 2 in both runs; ``quick``: 12 ReduNet layers and 30 MLP epochs per task instead
    of 20 and 60.
    """
    with extra("torch"):
        import torch

    torch.set_num_threads(1)
    seeds = seeds or SEEDS
    layers = layers or (12 if quick else LAYERS)
    mlp_epochs = mlp_epochs or (30 if quick else 60)
    per_seed = []
    for i, seed in enumerate(seeds):
        per_seed.append(_one_seed(seed, layers, mlp_epochs, progress, i * len(TASKS), len(seeds) * len(TASKS)))
    if progress:
        progress("done", len(seeds) * len(TASKS), len(seeds) * len(TASKS))
    curves = {name: [spread([s["curves"][name][t] for s in per_seed]) for t in range(len(TASKS))] for name in LEARNERS}
    final = {name: values[-1] for name, values in curves.items()}

    def difference(a: str, b: str) -> dict[str, Any]:
        return spread([100 * (s["curves"][a][-1] - s["curves"][b][-1]) for s in per_seed])

    return {
        "final_accuracy": final,
        "accuracy_after_each_task": curves,
        "memory_floats": {
            "after_each_task": per_seed[0]["memory"],
            "per_class": memory_budget(),
            "rule": "ReduNet: d*d + 1 floats per class seen (second moment and count); replay: as many d-float "
            "images per class as fit in that, balanced per class",
        },
        "tasks": [list(t) for t in TASKS],
        "seeds": list(seeds),
        "quick": quick,
        "setup": {
            "layers": layers,
            "eta": ETA,
            "eps2": EPS2,
            "lambda": LAM,
            "subspace_rank": RANK,
            "mlp_epochs_per_task": mlp_epochs,
        },  # fmt: skip
        "goals": {
            "incremental_minus_joint_pp": difference("incremental", "joint"),
            "incremental_minus_mlp_pp": difference("incremental", "mlp_sequential"),
            "incremental_minus_mlp_replay_pp": difference("incremental", "mlp_replay"),
            "mlp_joint_minus_incremental_pp": difference("mlp_joint", "incremental"),
        },
    }


def _one_seed(
    seed: int, layers: int, mlp_epochs: int, progress: Progress | None, done: int, total: int
) -> dict[str, Any]:
    with extra("torch"):
        import torch

    from ontheline.research.mcr2 import ReduNet

    x_train, y_train, x_test, y_test = _digits(seed)
    grown = ReduNet(n_layers=layers, eta=ETA, eps2=EPS2, lam=LAM)
    sequential, replay = _mlp(seed), _mlp(seed)
    memory: dict[int, Any] = {}  # class -> its replayed training images
    budget = memory_budget(x_train.shape[1])
    pick = np.random.default_rng([seed, 11])
    curves: dict[str, list[float]] = {name: [] for name in LEARNERS}
    floats: dict[str, list[int]] = {"redunet_statistics": [], "replay_exemplars": []}
    for t, classes in enumerate(TASKS):
        if progress:
            progress(f"seed {seed}, task {t + 1}: classes {classes}", done + t, total)
        new = torch.isin(y_train, torch.tensor(classes))
        grown.add_classes(x_train[new], y_train[new] - classes[0], len(classes))
        seen_classes = [c for task in TASKS[: t + 1] for c in task]
        seen = torch.isin(y_train, torch.tensor(seen_classes))
        joint = ReduNet(n_layers=layers, eta=ETA, eps2=EPS2, lam=LAM).fit(
            x_train[seen], y_train[seen], len(seen_classes)
        )
        order = 1000 * seed + t
        _finetune(sequential, x_train[new], y_train[new], mlp_epochs, seed=order)
        old = list(memory)
        x_replay = torch.cat([x_train[new], *(memory[c] for c in old)])
        y_replay = torch.cat([y_train[new], *(torch.full((len(memory[c]),), c) for c in old)])
        _finetune(replay, x_replay, y_replay, mlp_epochs, seed=order)
        for c in classes:  # the new classes' exemplars, for the tasks to come
            members = np.flatnonzero((y_train == c).numpy())
            memory[c] = x_train[np.sort(pick.permutation(members)[: budget["exemplars_per_class"]])]
        upper = _mlp(seed)
        _finetune(upper, x_train[seen], y_train[seen], mlp_epochs, seed=order)
        assert grown.moments is not None and grown.counts is not None
        floats["redunet_statistics"].append(grown.moments.numel() + grown.counts.numel())
        floats["replay_exemplars"].append(sum(m.numel() for m in memory.values()))

        test = torch.isin(y_test, torch.tensor(seen_classes))
        curves["joint"].append(_accuracy(joint.predict(x_test[test], RANK), y_test[test]))
        curves["incremental"].append(_accuracy(grown.predict(x_test[test], RANK), y_test[test]))
        with torch.no_grad():
            for name, mlp in (("mlp_sequential", sequential), ("mlp_replay", replay), ("mlp_joint", upper)):
                curves[name].append(_accuracy(mlp(x_test[test].float()).argmax(1), y_test[test]))
    return {"curves": curves, "memory": floats}


def _digits(seed: int = 0) -> tuple[Any, ...]:
    with extra("torch"):
        import torch
    with extra("bench"):
        from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x - x.mean(axis=1, keepdims=True)  # per image: no statistic shared across tasks
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = torch.tensor(x[order]), torch.tensor(y[order])
    return x[:1437], y[:1437], x[1437:], y[1437:]


def _mlp(seed: int = 0) -> Any:
    with extra("torch"):
        import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(DIM, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


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
    seeds, tasks = result["seeds"], len(result["tasks"])
    lines = [f"Accuracy on every class seen so far, after each task of 2 digit classes (mean over seeds {seeds}):"]
    if result.get("quick"):
        setup = result["setup"]
        lines.append(f"Quick run: {setup['layers']} ReduNet layers and {setup['mlp_epochs_per_task']} MLP epochs per "
                     f"task (20 and 60 in the full run).")  # fmt: skip
    lines += ["", f"  {'learner':<15} " + " ".join(f"{f'task {t + 1}':>7}" for t in range(tasks))
              + f"   {'final: mean ± std [min, max]':>30}"]  # fmt: skip
    for name, values in result["accuracy_after_each_task"].items():
        lines.append(f"  {name:<15} " + " ".join(f"{v['mean']:>7.3f}" for v in values) + f"   {pm(values[-1]):>30}")
    memory = result["memory_floats"]
    per_class, after = memory["per_class"], memory["after_each_task"]
    d = per_class["floats_per_exemplar"]
    lines += ["", f"Memory after the last task, in floats: the grown ReduNet's statistics {after['redunet_statistics'][-1]:,} "
              f"({per_class['redunet_statistics']:,} per class: a {d} x {d} second moment and a count); the replay buffer "
              f"{after['replay_exemplars'][-1]:,} ({per_class['exemplars_per_class']} images of "
              f"{per_class['floats_per_exemplar']} floats per class)."]  # fmt: skip
    goals = result["goals"]
    lines += ["", "Differences in final accuracy, points (mean ± std [min, max] over seeds):"]
    lines += [f"  {name}: {pm(value, digits=1)}" for name, value in goals.items()]
    return "\n".join(lines)
