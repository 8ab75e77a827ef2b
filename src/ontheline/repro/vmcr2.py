"""V-MCR² against exact MCR²: the rate reduction reached, nearest-subspace accuracy, and time per step.

An encoder (an MLP to 128 hidden units, output on the unit sphere in ``d`` dimensions) is
trained full batch with Adam (each step is a pass over the data, an epoch) to maximise the
exact rate reduction (MCR²) or the variational objective (V-MCR²: 8 atoms per class, a latch
every 10 steps, one dictionary update per step).

- Digits (scikit-learn, k = 10, d = 32): the true rate reduction of the learned training
  features and the nearest-subspace test accuracy, for exact MCR², V-MCR² with Rayleigh-Ritz
  dictionary updates at mu = 0.1, 1 and 10 (the headline is mu = 1), and V-MCR² with the
  paper's projected gradient dictionary steps.
- A union of subspaces (3-dimensional subspaces in 64 dimensions) with k = 10, 50 and 100
  classes: the mean wall time per training step, latches included, at d = 32 (the design's
  encoder) and d = 128. Both objectives are batched over classes (one batched Cholesky for the k
  class log-dets), so the comparison is of the formulations, not of Python loops.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ontheline._progress import Progress

CLASSES = (10, 50, 100)
DIMS = (32, 128)
EPS2, ATOMS, LATCH_EVERY, MU, DIM = 0.5, 8, 10, 1.0, 32
# digits runs: name -> (dictionary method, mu, dictionary steps per training step)
VARIANTS = {
    "vmcr2": ("ritz", MU, 1),
    "vmcr2_mu0.1": ("ritz", 0.1, 1),
    "vmcr2_mu10": ("ritz", 10.0, 1),
    "vmcr2_gradient": ("gradient", 0.1, 20),
}


def run(
    quick: bool = False, *, steps: int | None = None, timing_steps: int | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """The JSON object of ``ontheline repro vmcr2``."""
    import torch

    torch.set_num_threads(1)
    steps = steps or (150 if quick else 400)
    timing_steps = timing_steps or (2 * LATCH_EVERY if quick else 6 * LATCH_EVERY)
    jobs = [("digits", m) for m in ("mcr2", *VARIANTS)] + [
        (f"union of subspaces, d = {d}, k = {k}", (d, k)) for d in DIMS for k in CLASSES
    ]
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        if progress:
            progress(label, done, len(jobs))
        done += 1

    x_train, y_train, x_test, y_test = _digits()
    digits = {}
    for method in ("mcr2", *VARIANTS):
        tick(f"digits: {method}")
        digits[method] = _train(method, x_train, y_train, x_test, y_test, 10, DIM, steps)
    timing: dict[int, dict[int, dict[str, dict[str, float]]]] = {d: {} for d in DIMS}
    for d in DIMS:
        for k in CLASSES:
            tick(f"union of subspaces, d = {d}, k = {k}")
            data = _union_of_subspaces(k)
            timing[d][k] = _race(*data, k, d, timing_steps + 1)
    if progress:
        progress("done", len(jobs), len(jobs))

    def seconds(d: int) -> dict[str, list[float]]:
        return {m: [timing[d][k][m]["step_seconds"] for k in CLASSES] for m in ("mcr2", "vmcr2")}

    def reached(d: int) -> dict[str, list[float]]:
        return {m: [timing[d][k][m]["delta_r"] for k in CLASSES] for m in ("mcr2", "vmcr2")}

    setup = {"steps": steps, "timing_steps": timing_steps, "eps2": EPS2, "atoms": ATOMS, "mu": MU, "dim": DIM}
    result = {
        "classes": list(CLASSES),
        "step_seconds": seconds(DIM),
        "delta_r": {m: digits[m]["delta_r"] for m in ("mcr2", "vmcr2")},
        "accuracy": {m: digits[m]["accuracy"] for m in ("mcr2", "vmcr2")},
        "digits": digits,
        "timing": {str(d): {"step_seconds": seconds(d), "delta_r": reached(d)} for d in DIMS},
        "setup": {**setup, "latch_every": LATCH_EVERY, "variants": {k: list(v) for k, v in VARIANTS.items()}},
    }
    result["goals"] = {
        "delta_r_share": result["delta_r"]["vmcr2"] / result["delta_r"]["mcr2"],
        "accuracy_gap_pp": 100 * (result["accuracy"]["mcr2"] - result["accuracy"]["vmcr2"]),
        "speedup_at_100_classes": _speedup(seconds(DIM)),
        "speedup_at_100_classes_by_dim": {str(d): _speedup(seconds(d)) for d in DIMS},
    }
    return result


def _speedup(seconds: dict[str, list[float]]) -> float:
    return seconds["mcr2"][-1] / seconds["vmcr2"][-1]


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


class _Trainer:
    """An encoder trained full batch by one method, a step at a time (so two methods' steps can be interleaved)."""

    def __init__(self, method: str, x: Any, y: Any, k: int, dim: int):
        import torch

        from ontheline.mcr2 import VariationalMCR2

        torch.manual_seed(0)
        self.x, self.y, self.k, self.steps_done, self.seconds = x, y, k, 0, []
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, dim)
        ).double()
        self.optimiser = torch.optim.Adam(self.encoder.parameters(), lr=1e-3)
        self.dictionary, mu, self.dictionary_steps = VARIANTS.get(method, ("ritz", MU, 1))
        self.variational = None if method == "mcr2" else VariationalMCR2(dim, k, ATOMS, eps2=EPS2, mu=mu)

    def embed(self, inputs: Any) -> Any:
        import torch

        return torch.nn.functional.normalize(self.encoder(inputs), dim=1)

    def step(self) -> None:
        from ontheline.mcr2 import rate_reduction

        start = time.perf_counter()
        z = self.embed(self.x)
        if self.variational is None:
            loss = -rate_reduction(z, self.y, self.k, EPS2)
        else:
            latch = self.steps_done % LATCH_EVERY == 0
            loss = -self.variational.step(
                z, self.y, latch=latch, dictionary_steps=self.dictionary_steps, method=self.dictionary
            )
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.seconds.append(time.perf_counter() - start)
        self.steps_done += 1

    def evaluate(self, x_test: Any, y_test: Any) -> dict[str, float]:
        """The true rate reduction of the training features, nearest-subspace test accuracy, and the mean step time
        (every step but the first; latches included)."""
        import torch

        from ontheline.mcr2 import nearest_subspace, rate_reduction

        with torch.no_grad():
            z, z_test = self.embed(self.x), self.embed(x_test)
            delta_r = float(rate_reduction(z, self.y, self.k, EPS2))
            predicted = nearest_subspace(z, self.y, z_test, self.k, rank=ATOMS)
        return {"delta_r": delta_r, "accuracy": float((predicted == y_test).double().mean()),
                "step_seconds": float(np.mean(self.seconds[1:] or self.seconds))}  # fmt: skip


