"""V-MCR² against exact MCR²: the rate reduction reached, nearest-subspace accuracy, and time per step.

An encoder (an MLP to 128 hidden units, output on the unit sphere in ``d`` dimensions) is
trained full batch with Adam (each step is a pass over the data, an epoch) to maximise the
exact rate reduction (MCR²) or the variational objective (V-MCR²: 8 atoms per class, a latch
every 10 steps, one dictionary update per step). Every number is reported as the mean and
spread (sample std, min, max) over seeds (three; each seed draws the digits split, the
union of subspaces, the encoder's initialisation and the initial dictionary).

- Digits (scikit-learn, k = 10, d = 32): the true rate reduction of the learned training
  features and the nearest-subspace test accuracy, for exact MCR², V-MCR² with Rayleigh-Ritz
  dictionary updates at mu = 0.1, 1 and 10 (the headline is mu = 1, fixed beforehand), and
  V-MCR² with the paper's projected gradient dictionary steps. Nothing is selected: every
  variant is reported, each after a fixed number of steps.
- A union of subspaces (3-dimensional subspaces in 64 dimensions) with k = 10, 50 and 100
  classes: the mean wall time per training step, latches included, with the two methods' steps
  interleaved, at d = 32 (the design's encoder) and d = 128, with 30 and 150 training samples
  per class. Exact MCR² here is the optimised one of ``ontheline.research.mcr2``: batched over
  classes, each class log-det on the smaller of ``Z_j^T Z_j`` and the Gram matrix ``Z_j Z_j^T``.
- The dimension sweep, at k = 100 classes of 150 samples: one step of the textbook exact MCR²
  (a ``d x d`` log-det per class in a loop, :func:`~ontheline.research.mcr2.textbook_rate_reduction`),
  of the optimised exact MCR², and of V-MCR², steps of the three interleaved, for d in {32, 128,
  512} and, in the full run, larger d while a textbook step stays within seconds; and the
  smallest d at which V-MCR² is at least 2x faster than each, if any.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline.research._spread import pm, spread

CLASSES = (10, 50, 100)
# timing settings: (feature dimension d, training samples per class); the first is the design's
TIMING = ((32, 30), (128, 30), (128, 150))
EPS2, ATOMS, LATCH_EVERY, MU, DIM = 0.5, 8, 10, 1.0, 32
SEEDS = (0, 1, 2)
# digits runs: name -> (dictionary method, mu, dictionary steps per training step)
VARIANTS = {
    "vmcr2": ("ritz", MU, 1),
    "vmcr2_mu0.1": ("ritz", 0.1, 1),
    "vmcr2_mu10": ("ritz", 10.0, 1),
    "vmcr2_gradient": ("gradient", 0.1, 20),
}
# the dimension sweep: k classes of per-class samples; d in SWEEP_DIMS, then LARGER_DIMS (full run only) one by one
# while the previous d's textbook step took under LARGER_IF_UNDER seconds (a step at twice d costs about 8x)
SWEEP_CLASSES, SWEEP_PER_CLASS = 100, 150
SWEEP_DIMS = (32, 128, 512)
LARGER_DIMS = (1024, 2048)
LARGER_IF_UNDER = 1.5
SWEEP_FORMS = ("mcr2_textbook", "mcr2", "vmcr2")


def run(
    quick: bool = False, *, seeds: tuple[int, ...] | None = None, steps: int | None = None,
    timing_steps: int | None = None, sweep_dims: tuple[int, ...] | None = None, sweep_steps: int | None = None,
    sweep_seeds: tuple[int, ...] | None = None, classes: tuple[int, ...] = CLASSES,
    timing: tuple[tuple[int, int], ...] = TIMING, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The JSON object of ``ontheline repro vmcr2``.

    Full run: seeds 0, 1, 2 throughout; 400 training steps on digits; 60 timed steps per
    union-of-subspaces setting; 10 timed steps (one latch) per dimension of the sweep, which goes
    on past d = 512 while a textbook step stays under ``LARGER_IF_UNDER`` seconds. ``quick``: the
    same three seeds with 150 digits steps and 20 timed steps, and the sweep (d up to 512) on
    seed 0 only. The keyword arguments (``classes`` and ``timing``: the union-of-subspaces grid, the
    largest class count last) shrink it further for tests.
    """
    with extra("torch"):
        import torch

    torch.set_num_threads(1)
    seeds = seeds or SEEDS
    steps = steps or (150 if quick else 400)
    timing_steps = timing_steps or (2 * LATCH_EVERY if quick else 6 * LATCH_EVERY)
    sweep_steps = sweep_steps or LATCH_EVERY
    sweep_seeds = sweep_seeds or (seeds[:1] if quick else seeds)
    larger = () if quick or sweep_dims else LARGER_DIMS
    sweep_dims = sweep_dims or SWEEP_DIMS
    n_jobs = len(seeds) * (1 + len(VARIANTS) + len(timing) * len(classes)) + len(sweep_seeds) * len(sweep_dims)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        if progress:
            progress(label, done, n_jobs)
        done += 1

    runs: dict[str, list[dict[str, float]]] = {method: [] for method in ("mcr2", *VARIANTS)}
    for seed in seeds:
        x_train, y_train, x_test, y_test = _digits(seed)
        for method in runs:
            tick(f"digits, seed {seed}: {method}")
            runs[method].append(_train(method, x_train, y_train, x_test, y_test, 10, DIM, steps, seed))
    digits = {
        method: {
            **{key: spread([r[key] for r in rs]) for key in ("delta_r", "accuracy", "step_seconds")},
            "delta_r_share": spread([r["delta_r"] / e["delta_r"] for r, e in zip(rs, runs["mcr2"])]),
        }
        for method, rs in runs.items()
    }

    timed: list[dict[str, Any]] = []
    for d, n in timing:
        races: list[list[dict[str, dict[str, float]]]] = []  # [class count][seed]
        for k in classes:
            races.append([])
            for seed in seeds:
                tick(f"union of subspaces, d = {d}, {n} per class, k = {k}, seed {seed}")
                data = _union_of_subspaces(k, train=n, seed=seed)
                races[-1].append(_race(("mcr2", "vmcr2"), *data, k, d, timing_steps + 1, seed))
        timed.append({
            "dim": d, "per_class": n,
            **{key: {m: [spread([r[m][key] for r in by_seed]) for by_seed in races] for m in ("mcr2", "vmcr2")}
               for key in ("step_seconds", "delta_r")},
            "speedup": [_speedups(by_seed, "mcr2") for by_seed in races],
        })  # fmt: skip

    rows: list[dict[str, Any]] = []
    for d in (*sweep_dims, *larger):
        if d in larger and rows and rows[-1]["step_seconds"]["mcr2_textbook"]["mean"] >= LARGER_IF_UNDER:
            break
        if d in larger:
            n_jobs += len(sweep_seeds)
        by_seed = []
        for seed in sweep_seeds:
            tick(f"dimension sweep, d = {d}, k = {SWEEP_CLASSES}, seed {seed}")
            data = _union_of_subspaces(SWEEP_CLASSES, train=SWEEP_PER_CLASS, seed=seed)
            by_seed.append(_race(SWEEP_FORMS, *data, SWEEP_CLASSES, d, sweep_steps + 1, seed, evaluate=False))
        rows.append({
            "dim": d,
            "step_seconds": {m: spread([r[m]["step_seconds"] for r in by_seed]) for m in SWEEP_FORMS},
            "speedup_vs_textbook": _speedups(by_seed, "mcr2_textbook"),
            "speedup_vs_optimised": _speedups(by_seed, "mcr2"),
        })  # fmt: skip
    if progress:
        progress("done", n_jobs, n_jobs)

    sweep = {
        "classes": SWEEP_CLASSES, "per_class": SWEEP_PER_CLASS, "timed_steps": sweep_steps,
        "seeds": list(sweep_seeds), "rows": rows,
        "first_dim_2x_vs_textbook": _first_dim_at_least(rows, "speedup_vs_textbook", 2.0),
        "first_dim_2x_vs_optimised": _first_dim_at_least(rows, "speedup_vs_optimised", 2.0),
    }  # fmt: skip
    setup = {"steps": steps, "timing_steps": timing_steps, "eps2": EPS2, "atoms": ATOMS, "mu": MU, "dim": DIM}
    result: dict[str, Any] = {
        "seeds": list(seeds),
        "quick": quick,
        "classes": list(classes),
        "step_seconds": timed[0]["step_seconds"],
        "delta_r": {m: digits[m]["delta_r"] for m in ("mcr2", "vmcr2")},
        "accuracy": {m: digits[m]["accuracy"] for m in ("mcr2", "vmcr2")},
        "digits": digits,
        "timing": timed,
        "dimension_sweep": sweep,
        "setup": {**setup, "latch_every": LATCH_EVERY, "variants": {k: list(v) for k, v in VARIANTS.items()}},
    }
    gaps = [100 * (e["accuracy"] - v["accuracy"]) for e, v in zip(runs["mcr2"], runs["vmcr2"])]
    result["goals"] = {
        "delta_r_share": digits["vmcr2"]["delta_r_share"],
        "accuracy_gap_pp": spread(gaps),
        "speedup_at_100_classes": timed[0]["speedup"][-1],
        "speedup_at_100_classes_by_setting": [
            {"dim": t["dim"], "per_class": t["per_class"], "speedup": t["speedup"][-1]} for t in timed
        ],
        "first_dim_2x_vs_textbook": sweep["first_dim_2x_vs_textbook"],
        "first_dim_2x_vs_optimised": sweep["first_dim_2x_vs_optimised"],
    }
    return result


