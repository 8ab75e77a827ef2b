"""Specialized pretraining and its overfitting law: ``ontheline repro spt [--quick]`` (Baek et al., 2026, arXiv:2603.16177).

Per seed (:func:`~ontheline.research.spt.experiment.run_seed`): a tiny GPT of the lab
pretrained at each domain fraction delta in {0, 2, 5, 10, 20}% on the mixer's batches (WSD
schedule; checkpoints every ``every`` steps before the decay, and the last, are the budgets
T), then finetuned on the domain alone from the checkpoints of ``ft_budgets`` with a
two-value learning-rate grid and early stopping on the domain validation split (the only
selection). Reported on the domain test split, mean over seeds (and per seed): the
post-finetuning loss per delta and budget, R_gain against delta = 0, the forgetting (general
loss rise during finetuning), the compute multiplier of the best delta, and the best delta per
budget. The overfitting law is fitted on the seed-mean pretraining curves of 0 < delta <= 10%
and checked on the 20% curve (relative error at every budget) and its overfitting onset (the
measured minimum of the test curve, refined by a parabola in log T).

Goals (the issue's, recorded whatever the outcome):

1. some delta > 0 beats delta = 0 after finetuning at the largest budget with R_gain > 0.5%
   and less forgetting;
2. the best delta (lowest post-finetuning loss) shrinks as the budget grows: smaller at the
   largest budget than at the smallest;
3. the law fitted on delta <= 10% predicts the 20% test curve within 5% relative error (at
   every budget) and its overfitting onset within 10%.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline._threads import torch_threads
from ontheline.research.spt.experiment import Config, run_seed
from ontheline.research.spt.law import (
    fit_correction,
    fit_law,
    measured_onset,
    optimal_delta,
    overfitting_onset,
)
from ontheline.research.spt.metrics import compute_multiplier, relative_gain

#: The full run's sizes (seeds 1 and 2).
FULL = Config()
#: ``--quick``: one seed, fewer checkpoints to finetune from.
QUICK = replace(FULL, ft_budgets=(200, 1600))
#: The law is fitted on 0 < delta <= FIT_MAX and checked on HELD_OUT.
FIT_MAX, HELD_OUT = 0.1, 0.2


def run(
    quick: bool = False,
    *,
    seeds: tuple[int, ...] | None = None,
    config: Config | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The sweep, its measures, the law and the goals: the JSON of ``ontheline repro spt``.

    ``quick``: :data:`QUICK` on seed 1; otherwise :data:`FULL` on seeds (1, 2) (seed 0 was
    the pilot's). ``seeds`` and ``config`` override them (the tests run a miniature).
    """
    with extra("torch"), extra("hf"):
        import torch  # noqa: F401 - the torch extra, checked before any work
        import transformers  # noqa: F401 - the hf extra, checked before any work

    c = config or (QUICK if quick else FULL)
    seeds = tuple(seeds or ((1,) if quick else (1, 2)))
    began = time.perf_counter()
    with torch_threads(1):
        per_seed = [run_seed(seed, c, progress) for seed in seeds]
    result = summarize(per_seed, c)
    result["setup"] = {"mode": "custom" if config else "quick" if quick else "full", "config": c.to_dict()}
    result["seconds"] = {"per_seed": [r["seconds"] for r in per_seed], "total": time.perf_counter() - began}
    return result


def _mean(per_seed: list[dict[str, Any]], delta: str, key: str) -> np.ndarray:
    return np.mean([r["runs"][delta][key] for r in per_seed], axis=0)


def _post(per_seed: list[dict[str, Any]], delta: str, budgets: list[int], key: str = "test") -> np.ndarray:
    """(n_seeds, n_ft_budgets) of one finetuning number."""
    return np.array([[r["runs"][delta]["ft"][str(b)][key] for b in budgets] for r in per_seed])


