"""V-MCR² against exact MCR²: the rate reduction reached, nearest-subspace accuracy, and time per step.

An encoder (an MLP to 128 then 32 dimensions, output on the unit sphere) is trained full-batch
with Adam to maximise the exact rate reduction (MCR²) or the variational objective (V-MCR²:
``atoms`` = 8 per class, twenty projected ascent steps on the dictionary per training step,
latching every 10 steps (each step is a full pass over the data, an epoch), mu = 0.1). On scikit-learn's digits (k = 10) the true rate reduction of the learned
training features and the nearest-subspace test accuracy are compared; on a synthetic union of
subspaces with k = 10, 50 and 100 classes (3-dimensional subspaces in 64 dimensions), the
wall time per optimisation step too. Both objectives are batched over classes (one batched
Cholesky for the k class log-dets), so the comparison is of the formulations, not of Python loops.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ontheline._progress import Progress

CLASSES = (10, 50, 100)
EPS2, ATOMS, LATCH_EVERY, MU, DIM = 0.5, 8, 10, 0.1, 32


def run(
    quick: bool = False, *, steps: int | None = None, timing_steps: int | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """The JSON object of ``ontheline repro vmcr2``."""
    import torch

    torch.set_num_threads(1)
    steps = steps or (150 if quick else 400)
    timing_steps = timing_steps or (10 if quick else 30)
    x_train, y_train, x_test, y_test = _digits()
    if progress:
        progress("digits: MCR2 and V-MCR2", 0, 1 + len(CLASSES))
    digits = {m: _train(m, x_train, y_train, x_test, y_test, 10, steps) for m in ("mcr2", "vmcr2")}
    synthetic = {}
    for i, k in enumerate(CLASSES, start=1):
        if progress:
            progress(f"union of subspaces, {k} classes", i, 1 + len(CLASSES))
        data = _union_of_subspaces(k)
        synthetic[k] = {m: _train(m, *data, k, timing_steps) for m in ("mcr2", "vmcr2")}
    if progress:
        progress("done", 1 + len(CLASSES), 1 + len(CLASSES))
    result = {
        "classes": list(CLASSES),
        "step_seconds": {m: [synthetic[k][m]["step_seconds"] for k in CLASSES] for m in ("mcr2", "vmcr2")},
        "delta_r": {m: digits[m]["delta_r"] for m in digits},
        "accuracy": {m: digits[m]["accuracy"] for m in digits},
        "synthetic": {
            str(k): {m: {key: v[key] for key in ("delta_r", "accuracy")} for m, v in r.items()}
            for k, r in synthetic.items()
        },  # fmt: skip
        "setup": {"steps": steps, "timing_steps": timing_steps, "eps2": EPS2, "atoms": ATOMS, "mu": MU, "dim": DIM},
    }
    speedup = result["step_seconds"]["mcr2"][-1] / result["step_seconds"]["vmcr2"][-1]
    result["goals"] = {
        "delta_r_share": result["delta_r"]["vmcr2"] / result["delta_r"]["mcr2"],
        "accuracy_gap_pp": 100 * (result["accuracy"]["mcr2"] - result["accuracy"]["vmcr2"]),
        "speedup_at_100_classes": speedup,
    }
    return result


def _digits() -> tuple[Any, ...]:
    import torch
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x = torch.tensor(x[order] / 16.0, dtype=torch.float64)
    y = torch.tensor(y[order])
    return x[:1437], y[:1437], x[1437:], y[1437:]


def _union_of_subspaces(
    k: int, per_class: int = 40, ambient: int = 64, rank: int = 3, seed: int = 0
) -> tuple[Any, ...]:
    import torch

    g = torch.Generator().manual_seed(seed)
    bases = torch.linalg.qr(torch.randn(k, ambient, rank, generator=g, dtype=torch.float64))[0]
    coefficients = torch.randn(k, per_class, rank, generator=g, dtype=torch.float64)
    x = torch.einsum("kdr,knr->knd", bases, coefficients) + 0.05 * torch.randn(k, per_class, ambient, generator=g,
                                                                                 dtype=torch.float64)  # fmt: skip
    x = torch.nn.functional.normalize(x, dim=2)
    labels = torch.arange(k)[:, None].expand(k, per_class)
    train = slice(0, per_class * 3 // 4)
    test = slice(per_class * 3 // 4, per_class)
    return (x[:, train].reshape(-1, ambient), labels[:, train].reshape(-1),
            x[:, test].reshape(-1, ambient), labels[:, test].reshape(-1))  # fmt: skip


def _train(method: str, x: Any, y: Any, x_test: Any, y_test: Any, k: int, steps: int) -> dict[str, float]:
    import torch

    from ontheline.mcr2 import VariationalMCR2, nearest_subspace, rate_reduction

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, DIM)).double()

    def embed(inputs: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(encoder(inputs), dim=1)

    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    variational = VariationalMCR2(DIM, k, ATOMS, eps2=EPS2, mu=MU) if method == "vmcr2" else None
    seconds = []
    for step in range(steps):
        start = time.perf_counter()
        z = embed(x)
        if variational is None:
            loss = -rate_reduction(z, y, k, EPS2)
        else:
            if step % LATCH_EVERY == 0:
                variational.latch(z, y)
            variational.update_dictionary(z, y, steps=20)
            loss = -variational.objective(z, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        z, z_test = embed(x), embed(x_test)
        delta_r = float(rate_reduction(z, y, k, EPS2))
        accuracy = float((nearest_subspace(z, y, z_test, k, rank=ATOMS) == y_test).double().mean())
    return {"delta_r": delta_r, "accuracy": accuracy, "step_seconds": float(np.median(seconds[1:] or seconds))}


def text(result: dict[str, Any]) -> str:
    lines = ["Digits (k = 10): true rate reduction of the learned features and nearest-subspace test accuracy", ""]
    lines.append(f"  {'':<7} {'Delta R':>9} {'accuracy':>9}")
    for m in ("mcr2", "vmcr2"):
        lines.append(f"  {m:<7} {result['delta_r'][m]:>9.3f} {result['accuracy'][m]:>9.3f}")
    lines += ["", "Union of subspaces: seconds per step (median) and the rate reduction reached", ""]
    lines.append(f"  {'classes':>7} {'MCR2 s/step':>12} {'V-MCR2 s/step':>14} {'MCR2 dR':>8} {'V-MCR2 dR':>10}")
    for i, k in enumerate(result["classes"]):
        s = result["synthetic"][str(k)]
        lines.append(f"  {k:>7} {result['step_seconds']['mcr2'][i]:>12.4f} {result['step_seconds']['vmcr2'][i]:>14.4f} "
                     f"{s['mcr2']['delta_r']:>8.2f} {s['vmcr2']['delta_r']:>10.2f}")  # fmt: skip
    goals = result["goals"]
    lines += ["", f"V-MCR2 reaches {100 * goals['delta_r_share']:.1f}% of MCR2's rate reduction (goal >= 90%), "
              f"accuracy gap {goals['accuracy_gap_pp']:+.1f} points (goal within 3), "
              f"speed-up at 100 classes {goals['speedup_at_100_classes']:.2f}x (goal >= 2x)."]  # fmt: skip
    return "\n".join(lines)
