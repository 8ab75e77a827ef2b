"""Context-parametric inversion: ``ontheline repro cpi [--quick]`` (Goyal, Baek, Kolter and Raghunathan, ICLR 2025).

Two models, both tracked along instruction finetuning (IFT) with a share ``p`` of
non-context-critical examples, on held-out known facts with counterfactual contexts:

- the one-layer attention model of :mod:`~ontheline.research.cpi.theory` (full-batch
  gradient descent), at p in {0, 0.5, 0.8} and with its mitigations (curation p = 0, 20%
  counterfactual augmentation, training only ``W_KQ``);
- a tiny GPT in the lab's fact world (:mod:`~ontheline.research.cpi.lm`): pretrained
  closed-book on the facts, finetuned at p in {0, 0.5, 0.8}, and the mitigation arms at
  p = 0.8 (curation is the p = 0 run; augmentation adds 20% counterfactual examples;
  attention-only freezes every weight outside the attention blocks).

Reliance is the share of conflicts answered with the context's value, among the items the
pretrained model answers correctly closed-book (the knowledge filter). Nothing is chosen on
the evaluated items: the sizes and steps were set by pilots on seed 0 before the recorded run
and every arm reports every checkpoint.

Goals (the issue's): for the theory model and the LM at p >= 0.5, reliance rises then falls
by at least 10 points with the maximum not at the last checkpoint, while non-conflict accuracy
keeps rising (final >= its value at the peak); at p = 0 no fall (at most 3 points); each
mitigation's fall smaller than the p = 0.8 baseline's.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ontheline._progress import Progress
from ontheline.research.cpi.lm import LMConfig, run_lm
from ontheline.research.cpi.theory import TheoryConfig, train_theory

PS = (0.0, 0.5, 0.8)
#: The full run's LM sizes; ``--quick`` uses :data:`QUICK_LM`.
FULL_LM = LMConfig()
QUICK_LM = replace(FULL_LM, pretrain_steps=600, ift_steps=200, every=40)
THEORY = TheoryConfig()


def run(
    quick: bool = False,
    *,
    seed: int = 0,
    lm_config: LMConfig | None = None,
    theory_config: TheoryConfig | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the theory model and the tiny LM: the JSON object of ``ontheline repro cpi``."""
    began = time.perf_counter()
    tc = theory_config or THEORY
    theory = {str(p): train_theory(p, config=tc, seed=seed) for p in PS}
    top = str(max(PS))
    theory_arms = {
        "curation": theory["0.0"],
        "augmentation": train_theory(max(PS), augment=0.2, config=tc, seed=seed),
        "attention_only": train_theory(max(PS), config=replace(tc, train=("kq",)), seed=seed),
    }
    theory_seconds = time.perf_counter() - began
    lc = lm_config or (QUICK_LM if quick else FULL_LM)
    lm = run_lm(lc, PS, seed, progress=progress)
    result: dict[str, Any] = {
        "theory": {**theory[top], "by_p": theory, "mitigations": theory_arms},
        "lm": lm["lm"],
        "mitigations": lm["mitigations"],
        "seed": seed,
        "setup": {
            "mode": "custom" if lm_config else "quick" if quick else "full",
            "lm": lc.to_dict(),
            "theory": tc.to_dict(),
            "theory_p": max(PS),
        },  # fmt: skip
        "seconds": {
            "theory": theory_seconds,
            "lm_pretrain": lm["pretrain_seconds"],
            "total": time.perf_counter() - began,
        },  # fmt: skip
    }
    result["goals"] = goals(result)
    return result


def fall(reliance: list[float]) -> dict[str, Any]:
    """The rise-then-fall of one reliance curve: its peak, the fall from the peak to the end, and the rise before it.

    Examples
    --------
    >>> fall([0.2, 0.7, 0.5])
    {'peak': 0.7, 'peak_index': 1, 'final': 0.5, 'fall': 0.2, 'rise': 0.5, 'peak_not_last': True}
    """
    peak_index = max(range(len(reliance)), key=lambda i: (reliance[i], -i))
    peak, final = reliance[peak_index], reliance[-1]
    return {"peak": peak, "peak_index": peak_index, "final": final, "fall": round(peak - final, 12),
            "rise": round(peak - reliance[0], 12), "peak_not_last": peak_index < len(reliance) - 1}  # fmt: skip