def summarize(per_seed: list[dict[str, Any]], c: Config) -> dict[str, Any]:
    """The JSON from the per-seed runs of :func:`~ontheline.research.spt.experiment.run_seed`."""
    deltas = [float(d) for d in c.deltas]
    keys = [str(d) for d in c.deltas]
    ft_steps = list(c.ft_budgets)
    ft_tokens = [s * c.tokens_per_step for s in ft_steps]
    tokens = [s * c.tokens_per_step for s in c.budgets]
    npt = keys[deltas.index(0.0)] if 0.0 in deltas else None
    post = {k: _post(per_seed, k, ft_steps) for k in keys}
    post_val = {k: _post(per_seed, k, ft_steps, "val") for k in keys}
    forget = {k: _post(per_seed, k, ft_steps, "forgetting") for k in keys}
    general_after = {k: _post(per_seed, k, ft_steps, "general") for k in keys}
    out: dict[str, Any] = {
        "deltas": deltas,
        "budgets": ft_tokens,
        "budget_steps": ft_steps,
        "seeds": [r["seed"] for r in per_seed],
        "selected_on": "domain validation split",
        "domain_tokens": per_seed[0]["domain_tokens"],
        "entropy": per_seed[0]["entropy"],
        "post_ft_loss": {k: post[k].mean(axis=0).tolist() for k in keys},
        "post_ft_loss_per_seed": {k: post[k].tolist() for k in keys},
        "post_ft_val_loss": {k: post_val[k].mean(axis=0).tolist() for k in keys},
        "forgetting": {k: forget[k].mean(axis=0).tolist() for k in keys},
        "general_after_ft": {k: general_after[k].mean(axis=0).tolist() for k in keys},
        "ft_chosen_lr": {k: _post(per_seed, k, ft_steps, "lr").tolist() for k in keys},
        "ft_best_step": {k: _post(per_seed, k, ft_steps, "best_step").tolist() for k in keys},
        "pretraining": {
            "tokens": tokens,
            "steps": c.budgets,
            **{
                k: {
                    name: _mean(per_seed, k, name).tolist()
                    for name in ("domain_train", "domain_val", "domain_test", "general", "epochs", "domain_tokens")
                }
                for k in keys
            },
        },  # fmt: skip
    }
    if npt is not None:
        last = -1
        out["r_gain"] = {k: float(np.mean(relative_gain(post[npt][:, last], post[k][:, last]))) for k in keys}
        out["r_gain_per_seed"] = {k: relative_gain(post[npt][:, last], post[k][:, last]).tolist() for k in keys}
        out["r_gain_by_budget"] = {k: relative_gain(post[npt].mean(0), post[k].mean(0)).tolist() for k in keys}
        spt_keys = [k for k in keys if k != npt]
        # the delta whose multiplier is reported is chosen on validation, never on the test split
        best = min(spt_keys, key=lambda k: post_val[k].mean(0)[last]) if spt_keys else npt
        cm = compute_multiplier(ft_tokens, post[npt].mean(0), post[best].mean(0)) if len(ft_tokens) > 1 else None
        out["compute_multiplier"] = cm["multiplier"] if cm else float("nan")
        out["compute_multiplier_detail"] = {"delta": float(best), **(cm or {})}
    out["best_delta"] = {str(t): deltas[int(np.argmin([post[k].mean(0)[i] for k in keys]))]
                         for i, t in enumerate(ft_tokens)}  # fmt: skip
    out["best_delta_pretraining"] = {
        str(t): deltas[int(np.argmin([out["pretraining"][k]["domain_test"][i] for k in keys]))]
        for i, t in enumerate(tokens)
    }
    out["law"] = law_summary(out, c)
    out["goals"] = goals(out)
    return out