def _speedups(by_seed: list[dict[str, dict[str, float]]], against: str) -> dict[str, Any]:
    """``against``'s seconds per step over V-MCR²'s, seed by seed (each seed's steps were interleaved)."""
    return spread([r[against]["step_seconds"] / r["vmcr2"]["step_seconds"] for r in by_seed])


def _first_dim_at_least(rows: list[dict[str, Any]], key: str, factor: float) -> int | None:
    """The smallest d whose mean speed-up is at least ``factor``; None where none is."""
    return next((row["dim"] for row in rows if row[key]["mean"] >= factor), None)


def _digits(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    with extra("torch"):
        import torch
    with extra("bench"):
        from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
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
    """An encoder trained full batch by one method, a step at a time (so two methods' steps can be interleaved).

    ``method``: ``"mcr2"`` (the optimised exact objective), ``"mcr2_textbook"`` (a ``d x d`` log-det per
    class in a loop), or a V-MCR² variant of ``VARIANTS``.
    """

    def __init__(self, method: str, x: Any, y: Any, k: int, dim: int, seed: int = 0):
        with extra("torch"):
            import torch

        from ontheline.research.mcr2 import VariationalMCR2, rate_reduction, textbook_rate_reduction

        torch.manual_seed(seed)
        self.x, self.y, self.k, self.steps_done = x, y, k, 0
        self.seconds: list[float] = []
        self.encoder = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, dim)
        ).double()
        self.optimiser = torch.optim.Adam(self.encoder.parameters(), lr=1e-3)
        self.dictionary, mu, self.dictionary_steps = VARIANTS.get(method, ("ritz", MU, 1))
        self.exact = {"mcr2": rate_reduction, "mcr2_textbook": textbook_rate_reduction}.get(method)
        self.variational = None if self.exact else VariationalMCR2(dim, k, ATOMS, eps2=EPS2, mu=mu, seed=seed)

    def embed(self, inputs: Any) -> Any:
        with extra("torch"):
            import torch

        return torch.nn.functional.normalize(self.encoder(inputs), dim=1)

    def step(self) -> None:
        start = time.perf_counter()
        z = self.embed(self.x)
        if self.exact is not None:
            loss = -self.exact(z, self.y, self.k, EPS2)
        else:
            assert self.variational is not None
            latch = self.steps_done % LATCH_EVERY == 0
            loss = -self.variational.step(
                z, self.y, latch=latch, dictionary_steps=self.dictionary_steps, method=self.dictionary
            )
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.seconds.append(time.perf_counter() - start)
        self.steps_done += 1

    def step_seconds(self) -> float:
        """The mean step time, every step but the first (latches included)."""
        return float(np.mean(self.seconds[1:] or self.seconds))

    def evaluate(self, x_test: Any, y_test: Any) -> dict[str, float]:
        """The true rate reduction of the training features, nearest-subspace test accuracy, and the mean step time."""
        with extra("torch"):
            import torch

        from ontheline.research.mcr2 import nearest_subspace, rate_reduction

        with torch.no_grad():
            z, z_test = self.embed(self.x), self.embed(x_test)
            delta_r = float(rate_reduction(z, self.y, self.k, EPS2))
            predicted = nearest_subspace(z, self.y, z_test, self.k, rank=ATOMS)
        return {"delta_r": delta_r, "accuracy": float((predicted == y_test).double().mean()),
                "step_seconds": self.step_seconds()}  # fmt: skip