def _train(method: str, x: Any, y: Any, x_test: Any, y_test: Any, k: int, dim: int, steps: int) -> dict[str, float]:
    trainer = _Trainer(method, x, y, k, dim)
    for _ in range(steps):
        trainer.step()
    return trainer.evaluate(x_test, y_test)


def _race(x: Any, y: Any, x_test: Any, y_test: Any, k: int, dim: int, steps: int) -> dict[str, dict[str, float]]:
    """Exact MCR² and V-MCR² trained step by step in turn, so the machine's load falls on both alike."""
    trainers = {m: _Trainer(m, x, y, k, dim) for m in ("mcr2", "vmcr2")}
    for _ in range(steps):
        for trainer in trainers.values():
            trainer.step()
    return {m: t.evaluate(x_test, y_test) for m, t in trainers.items()}


def text(result: dict[str, Any]) -> str:
    steps = result["setup"]["steps"]
    lines = [f"Digits (k = 10, d = {result['setup']['dim']}, {steps} steps): true rate reduction of the learned "
             "features and nearest-subspace test accuracy", ""]  # fmt: skip
    lines.append(f"  {'':<15} {'dictionary updates':<30} {'Delta R':>8} {'share':>6} {'accuracy':>9}")
    variants = {"mcr2": None, **result["setup"]["variants"]}
    for name, spec in variants.items():
        v = result["digits"][name]
        how = "(exact log-dets)" if spec is None else f"{spec[0]}, mu {spec[1]:g}, {spec[2]} per step"
        share = v["delta_r"] / result["digits"]["mcr2"]["delta_r"]
        lines.append(f"  {name:<15} {how:<30} {v['delta_r']:>8.3f} {share:>6.1%} {v['accuracy']:>9.3f}")
    timing_steps = result["setup"]["timing_steps"]
    lines += ["", f"Union of subspaces: mean seconds per step over {timing_steps} steps (latches included)", ""]
    lines.append(f"  {'d':>4} {'classes':>7} {'MCR2 s/step':>12} {'V-MCR2 s/step':>14} {'speed-up':>9}")
    for d, t in result["timing"].items():
        for i, k in enumerate(result["classes"]):
            exact, variational = t["step_seconds"]["mcr2"][i], t["step_seconds"]["vmcr2"][i]
            lines.append(f"  {d:>4} {k:>7} {exact:>12.4f} {variational:>14.4f} {exact / variational:>8.2f}x")
    goals = result["goals"]
    by_dim = ", ".join(f"{s:.2f}x at d = {d}" for d, s in goals["speedup_at_100_classes_by_dim"].items())
    lines += ["", f"V-MCR2 (mu {result['setup']['mu']:g}) reaches {goals['delta_r_share']:.1%} of MCR2's rate reduction "
              f"(goal >= 90%), accuracy gap {goals['accuracy_gap_pp']:+.1f} points (goal within 3), "
              f"speed-up at 100 classes {by_dim} (goal >= 2x)."]  # fmt: skip
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Any]:
    """``vmcr2-step-time.png|svg``: seconds per training step against the number of classes, per feature dimension."""
    from pathlib import Path

    from ontheline.report.figures import pyplot, save_figure

    _, ax = pyplot().subplots(figsize=(5.5, 3.8))
    for (d, t), colour in zip(result["timing"].items(), ("tab:blue", "tab:orange", "tab:green")):
        for method, style in (("mcr2", "-o"), ("vmcr2", "--s")):
            label = f"{'MCR²' if method == 'mcr2' else 'V-MCR²'}, d = {d}"
            ax.plot(result["classes"], t["step_seconds"][method], style, color=colour, label=label, lw=1.4)
    ax.set_xlabel("classes k")
    ax.set_ylabel("seconds per training step")
    ax.set_title("Time per step: exact MCR² vs V-MCR²", fontsize=10)
    ax.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(ax, Path(folder), "vmcr2-step-time")
