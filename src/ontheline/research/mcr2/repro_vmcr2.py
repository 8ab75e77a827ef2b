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
  classes: the mean wall time per training step, latches included, with the two methods' steps
  interleaved, at d = 32 (the design's encoder) and d = 128, with 30 and 150 training samples
  per class. Both objectives are batched over classes, and exact MCR² takes each class log-det
  on the smaller of ``Z_j^T Z_j`` and the Gram matrix ``Z_j Z_j^T`` (as ``ontheline.research.mcr2`` does
  for its users), so the comparison is of the formulations at their best here, not of loops.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress

CLASSES = (10, 50, 100)
# timing settings: (feature dimension d, training samples per class); the first is the design's
TIMING = ((32, 30), (128, 30), (128, 150))
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
    with extra("torch"):
        import torch

    torch.set_num_threads(1)
    steps = steps or (150 if quick else 400)
    timing_steps = timing_steps or (2 * LATCH_EVERY if quick else 6 * LATCH_EVERY)
    n_jobs, done = 1 + len(VARIANTS) + len(TIMING) * len(CLASSES), 0

    def tick(label: str) -> None:
        nonlocal done
        if progress:
            progress(label, done, n_jobs)
        done += 1

    x_train, y_train, x_test, y_test = _digits()
    digits = {}
    for method in ("mcr2", *VARIANTS):
        tick(f"digits: {method}")
        digits[method] = _train(method, x_train, y_train, x_test, y_test, 10, DIM, steps)
    timing: list[dict[str, Any]] = []
    for d, n in TIMING:
        races = []
        for k in CLASSES:
            tick(f"union of subspaces, d = {d}, {n} per class, k = {k}")
            races.append(_race(*_union_of_subspaces(k, train=n), k, d, timing_steps + 1))
        by_method = {
            key: {m: [r[m][key] for r in races] for m in ("mcr2", "vmcr2")} for key in ("step_seconds", "delta_r")
        }
        timing.append({"dim": d, "per_class": n, **by_method})
    if progress:
        progress("done", n_jobs, n_jobs)

    setup = {"steps": steps, "timing_steps": timing_steps, "eps2": EPS2, "atoms": ATOMS, "mu": MU, "dim": DIM}
    result: dict[str, Any] = {
        "classes": list(CLASSES),
        "step_seconds": timing[0]["step_seconds"],
        "delta_r": {m: digits[m]["delta_r"] for m in ("mcr2", "vmcr2")},
        "accuracy": {m: digits[m]["accuracy"] for m in ("mcr2", "vmcr2")},
        "digits": digits,
        "timing": timing,
        "setup": {**setup, "latch_every": LATCH_EVERY, "variants": {k: list(v) for k, v in VARIANTS.items()}},
    }
    result["goals"] = {
        "delta_r_share": result["delta_r"]["vmcr2"] / result["delta_r"]["mcr2"],
        "accuracy_gap_pp": 100 * (result["accuracy"]["mcr2"] - result["accuracy"]["vmcr2"]),
        "speedup_at_100_classes": _speedup(timing[0]["step_seconds"]),
        "speedup_at_100_classes_by_setting": [
            {"dim": t["dim"], "per_class": t["per_class"], "speedup": _speedup(t["step_seconds"])} for t in timing
        ],
    }
    return result


def _speedup(seconds: dict[str, list[float]]) -> float:
    return seconds["mcr2"][-1] / seconds["vmcr2"][-1]


def _digits() -> tuple[Any, Any, Any, Any]:
    with extra("torch"):
        import torch
    with extra("bench"):
        from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x = torch.tensor(x[order] / 16.0, dtype=torch.float64)
    y = torch.tensor(y[order])
    return x[:1437], y[:1437], x[1437:], y[1437:]


def _union_of_subspaces(
    k: int, train: int = 30, test: int = 10, ambient: int = 64, rank: int = 3, seed: int = 0
) -> tuple[Any, Any, Any, Any]:
    with extra("torch"):
        import torch

    g = torch.Generator().manual_seed(seed)
    per_class = train + test
    bases = torch.linalg.qr(torch.randn(k, ambient, rank, generator=g, dtype=torch.float64))[0]
    coefficients = torch.randn(k, per_class, rank, generator=g, dtype=torch.float64)
    x = torch.einsum("kdr,knr->knd", bases, coefficients) + 0.05 * torch.randn(k, per_class, ambient, generator=g,
                                                                                 dtype=torch.float64)  # fmt: skip
    x = torch.nn.functional.normalize(x, dim=2)
    labels = torch.arange(k)[:, None].expand(k, per_class)
    fit, held_out = slice(0, train), slice(train, per_class)
    return (x[:, fit].reshape(-1, ambient), labels[:, fit].reshape(-1),
            x[:, held_out].reshape(-1, ambient), labels[:, held_out].reshape(-1))  # fmt: skip


class _Trainer:
    """An encoder trained full batch by one method, a step at a time (so two methods' steps can be interleaved)."""

    def __init__(self, method: str, x: Any, y: Any, k: int, dim: int):
        with extra("torch"):
            import torch

        from ontheline.research.mcr2 import VariationalMCR2

        torch.manual_seed(0)
        self.x, self.y, self.k, self.steps_done = x, y, k, 0
        self.seconds: list[float] = []
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, dim)
        ).double()
        self.optimiser = torch.optim.Adam(self.encoder.parameters(), lr=1e-3)
        self.dictionary, mu, self.dictionary_steps = VARIANTS.get(method, ("ritz", MU, 1))
        self.variational = None if method == "mcr2" else VariationalMCR2(dim, k, ATOMS, eps2=EPS2, mu=mu)

    def embed(self, inputs: Any) -> Any:
        with extra("torch"):
            import torch

        return torch.nn.functional.normalize(self.encoder(inputs), dim=1)

    def step(self) -> None:
        from ontheline.research.mcr2 import rate_reduction

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
        with extra("torch"):
            import torch

        from ontheline.research.mcr2 import nearest_subspace, rate_reduction

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
    lines.append(
        f"  {'d':>4} {'per class':>9} {'classes':>7} {'MCR2 s/step':>12} {'V-MCR2 s/step':>14} {'speed-up':>9}"
    )
    for t in result["timing"]:
        for i, k in enumerate(result["classes"]):
            exact, variational = t["step_seconds"]["mcr2"][i], t["step_seconds"]["vmcr2"][i]
            lines.append(f"  {t['dim']:>4} {t['per_class']:>9} {k:>7} {exact:>12.4f} {variational:>14.4f} "
                         f"{exact / variational:>8.2f}x")  # fmt: skip
    goals = result["goals"]
    settings = ", ".join(f"{g['speedup']:.2f}x at d = {g['dim']} with {g['per_class']} per class"
                         for g in goals["speedup_at_100_classes_by_setting"])  # fmt: skip
    lines += ["", f"V-MCR2 (mu {result['setup']['mu']:g}) reaches {goals['delta_r_share']:.1%} of MCR2's rate reduction "
              f"(goal >= 90%), accuracy gap {goals['accuracy_gap_pp']:+.1f} points (goal within 3), "
              f"speed-up at 100 classes {settings} (goal >= 2x)."]  # fmt: skip
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Any]:
    """``vmcr2-step-time.png|svg``: seconds per training step against the number of classes, per feature dimension."""
    from pathlib import Path

    from ontheline.report.figures import pyplot, save_figure

    _, ax = pyplot().subplots(figsize=(5.5, 3.8))
    for t, colour in zip(result["timing"], ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        for method, style in (("mcr2", "-o"), ("vmcr2", "--s")):
            label = f"{'MCR²' if method == 'mcr2' else 'V-MCR²'}, d = {t['dim']}, {t['per_class']} per class"
            ax.plot(result["classes"], t["step_seconds"][method], style, color=colour, label=label, lw=1.4)
    ax.set_xlabel("classes k")
    ax.set_ylabel("seconds per training step")
    ax.set_title("Time per step: exact MCR² vs V-MCR²", fontsize=10)
    ax.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(ax, Path(folder), "vmcr2-step-time")