def _train(
    method: str, x: Any, y: Any, x_test: Any, y_test: Any, k: int, dim: int, steps: int, seed: int = 0
) -> dict[str, float]:
    trainer = _Trainer(method, x, y, k, dim, seed)
    for _ in range(steps):
        trainer.step()
    return trainer.evaluate(x_test, y_test)


def _race(
    methods: tuple[str, ...], x: Any, y: Any, x_test: Any, y_test: Any, k: int, dim: int, steps: int, seed: int = 0,
    *, evaluate: bool = True,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """The methods trained step by step in turn, so the machine's load falls on all alike."""
    trainers = {m: _Trainer(m, x, y, k, dim, seed) for m in methods}
    for _ in range(steps):
        for trainer in trainers.values():
            trainer.step()
    if not evaluate:
        return {m: {"step_seconds": t.step_seconds()} for m, t in trainers.items()}
    return {m: t.evaluate(x_test, y_test) for m, t in trainers.items()}


def text(result: dict[str, Any]) -> str:
    setup, seeds = result["setup"], result["seeds"]
    lines = [f"Mean ± std [min, max] over seeds {seeds}."]
    sweep = result["dimension_sweep"]
    if result.get("quick"):
        lines.append(f"Quick run: {setup['steps']} digits steps (400 in the full run) and {setup['timing_steps']} "
                     f"timed steps (60); the dimension sweep on seeds {sweep['seeds']} only (all seeds in the full "
                     f"run) and d up to {sweep['rows'][-1]['dim']} (the full run goes on while a textbook step takes "
                     f"under {LARGER_IF_UNDER:g} s).")  # fmt: skip
    lines += ["", f"Digits (k = 10, d = {setup['dim']}, {setup['steps']} steps): true rate reduction of the learned "
              "features (and its share of MCR2's) and nearest-subspace test accuracy", ""]  # fmt: skip
    lines.append(f"  {'':<15} {'dictionary updates':<30} {'Delta R':>30} {'share (%)':>30} {'accuracy':>30}")
    variants = {"mcr2": None, **setup["variants"]}
    for name, spec in variants.items():
        v = result["digits"][name]
        how = "(exact log-dets)" if spec is None else f"{spec[0]}, mu {spec[1]:g}, {spec[2]} per step"
        lines.append(f"  {name:<15} {how:<30} {pm(v['delta_r']):>30} {pm(v['delta_r_share'], 100, 1):>30} "
                     f"{pm(v['accuracy']):>30}")  # fmt: skip
    lines += ["", f"Union of subspaces: mean seconds per step over {setup['timing_steps']} steps (latches included); "
              "exact MCR2 is the optimised one (batched, Gram matrices for small classes)", ""]  # fmt: skip
    lines.append(f"  {'d':>4} {'per class':>9} {'classes':>7} {'MCR2 s/step':>12} {'V-MCR2 s/step':>14} "
                 f"{'speed-up (mean ± std [min, max])':>34}")  # fmt: skip
    for t in result["timing"]:
        for i, k in enumerate(result["classes"]):
            exact, variational = t["step_seconds"]["mcr2"][i]["mean"], t["step_seconds"]["vmcr2"][i]["mean"]
            lines.append(f"  {t['dim']:>4} {t['per_class']:>9} {k:>7} {exact:>12.4f} {variational:>14.4f} "
                         f"{pm(t['speedup'][i], digits=2):>34}")  # fmt: skip
    lines += ["", f"One training step at k = {sweep['classes']} classes of {sweep['per_class']} samples, by feature "
              f"dimension d (mean seconds over {sweep['timed_steps']} steps, latches included, seeds "
              f"{sweep['seeds']}; speed-ups of V-MCR2, mean ± std [min, max]):", ""]  # fmt: skip
    lines.append(f"  {'d':>5} {'textbook s':>11} {'optimised s':>12} {'V-MCR2 s':>9} "
                 f"{'vs textbook':>26} {'vs optimised':>26}")  # fmt: skip
    for row in sweep["rows"]:
        s = row["step_seconds"]
        lines.append(f"  {row['dim']:>5} {s['mcr2_textbook']['mean']:>11.4f} {s['mcr2']['mean']:>12.4f} "
                     f"{s['vmcr2']['mean']:>9.4f} {pm(row['speedup_vs_textbook'], digits=2):>26} "
                     f"{pm(row['speedup_vs_optimised'], digits=2):>26}")  # fmt: skip

    def first(key: str) -> str:
        d = sweep[key]
        return "at no d timed" if d is None else f"from d = {d}"

    goals = result["goals"]
    settings = ", ".join(f"{g['speedup']['mean']:.2f}x at d = {g['dim']} with {g['per_class']} per class"
                         for g in goals["speedup_at_100_classes_by_setting"])  # fmt: skip
    lines += ["", f"V-MCR2 at least 2x faster per step than the textbook MCR2 {first('first_dim_2x_vs_textbook')}, "
              f"than the optimised MCR2 {first('first_dim_2x_vs_optimised')}.",
              f"V-MCR2 (mu {setup['mu']:g}) reaches {pm(goals['delta_r_share'], 100, 1)}% of MCR2's rate reduction "
              f"(goal >= 90%), accuracy gap {pm(goals['accuracy_gap_pp'], digits=1)} points (goal within 3), "
              f"speed-up over the optimised MCR2 at 100 classes {settings} (goal >= 2x)."]  # fmt: skip
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Any]:
    """``vmcr2-step-time.png|svg``: seconds per training step against the number of classes, per feature dimension
    (mean over seeds), and against the feature dimension at 100 classes for the three forms."""
    from pathlib import Path

    from ontheline.report.figures import pyplot, save_figure

    _, (ax, sweep_ax) = pyplot().subplots(1, 2, figsize=(11, 3.8))
    for t, colour in zip(result["timing"], ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        for method, style in (("mcr2", "-o"), ("vmcr2", "--s")):
            label = f"{'MCR²' if method == 'mcr2' else 'V-MCR²'}, d = {t['dim']}, {t['per_class']} per class"
            means = [s["mean"] for s in t["step_seconds"][method]]
            ax.plot(result["classes"], means, style, color=colour, label=label, lw=1.4)
    ax.set_xlabel("classes k")
    ax.set_ylabel("seconds per training step")
    ax.set_title("Time per step: optimised exact MCR² vs V-MCR²", fontsize=10)
    ax.legend(fontsize=8)
    sweep = result["dimension_sweep"]
    dims = [row["dim"] for row in sweep["rows"]]
    names = {"mcr2_textbook": "textbook MCR² (d x d log-det per class)", "mcr2": "optimised MCR²", "vmcr2": "V-MCR²"}
    for form, style in zip(SWEEP_FORMS, ("-^", "-o", "--s")):
        means = [row["step_seconds"][form]["mean"] for row in sweep["rows"]]
        sweep_ax.plot(dims, means, style, label=names[form], lw=1.4)
    sweep_ax.set_xscale("log", base=2)
    sweep_ax.set_yscale("log")
    sweep_ax.set_xlabel("feature dimension d")
    sweep_ax.set_ylabel("seconds per training step")
    sweep_ax.set_title(f"k = {sweep['classes']} classes of {sweep['per_class']} samples", fontsize=10)
    sweep_ax.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(ax, Path(folder), "vmcr2-step-time")
