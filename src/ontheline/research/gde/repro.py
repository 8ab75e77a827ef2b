"""GDE's gap against the ensemble's calibration error on every zoo and shift of the benchmark.

Jiang, Nagarajan, Baek and Kolter (ICLR 2022), Theorem 4.2: |E[Dis] − E[Err]| <= CACE, the
class-aggregated calibration error of the ensemble that votes with every model of the zoo.
For each dataset, zoo (the whole zoo and its neural and non-neural parts) and evaluation set
(ID validation, ID test, every shift), from the benchmark's stored predictions (trained and
stored first when missing): the gap, CACE on the exact level sets (where the theorem holds
exactly for the labelled points), CACE in the paper's 15 bins, and the mean softmax's CACE.
Default: the quick configuration (``ontheline demo``'s zoo); ``--quick``: the tiny one.

Goal (a theorem): the bound holds on every row; a violation is a bug.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ontheline._progress import Progress
from ontheline.estimators import PAPER_BINS, gde_diagnostics


def run(quick: bool = False, *, progress: Progress | None = None, store: Any = None) -> dict[str, Any]:
    """The JSON object of ``ontheline repro gde``: one row per dataset, zoo and evaluation set."""
    from ontheline.bench.config import CONFIGS
    from ontheline.bench.predict import zoo_predictions

    config = CONFIGS["tiny" if quick else "quick"]
    rows: list[dict[str, Any]] = []
    for dataset in config.datasets:
        preds, from_store = zoo_predictions(config, dataset, store=store, progress=progress)
        for zoo, mask in preds.zoo_parts().items():
            for split, probs in preds.probs.items():
                d = gde_diagnostics(probs[mask], preds.labels[split])
                distinct_gap = abs(d.expected_disagreement_distinct - d.expected_error)
                rows.append({
                    "dataset": dataset, "shift": split, "zoo": zoo, "n_models": d.n_models, "gde_gap": d.gap,
                    "signed_gap": d.signed_gap, "cace": d.cace, "cace_binned": d.cace_binned, "softmax_cace": d.softmax_cace,
                    "cwce": d.cwce, "expected_error": d.expected_error, "expected_disagreement": d.expected_disagreement,
                    "gde_gap_distinct_pairs": distinct_gap, "bound_holds": d.bound_holds,
                    "bound_holds_binned": d.bound_holds_binned, "from_store": from_store,
                })  # fmt: skip
    gap = np.array([r["gde_gap"] for r in rows])
    cace = np.array([r["cace"] for r in rows])
    summary = {
        "rows": len(rows),
        "violations": sum(not r["bound_holds"] for r in rows),
        "violations_binned": sum(not r["bound_holds_binned"] for r in rows),
        "gap_over_half_cace": int((gap > cace / 2 + 1e-12).sum()),
        "distinct_pairs_gap_over_cace": sum(r["gde_gap_distinct_pairs"] > r["cace"] for r in rows),
        "max_gap_over_cace": float((gap / np.maximum(cace, 1e-12)).max()),
        "mean_gap": float(gap.mean()),
        "mean_cace": float(cace.mean()),
        "gap_cace_correlation": float(np.corrcoef(gap, cace)[0, 1]) if len(rows) > 2 and np.ptp(cace) > 0 else None,
    }
    return {
        "config": config.name,
        "bins": PAPER_BINS,
        "rows": rows,
        "summary": summary,
        "goals": {"bound_holds_everywhere": summary["violations"] == 0},
    }


def text(result: dict[str, Any]) -> str:
    lines = [f"GDE gap |E[Dis] - E[Err]| against CACE (vote ensemble; {result['config']} benchmark), whole zoo:",
             f"  {'dataset':<7} {'set':<18} {'models':>6} {'E[Err]':>7} {'E[Dis]':>7} {'gap':>7} {'CACE':>7} "
             f"{'CACE/15b':>8} {'softmax':>8} {'holds':>6}"]  # fmt: skip
    for r in result["rows"]:
        if r["zoo"] != "all":
            continue
        softmax = "" if r["softmax_cace"] is None else f"{r['softmax_cace']:.4f}"
        lines.append(f"  {r['dataset']:<7} {r['shift']:<18} {r['n_models']:>6} {r['expected_error']:>7.4f} "
                     f"{r['expected_disagreement']:>7.4f} {r['gde_gap']:>7.4f} {r['cace']:>7.4f} {r['cace_binned']:>8.4f} "
                     f"{softmax:>8} {'yes' if r['bound_holds'] else 'NO':>6}")  # fmt: skip
    s = result["summary"]
    corr = "n/a" if s["gap_cace_correlation"] is None else f"{s['gap_cace_correlation']:.2f}"
    lines += [
        "",
        f"All zoos (whole, neural, non-neural) and sets: {s['rows']} rows; the bound |gap| <= CACE fails on "
        f"{s['violations']} (exact level sets) and on {s['violations_binned']} with the paper's {result['bins']} bins; "
        f"|gap| > CACE/2 on {s['gap_over_half_cace']}; largest gap/CACE {s['max_gap_over_cace']:.3f}; mean gap "
        f"{s['mean_gap']:.4f}, mean CACE {s['mean_cace']:.4f}; correlation of gap and CACE over rows {corr}.",
        f"E[Dis] is over two models drawn with replacement (Theorem 4.2's); over distinct pairs (what the GDE "
        f"estimator averages) the gap exceeds CACE on {s['distinct_pairs_gap_over_cace']} rows.",
        "",
        *[f"{goal}: {value}" for goal, value in result["goals"].items()],
    ]
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Any]:
    """``gde-cace.png|svg``: each row's gap against its CACE, with the bound (y = x) and the half bound."""
    from pathlib import Path

    from ontheline.report.figures import pyplot, save_figure

    _, ax = pyplot().subplots(figsize=(5, 4.2))
    for zoo, color in (("all", "#1f77b4"), ("neural", "#2ca02c"), ("non-neural", "#e6550d")):
        rows = [r for r in result["rows"] if r["zoo"] == zoo]
        ax.scatter([r["cace"] for r in rows], [r["gde_gap"] for r in rows], s=12, color=color, label=zoo, alpha=0.7)
    top = max(r["cace"] for r in result["rows"])
    ax.plot([0, top], [0, top], color="#999", ls="--", lw=1, label="|gap| = CACE (Theorem 4.2)")
    ax.plot([0, top], [0, top / 2], color="#999", ls=":", lw=1, label="|gap| = CACE / 2")
    ax.set(
        xlabel="CACE of the vote ensemble", ylabel="|E[Dis] - E[Err]|", title=f"GDE on the {result['config']} benchmark"
    )
    ax.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(ax, Path(folder), "gde-cace")