def law_summary(out: dict[str, Any], c: Config) -> dict[str, Any]:
    """The law fitted on 0 < delta <= 10% (checked on 20%) and on every delta > 0 (its best delta per budget).

    Only the constant-learning-rate checkpoints enter the law (all budgets but the last, which
    comes after the WSD decay and drops the loss by a step no power law in T describes); the
    held-out curve and the onsets are compared on the same budgets.
    """
    pt = out["pretraining"]
    n = len(pt["tokens"]) - 1  # the constant-rate checkpoints
    tokens = np.array(pt["tokens"][:n], dtype=float)
    spt = [d for d in out["deltas"] if d > 0]
    fit_d = [d for d in spt if d <= FIT_MAX + 1e-12]
    if len(fit_d) < 2:
        return {"params": {}, "r2": float("nan"), "heldout_delta_max_rel_error": float("nan"), "note": "too few deltas"}

    def curves(ds: list[float]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([pt[str(d)]["domain_train"][:n] for d in ds]),
                np.array([pt[str(d)]["domain_test"][:n] for d in ds]))  # fmt: skip

    law = fit_law(tokens, fit_d, *curves(fit_d))
    summary: dict[str, Any] = {**law.to_dict(), "fitted_deltas": fit_d, "fitted_tokens": tokens.tolist()}
    summary["predicted_test"] = {str(d): law.test(tokens, d).tolist() for d in spt}
    onsets = {}
    for d in spt:
        measured = measured_onset(tokens, pt[str(d)]["domain_test"][:n])
        predicted = overfitting_onset(law, d)
        onsets[str(d)] = {"measured": measured, "predicted": predicted if np.isfinite(predicted) else None,
                          "rel_error": abs(predicted - measured) / measured
                          if measured is not None and np.isfinite(predicted) else None}  # fmt: skip
    summary["onset"] = onsets
    held = HELD_OUT if HELD_OUT in spt else None
    if held is not None:
        truth = np.array(pt[str(held)]["domain_test"][:n])
        summary["heldout_delta"] = held
        summary["heldout_delta_max_rel_error"] = float(np.max(np.abs(law.test(tokens, held) - truth) / truth))
    else:
        summary["heldout_delta_max_rel_error"] = float("nan")
    # every delta > 0: the law behind the predicted best delta, with the finetuning correction per delta
    if len(spt) >= 2:
        full = fit_law(tokens, spt, *curves(spt))
        summary["all_deltas"] = full.to_dict()
        # only the constant-rate finetuning budgets: the law describes those checkpoints, not the decayed last one
        kept = [i for i, t in enumerate(out["budgets"]) if t in pt["tokens"][:n]]
        ft_tokens = np.array([out["budgets"][i] for i in kept], dtype=float)
        if len(ft_tokens) < 2:
            summary["best_delta_predicted_note"] = "fewer than 2 finetuning budgets before the learning-rate decay"
        else:
            at = [pt["tokens"].index(int(t)) for t in ft_tokens]
            corrections = {d: fit_correction(ft_tokens, np.array(pt[str(d)]["domain_test"])[at]
                                             - np.array(out["post_ft_loss"][str(d)])[kept], t_ref=full.t_ref)
                           for d in spt}  # fmt: skip
            grid = np.round(np.arange(0.01, 0.2501, 0.01), 4)
            summary["best_delta_predicted"] = {str(int(t)): optimal_delta(full, t, grid, corrections)[0]
                                               for t in ft_tokens}  # fmt: skip
            summary["corrections"] = {str(d): list(v) for d, v in corrections.items()}
    return summary


