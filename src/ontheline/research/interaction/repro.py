"""The interaction tensor on the benchmark's digits and MNIST networks (Jiang, Baek, Kolter, ICLR 2024).

For each dataset: the quick benchmark's networks (CNNs and MLPs; loaded from the store's
``weights/``, trained through the benchmark's code when missing) and their penultimate
activations on the ID test split make the tensor (γ_corr 0.7, γ_data 0.75); its statistics;
the framework fitted to it, whose closed-form accuracy and agreement are compared with the
networks' measured ones beside the naive GDE estimate (each model's mean agreement with the others);
how much accuracy drops on points without a feature of the model (the framework's premise); a
sweep over both thresholds. Then, on the framework alone: its closed forms against Monte-Carlo
simulation of the same model, and a distribution under which GDE fails, by simulation.

``--quick``: each training run's last checkpoint (24 networks per dataset) and a 3 x 3 sweep;
otherwise all 72 checkpoints and a 4 x 4 sweep. Goals: the closed forms within Monte-Carlo error
(|z| < 4 everywhere); the fitted closed forms' MAE reported against naive GDE's (no goal on who wins).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ontheline._progress import Progress
from ontheline.research.interaction.activations import benchmark_networks, penultimate_activations
from ontheline.research.interaction.fit import fit_feature_model
from ontheline.research.interaction.framework import (
    FeatureModel,
    expected_accuracy,
    expected_agreement,
    gde_breaking_model,
    gde_holding_model,
    simulate,
)
from ontheline.research.interaction.statistics import TensorStatistics, tensor_statistics, threshold_sweep
from ontheline.research.interaction.tensor import InteractionTensor, build_interaction_tensor
from ontheline.zoo import N_CLASSES

CORR_THRESHOLD, DATA_THRESHOLD = 0.7, 0.75
#: The framework worlds checked against simulation: (name, FeatureModel).
CHECKS = (
    ("breaking, K=2", gde_breaking_model(2)),
    ("holding, K=2", gde_holding_model(2)),
    ("long tail, K=10", FeatureModel(c_d=5, c_r=60, n_d=2, n_r=1, t_d=4, t_r=20, pi=0.7, n_classes=10)),
    ("many features, K=3", FeatureModel(c_d=10, c_r=40, n_d=3, n_r=2, t_d=3, t_r=10, pi=0.4, n_classes=3)),
)


def run(
    quick: bool = False, *, progress: Progress | None = None, store: Any = None, config: str = "quick",
    datasets: tuple[str, ...] = ("digits", "mnist"), n_models: int = 40, n_samples: int = 20_000,
) -> dict[str, Any]:  # fmt: skip
    """The JSON object of ``ontheline repro interaction``; ``store``, ``config``, ``datasets``, ``n_models`` and
    ``n_samples`` (of the simulations) shrink it for tests."""
    per_dataset = {}
    for k, dataset in enumerate(datasets):
        if progress:
            progress(f"{dataset}: networks, activations, tensor", k, len(datasets) + 1)
        per_dataset[dataset] = _dataset(dataset, config, store, quick)
    if progress:
        progress("the framework: closed forms against simulation", len(datasets), len(datasets) + 1)
    checks = [_check(name, fm, n_models, n_samples, seed) for seed, (name, fm) in enumerate(CHECKS)]
    breaking = _gde_break(n_models, n_samples)
    weights = np.array([d["n_models"] for d in per_dataset.values()], dtype=float)

    def pooled(kind: str, key: str) -> float:
        return float(np.average([d["fit"][kind][key] for d in per_dataset.values()], weights=weights))

    frequencies = sorted((f for d in per_dataset.values() for f in d["tensor"]["feature_frequency"]), reverse=True)
    result: dict[str, Any] = {
        "tensor": {"n_features": sum(d["tensor"]["n_features"] for d in per_dataset.values()), "feature_frequency": frequencies},
        "closed_form": {"accuracy_mae": pooled("closed_form", "accuracy_mae"), "agreement_mae": pooled("closed_form", "agreement_mae")},
        "tensor_rule": {"accuracy_mae": pooled("tensor", "accuracy_mae"), "agreement_mae": pooled("tensor", "agreement_mae")},
        "naive_gde": {"accuracy_mae": pooled("gde", "accuracy_mae"), "agreement_mae": pooled("gde", "agreement_mae")},
        "gde_break": breaking,
        "simulation_check": checks,
        "datasets": per_dataset,
        "setup": {
            "config": config, "checkpoints": "last of each run" if quick else "all", "corr_threshold": CORR_THRESHOLD,
            "data_threshold": DATA_THRESHOLD, "split": "id_test", "n_classes": N_CLASSES,
            "simulation": {"n_models": n_models, "n_samples": n_samples},
        },
    }  # fmt: skip
    result["goals"] = {
        "closed_forms_within_mc_error": all(c["max_abs_z"] < 4 for c in checks),
        "closed_form_beats_naive_gde_on_accuracy": result["closed_form"]["accuracy_mae"]
        < result["naive_gde"]["accuracy_mae"],
        "gde_breaks_in_the_construction": breaking["breaking"]["simulated"]["gde_gap"]
        > 4 * breaking["breaking"]["simulated"]["se"],
    }
    return result


def _dataset(dataset: str, config: str, store: Any, quick: bool) -> dict[str, Any]:
    nets, test = benchmark_networks(config, dataset, store=store, final_only=quick)
    acts = [penultimate_activations(n.module, test.images) for n in nets]
    preds = np.stack([n.predict_proba(test.images).argmax(axis=1) for n in nets])
    labels = test.labels

    def evaluate(tensor: InteractionTensor, stats: TensorStatistics) -> dict[str, Any]:
        fit = fit_feature_model(tensor, stats, n_classes=N_CLASSES).compare(preds, labels)
        return {f"{k}_{m}": fit[k][f"{m}_mae"] for k in ("closed_form", "tensor") for m in ("accuracy", "agreement")}

    grid = ([0.5, 0.7, 0.9], [0.5, 0.75, 1.0]) if quick else ([0.5, 0.6, 0.7, 0.8], [0.5, 0.75, 1.0, 1.25])
    sweep = threshold_sweep(acts, *grid, evaluate=evaluate)
    tensor = build_interaction_tensor(acts, corr_threshold=CORR_THRESHOLD, data_threshold=DATA_THRESHOLD)
    stats = tensor_statistics(tensor)
    fitted = fit_feature_model(tensor, stats, n_classes=N_CLASSES)
    has = tensor.tensor.any(axis=0)  # (n_models, n_samples): the point has a feature of the model
    correct = preds == labels
    model = fitted.model
    return {
        "n_models": len(nets),
        "n_samples": len(labels),
        "tensor": stats.to_dict(),
        "fit": fitted.compare(preds, labels),
        "fitted_model": {
            "c_d": model.c_d,
            "c_r": model.c_r,
            "n_d": model.n_d,
            "n_r": model.n_r,
            "pi": model.pi,
            "t_d_mean": float(np.mean(model.t_d)),
            "t_r_mean": float(np.mean(model.t_r)),
        },  # fmt: skip
        "premise": {
            "points_without_a_feature": float(1 - has.mean()),
            "accuracy_with_a_feature": float(correct[has].mean()),
            "accuracy_without": float(correct[~has].mean()) if (~has).any() else None,
        },
        "sweep": sweep,
    }


def _check(name: str, fm: FeatureModel, n_models: int, n_samples: int, seed: int) -> dict[str, Any]:
    """Closed forms against one simulation: the means and their Monte-Carlo standard errors."""
    sim = simulate(fm, n_models, n_samples, seed=seed)
    correct = sim["predictions"] == 0
    acc_se = _se(correct)
    onehot = (sim["predictions"][..., None] == np.arange(fm.n_classes)).astype(np.float64)
    per_point = (np.einsum("ink,jnk->n", onehot, onehot) - n_models) / (n_models * (n_models - 1))  # distinct pairs
    upper = np.triu_indices(n_models, k=1)
    agr, agr_closed = float(sim["agreement"][upper].mean()), float(expected_agreement(fm))
    row_means = (sim["agreement"].sum(axis=1) - 1) / (n_models - 1)
    agr_se = float(np.sqrt(per_point.var() / n_samples + row_means.var() / n_models))
    acc, acc_closed = float(correct.mean()), float(expected_accuracy(fm))
    z = (abs(acc - acc_closed) / acc_se, abs(agr - agr_closed) / agr_se)
    return {
        "name": name, "params": _params(fm),
        "accuracy": {"closed_form": acc_closed, "simulated": acc, "se": acc_se},
        "agreement": {"closed_form": agr_closed, "simulated": agr, "se": agr_se},
        "max_abs_z": float(max(z)),
    }  # fmt: skip


def _gde_break(n_models: int, n_samples: int) -> dict[str, Any]:
    """The GDE-breaking world against the GDE-holding one: error, disagreement, their gap, by closed form and simulation."""
    out: dict[str, Any] = {}
    for seed, (name, fm) in enumerate((("breaking", gde_breaking_model(2)), ("holding", gde_holding_model(2)))):
        sim = simulate(fm, n_models, n_samples, seed=100 + seed)
        upper = np.triu_indices(n_models, k=1)
        error, disagreement = 1 - float(sim["accuracy"].mean()), 1 - float(sim["agreement"][upper].mean())
        gde_estimate = (sim["agreement"].sum(axis=1) - 1) / (n_models - 1)
        wrong = sim["predictions"] != 0
        differs = sim["predictions"][upper[0]] != sim["predictions"][upper[1]]  # (pairs, n_samples)
        gap_per_point = differs.mean(axis=0) - wrong.mean(axis=0)
        out[name] = {
            "params": _params(fm),
            "closed_form": {"error": 1 - float(expected_accuracy(fm)), "disagreement": 1 - float(expected_agreement(fm))},
            "simulated": {
                "error": error, "disagreement": disagreement, "gde_gap": disagreement - error,
                "se": float(gap_per_point.std() / np.sqrt(n_samples)),
                "gde_accuracy_mae": float(np.abs(gde_estimate - sim["accuracy"]).mean()),
            },
        }  # fmt: skip
        out[name]["closed_form"]["gde_gap"] = (
            out[name]["closed_form"]["disagreement"] - out[name]["closed_form"]["error"]
        )
    out["gde_gap"] = out["breaking"]["simulated"]["gde_gap"]
    sweep = []
    for t_r in range(0, 101, 10):  # the paper's Figure 4 in one dimension: how many rare features a model learns
        fm = replace(gde_breaking_model(2), t_r=t_r)
        sweep.append(
            {"t_r": t_r, "error": 1 - float(expected_accuracy(fm)), "disagreement": 1 - float(expected_agreement(fm))}
        )
    out["t_r_sweep"] = sweep
    return out


def _se(correct: np.ndarray) -> float:
    """Standard error of a grand mean over independent models (rows) and independent points (columns)."""
    m, n = correct.shape
    return float(np.sqrt(correct.mean(axis=0).var() / n + correct.mean(axis=1).var() / m))


def _params(fm: FeatureModel) -> dict[str, Any]:
    return {
        k: getattr(fm, k) if k == "pi" else int(getattr(fm, k))
        for k in ("c_d", "c_r", "n_d", "n_r", "t_d", "t_r", "pi", "n_classes")
    }


def text(result: dict[str, Any]) -> str:
    lines = [f"Interaction tensor (γ_corr {result['setup']['corr_threshold']}, γ_data {result['setup']['data_threshold']}; "
             f"{result['setup']['config']} benchmark networks, {result['setup']['checkpoints']} checkpoints, ID test split):"]  # fmt: skip
    for name, d in result["datasets"].items():
        t, p = d["tensor"], d["premise"]
        q = t["frequency_quantiles"]
        lines.append(
            f"  {name}: {d['n_models']} networks, {d['n_samples']} points; {t['n_features']} features "
            f"({t['n_dominant']} dominant, {t['n_rare']} rare), {t['features_per_model']['mean']:.1f} per model, "
            f"{t['features_per_point']:.2f} per point; frequency quantiles 10/50/90%: {q['0.1']:.3f} / {q['0.5']:.3f} / "
            f"{q['0.9']:.3f}; dominant features learned by {t['dominant_learned_by']:.0%} of the models, rare by "
            f"{t['rare_learned_by']:.0%}; accuracy {p['accuracy_with_a_feature']:.3f} on points with a feature of the "
            f"model, {p['accuracy_without'] or float('nan'):.3f} on the {p['points_without_a_feature']:.1%} without"
        )  # fmt: skip
    lines += ["", "Predicted against measured accuracy and agreement (MAE, accuracy points; over models and pairs):",
              f"  {'dataset':<8} {'closed form':>18} {'tensor rule':>18} {'naive GDE':>18}"]  # fmt: skip
    for name, d in result["datasets"].items():
        cells = [
            f"{100 * d['fit'][k]['accuracy_mae']:>8.2f} / {100 * d['fit'][k]['agreement_mae']:>6.2f}"
            for k in ("closed_form", "tensor", "gde")
        ]
        lines.append(f"  {name:<8} " + " ".join(f"{c:>18}" for c in cells))
    lines += [
        "  (accuracy / agreement; naive GDE: accuracy = mean agreement with the others, agreement = the pair's mean accuracy)",
        "",
    ]
    lines.append("Closed forms against Monte-Carlo simulation of the same model:")
    for c in result["simulation_check"]:
        lines.append(f"  {c['name']:<20} accuracy {c['accuracy']['closed_form']:.4f} vs {c['accuracy']['simulated']:.4f} "
                     f"(se {c['accuracy']['se']:.4f}); agreement {c['agreement']['closed_form']:.4f} vs "
                     f"{c['agreement']['simulated']:.4f} (se {c['agreement']['se']:.4f}); max |z| {c['max_abs_z']:.2f}")  # fmt: skip
    b = result["gde_break"]
    lines.append("")
    for name in ("breaking", "holding"):
        s, c = b[name]["simulated"], b[name]["closed_form"]
        lines.append(f"GDE-{name} world: error {s['error']:.4f} (closed form {c['error']:.4f}), disagreement "
                     f"{s['disagreement']:.4f} ({c['disagreement']:.4f}), gap {s['gde_gap']:+.4f} (se {s['se']:.4f}); "
                     f"naive GDE accuracy MAE {100 * s['gde_accuracy_mae']:.2f} points")  # fmt: skip
    lines += ["", *[f"{goal}: {value}" for goal, value in result["goals"].items()]]
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Any]:
    """``interaction.png|svg``: feature frequencies (sorted, per dataset), and error against disagreement as the
    number of rare features learned grows (the GDE-breaking world)."""
    from pathlib import Path

    from ontheline.report.figures import pyplot, save_figure

    _, axes = pyplot().subplots(1, 2, figsize=(10, 3.8))
    for name, d in result["datasets"].items():
        axes[0].plot(d["tensor"]["feature_frequency"], label=name, lw=1.4)
    axes[0].set(yscale="log", xlabel="feature (by frequency)", ylabel="share of points with the feature",
                title="feature frequency is long-tailed")  # fmt: skip
    axes[0].legend(fontsize=8)
    sweep = result["gde_break"]["t_r_sweep"]
    t_r = [r["t_r"] for r in sweep]
    axes[1].plot(t_r, [r["error"] for r in sweep], label="expected error")
    axes[1].plot(t_r, [r["disagreement"] for r in sweep], label="expected disagreement")
    axes[1].set(xlabel="rare features a model learns (of 100)", title="GDE holds at the ends only")
    axes[1].legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(axes[0], Path(folder), "interaction")