def _inverts(curve: dict[str, Any]) -> dict[str, Any]:
    f = fall(curve["reliance"])
    non = curve["nonconflict_accuracy"]
    keeps_rising = non[-1] >= non[f["peak_index"]]
    return {"met": f["fall"] >= 0.10 and f["peak_not_last"] and f["rise"] > 0 and keeps_rising, **f,
            "nonconflict_at_peak": non[f["peak_index"]], "nonconflict_final": non[-1]}  # fmt: skip


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's goals, each ``{"met": bool, ...the numbers}``.

    Examples
    --------
    >>> up = {"reliance": [0.2, 0.5, 0.6], "nonconflict_accuracy": [0.5, 0.8, 0.9]}
    >>> inv = {"reliance": [0.2, 0.8, 0.6], "nonconflict_accuracy": [0.5, 0.8, 0.9]}
    >>> r = {"theory": {"by_p": {"0.0": up, "0.5": inv, "0.8": inv}, "mitigations": {"a": up}},
    ...      "lm": {"0.0": up, "0.5": up, "0.8": inv}, "mitigations": {"a": up}}
    >>> {k: v["met"] for k, v in goals(r).items()}
    {'theory_inverts_at_p_0.5': True, 'theory_inverts_at_p_0.8': True, 'theory_no_fall_at_p_0': True, 'theory_mitigations_shrink_the_fall': True, 'lm_inverts_at_p_0.5': False, 'lm_inverts_at_p_0.8': True, 'lm_no_fall_at_p_0': True, 'lm_mitigations_shrink_the_fall': True}
    """
    out: dict[str, dict[str, Any]] = {}
    for name, by_p, arms in (("theory", result["theory"]["by_p"], result["theory"]["mitigations"]),
                             ("lm", result["lm"], result["mitigations"])):  # fmt: skip
        for p in ("0.5", "0.8"):
            out[f"{name}_inverts_at_p_{p}"] = _inverts(by_p[p])
        zero = fall(by_p["0.0"]["reliance"])
        out[f"{name}_no_fall_at_p_0"] = {"met": zero["fall"] <= 0.03, "fall": zero["fall"]}
        base = fall(by_p["0.8"]["reliance"])["fall"]
        falls = {arm: fall(curve["reliance"])["fall"] for arm, curve in arms.items()}
        out[f"{name}_mitigations_shrink_the_fall"] = {
            "met": base > 0 and all(f < base for f in falls.values()), "baseline_fall": base, "falls": falls
        }  # fmt: skip
    return out


def text(result: dict[str, Any]) -> str:
    """Reliance (and non-conflict accuracy) per checkpoint for every arm, then the goals."""
    lines = []

    def table(title: str, curves: dict[str, dict[str, Any]]) -> None:
        lines.append(title)
        for name, c in curves.items():
            lines.append(f"  {name:<16} steps      " + " ".join(f"{s:>5}" for s in c["steps"]))
            lines.append(f"  {'':<16} reliance   " + " ".join(f"{x:5.2f}" for x in c["reliance"]))
            lines.append(f"  {'':<16} nonconflict" + " ".join(f"{x:5.2f}" for x in c["nonconflict_accuracy"]))
        lines.append("")

    table("Theory model (one-layer attention, gradient descent), by p:",
          {f"p={p}": c for p, c in result["theory"]["by_p"].items()})  # fmt: skip
    table("Theory model, mitigations at p=0.8:", result["theory"]["mitigations"])
    table("Tiny LM, by p (reliance on known conflicts):", {f"p={p}": c for p, c in result["lm"].items()})
    table("Tiny LM, mitigations at p=0.8:", result["mitigations"])
    lines += [f"{goal}: {'met' if g['met'] else 'not met'}" for goal, g in result["goals"].items()]
    known = result["lm"][next(iter(result["lm"]))]
    lines.append(f"\nknowledge filter: {known['known_items']} of {known['evaluated_items']} evaluated facts known "
                 f"closed-book; seed {result['seed']}; {result['seconds']['total']:.0f} s in all.")  # fmt: skip
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Path]:
    """``cpi.png|svg``: reliance along finetuning, theory model and tiny LM, every arm."""
    from ontheline.report.figures import pyplot, save_figure

    _, (left, right) = pyplot().subplots(1, 2, figsize=(12, 4.4))
    for ax, by_p, arms, title in ((left, result["theory"]["by_p"], result["theory"]["mitigations"], "theory model"),
                                  (right, result["lm"], result["mitigations"], "tiny LM")):  # fmt: skip
        for p, c in by_p.items():
            ax.plot(c["steps"], c["reliance"], marker="o", ms=3, label=f"p={p}")
        for name, c in arms.items():
            if name != "curation":
                ax.plot(c["steps"], c["reliance"], ls="--", label=f"p=0.8, {name}")
        ax.set_xlabel("finetuning step")
        ax.set_ylabel("reliance (context answers on known conflicts)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(left, Path(folder), "cpi")