def goals(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's three SPT goals, each ``{"met": bool, ...the numbers}``."""
    g: dict[str, dict[str, Any]] = {}
    if "r_gain" in out:
        npt = next(k for k in out["r_gain"] if float(k) == 0.0)
        forget_npt = out["forgetting"][npt][-1]
        cands = {k: {"r_gain": v, "forgetting": out["forgetting"][k][-1]} for k, v in out["r_gain"].items() if k != npt}
        winners = [k for k, v in cands.items() if v["r_gain"] > 0.5 and v["forgetting"] < forget_npt]
        g["spt_beats_npt_after_ft_with_less_forgetting"] = {
            "met": bool(winners), "deltas_meeting": [float(k) for k in winners], "npt_forgetting": forget_npt,
            "by_delta": cands, "threshold_r_gain_percent": 0.5,
        }  # fmt: skip
    best = out["best_delta"]
    budgets = list(best)
    g["best_delta_shrinks_with_budget"] = {
        "met": len(budgets) > 1 and best[budgets[-1]] < best[budgets[0]],
        "best_delta": best, "pretraining_best_delta": out["best_delta_pretraining"],
    }  # fmt: skip
    law = out["law"]
    err = law.get("heldout_delta_max_rel_error", float("nan"))
    onset = law.get("onset", {}).get(str(HELD_OUT), {})
    onset_err = onset.get("rel_error")
    g["law_predicts_heldout_delta"] = {
        "met": bool(np.isfinite(err) and err < 0.05 and onset_err is not None and onset_err < 0.10),
        "curve_max_rel_error": err, "curve_met": bool(np.isfinite(err) and err < 0.05),
        "onset_measured": onset.get("measured"), "onset_predicted": onset.get("predicted"), "onset_rel_error": onset_err,
        "onset_met": bool(onset_err is not None and onset_err < 0.10),
    }  # fmt: skip
    return g


def text(result: dict[str, Any]) -> str:
    """The tables: pretraining curves, post-finetuning loss and forgetting per delta, the law, the goals."""
    lines = []
    pt = result["pretraining"]
    keys = [str(d) for d in result["deltas"]]
    lines.append("Pretraining (seed mean): domain train / test loss and general loss at each budget (tokens)")
    lines.append(f"  {'delta':>6} {'':>6} " + " ".join(f"{t:>8}" for t in pt["tokens"]))
    for k in keys:
        for name, label in (("domain_train", "train"), ("domain_test", "test"), ("general", "gen")):
            lines.append(f"  {k:>6} {label:>6} " + " ".join(f"{x:8.4f}" for x in pt[k][name]))
    lines.append("")
    lines.append("After finetuning on the domain (best validation; seed mean): domain test loss | forgetting")
    lines.append(f"  {'delta':>6} " + " ".join(f"{t:>18}" for t in result["budgets"]))
    for k in keys:
        lines.append(f"  {k:>6} " + " ".join(f"{x:9.4f} | {f:+6.3f}"
                                             for x, f in zip(result["post_ft_loss"][k], result["forgetting"][k])))  # fmt: skip
    if "r_gain" in result:
        lines.append(
            "R_gain at the largest budget (%): " + ", ".join(f"{k}: {v:+.2f}" for k, v in result["r_gain"].items())
        )
        cm = result["compute_multiplier_detail"]
        lines.append(f"compute multiplier (delta={cm['delta']}): {result['compute_multiplier']:.2f}"
                     + (" (a lower bound)" if cm.get("lower_bound") else ""))  # fmt: skip
    lines.append("best delta per budget (post-FT): " + ", ".join(f"{t}: {d}" for t, d in result["best_delta"].items()))
    law = result["law"]
    if law.get("params"):
        lines.append(f"law fitted on {law['fitted_deltas']}: R2 {law['r2']:.4f} (test {law['r2_test']:.4f}); "
                     f"held-out delta {law.get('heldout_delta')} max relative error "
                     f"{law['heldout_delta_max_rel_error']:.3f}")  # fmt: skip
        for d, o in law["onset"].items():
            lines.append(f"  onset delta={d}: measured {o['measured']}, predicted {o['predicted']}")
        if "best_delta_predicted" in law:
            lines.append("  law's best delta per budget (post-FT): " + str(law["best_delta_predicted"]))
    lines.append("")
    lines += [f"{name}: {'met' if v['met'] else 'not met'}" for name, v in result["goals"].items()]
    lines.append(f"seeds {result['seeds']}; {result.get('seconds', {}).get('total', float('nan')):.0f} s in all.")
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Path]:
    """``spt.png|svg``: domain test loss vs T per delta with the law's curves, and post-FT loss vs delta per budget."""
    from ontheline.report.figures import pyplot, save_figure

    _, (left, right) = pyplot().subplots(1, 2, figsize=(12, 4.4))
    pt = result["pretraining"]
    tokens = np.array(pt["tokens"], dtype=float)
    law = result["law"]
    for d in result["deltas"]:
        k = str(d)
        if d == 0:  # NPT never trains on the domain: its domain loss climbs far off this scale
            continue
        line = left.plot(tokens, pt[k]["domain_test"], marker="o", ms=3, label=f"delta={d:g}")[0]
        if k in law.get("predicted_test", {}):
            style = "--" if d <= FIT_MAX + 1e-12 else ":"
            left.plot(law["fitted_tokens"], law["predicted_test"][k], ls=style, color=line.get_color())
    left.set_xscale("log")
    left.set_xlabel("pretraining tokens T")
    left.set_ylabel("domain test loss (nats)")
    left.set_title("pretraining (delta = 0 off the scale); dashed: law fitted on delta <= 10%, dotted: its prediction",
                   fontsize=8)  # fmt: skip
    left.legend(fontsize=8)
    for t in result["budgets"]:
        right.plot(result["deltas"], [result["post_ft_loss"][str(d)][result["budgets"].index(t)] for d in result["deltas"]],
                   marker="o", label=f"T={t}")  # fmt: skip
    right.set_xlabel("domain fraction delta")
    right.set_ylabel("domain test loss after finetuning")
    right.set_title("post-finetuning loss per budget (seed mean)", fontsize=9)
    right.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(left, Path(folder), "spt")
