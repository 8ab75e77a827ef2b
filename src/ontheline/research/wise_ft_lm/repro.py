"""WiSE-FT recovers pass@k on a tiny language model (Dang, Baek, Wen, Kolter and Raghunathan, COLM 2025).

Per seed, a character GPT (:func:`ontheline.research.lm.tiny_gpt`) is pretrained on a broad,
imperfect set of arithmetic problems with chains of thought (each line slips by 1-3 with a
small chance, so about 30% of the problems carry a wrong chain), then finetuned (SFT) on a
small fixed set of clean problems for many epochs, with a checkpoint every few steps. Every
checkpoint is sampled ``n = 32`` times per problem at temperature 1 on the validation and the
test problems (disjoint from each other and from the training problems).

The **early checkpoint is chosen on the validation problems**: the SFT step with the best
validation pass@16, averaged over the seeds (the earliest of ties), never on the test problems
every reported number comes from; the late checkpoint is the last. Reported on the test
problems, mean and spread over the seeds: per checkpoint pass@1, pass@{2,4,8,16}, maj@16, the
share of distinct answers and the bias-variance split of pass@k
(:func:`ontheline.research.passk.pass_at_k_decomposition`); WiSE(early, late, alpha) for alpha in
{0.25, 0.5, 0.75}; the late checkpoint at other temperatures.

Goals (the issue's; recorded whatever the outcome, on the seed means): the late checkpoint's
pass@16 below the early one's (diversity collapse); WiSE(0.5) keeps at least 80% of the early
pass@16 with pass@1 at least the late one's minus 2 points; a hotter late checkpoint gains
pass@16 only by losing pass@1; and WiSE(0.5) is above the temperature sweep's pass@1 / pass@16
frontier (no temperature, nor a mix of two adjacent ones, is as good on both).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline._threads import torch_threads
from ontheline.research._spread import pm, spread
from ontheline.research.wise_ft_lm.experiment import ALPHAS, KS, Settings, finish_seed, train_seed

#: The full run: a 2-layer width-64 GPT, 3 seeds, 100 validation and 200 test problems (about 15 minutes on 2 cores).
FULL = Settings()
#: ``--quick``: 2 seeds, 64 validation and 100 test problems (about 7 minutes on 2 cores).
QUICK = replace(FULL, validation_problems=64, test_problems=100)
METRICS = (*(f"pass@{k}" for k in KS), "maj@16", "distinct_answers", "no_answer", "var_pass@1", "bias@16",
           "jensen_gap@16", "never_solved", "always_solved")  # fmt: skip


def run(
    quick: bool = False,
    *,
    seeds: tuple[int, ...] | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train, checkpoint, select on validation, interpolate and score: the JSON object of ``ontheline repro wise-ft-lm``.

    ``quick``: :data:`QUICK` on seeds (0, 1); otherwise :data:`FULL` on seeds (0, 1, 2).
    ``seeds`` and ``settings`` override them (the tests run a miniature).
    """
    with extra("torch"), extra("hf"):
        import torch  # noqa: F401 - the torch extra, checked before any work
        import transformers  # noqa: F401 - the hf extra, checked before any work

    s = settings or (QUICK if quick else FULL)
    seeds = seeds or ((0, 1) if quick else (0, 1, 2))
    began = time.perf_counter()
    with torch_threads(1), tempfile.TemporaryDirectory(prefix="wise-ft-lm-") as root:
        folders = {seed: Path(root) / f"seed-{seed}" for seed in seeds}
        trained = [train_seed(seed, s, folders[seed], progress) for seed in seeds]
        steps = [row["step"] for row in trained[0]["checkpoints"]]
        key = f"pass@{s.select_k}"
        validation = {i: float(np.mean([t["checkpoints"][i]["validation"][key] for t in trained]))
                      for i in range(len(steps))}  # fmt: skip
        early_index = max(validation, key=lambda i: (validation[i], -i))  # the earliest of ties
        early_step, late_step = steps[early_index], steps[-1]
        finished = [finish_seed(seed, s, folders[seed], early_step, late_step, progress) for seed in seeds]
    late = _spreads([t["checkpoints"][-1]["test"] for t in trained])
    temperature = {
        str(t): late if t == 1.0 else _spreads([f["temperature"][str(t)] for f in finished]) for t in s.temperatures
    }
    result: dict[str, Any] = {
        "checkpoints": [
            {
                "step": step,
                **_spreads([t["checkpoints"][i]["test"] for t in trained]),
                "validation": _spreads([t["checkpoints"][i]["validation"] for t in trained]),
            }
            for i, step in enumerate(steps)
        ],
        "pretrained": _spreads([t["pretrained"] for t in trained]),
        "early_step": early_step,
        "late_step": late_step,
        "early_selected_on": "validation",
        "early_selection": f"the SFT checkpoint with the best validation pass@{s.select_k}, averaged over the seeds "
        "(the earliest of ties); the test problems are never used to choose",
        "early_step_per_seed": [
            max(t["checkpoints"], key=lambda r: (r["validation"][key], -r["step"]))["step"] for t in trained
        ],  # fmt: skip
        "early": _spreads([t["checkpoints"][early_index]["test"] for t in trained]),
        "late": late,
        "wise": {str(a): _spreads([f["wise"][str(a)] for f in finished]) for a in ALPHAS},
        "temperature": temperature,
        "seeds": list(seeds),
        "setup": {
            **s.to_dict(),
            "mode": "custom" if settings else "quick" if quick else "full",
            "parameters": trained[0]["parameters"],
            "sizes": trained[0]["sizes"],
            "loss_pretrain_last": spread([t["losses"]["pretrain_last"] for t in trained]),
            "loss_sft_last": spread([t["losses"]["sft_last"] for t in trained]),
        },
        "seconds": {
            "pretrain": spread([t["seconds"]["pretrain"] for t in trained]),
            "sft": spread([t["seconds"]["sft"] for t in trained]),
            "scoring": spread([t["seconds"]["scoring"] + f["seconds"] for t, f in zip(trained, finished)]),
            "total": time.perf_counter() - began,
        },
    }
    result["goals"] = goals(result)
    return result


def _spreads(rows: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    return {name: spread([r[name] for r in rows]) for name in METRICS}


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The four goals on the seed means, each ``{"met": bool, ...the numbers it compares}``.

    Examples
    --------
    >>> point = lambda p1, p16: {"pass@1": {"mean": p1}, "pass@16": {"mean": p16}}
    >>> r = {"early": point(0.4, 0.9), "late": point(0.6, 0.7), "wise": {"0.5": point(0.62, 0.85)},
    ...      "temperature": {"1.0": point(0.6, 0.7), "1.5": point(0.5, 0.8)}}
    >>> {name: g["met"] for name, g in goals(r).items()}
    {'late_pass16_below_early': True, 'wise_keeps_80pct_early_pass16_and_late_pass1': True, 'temperature_trades_pass1_for_pass16': True, 'wise_above_temperature_frontier': True}
    """
    m = {name: (result[name]["pass@1"]["mean"], result[name]["pass@16"]["mean"]) for name in ("early", "late")}
    wise = result["wise"]["0.5"]
    w1, w16 = wise["pass@1"]["mean"], wise["pass@16"]["mean"]
    temps = sorted((float(t), v["pass@1"]["mean"], v["pass@16"]["mean"]) for t, v in result["temperature"].items())
    late1, late16 = m["late"]
    hotter = [(t, p1, p16) for t, p1, p16 in temps if t > 1.0]
    gains = [(t, p1, p16) for t, p1, p16 in hotter if p16 > late16]
    return {
        "late_pass16_below_early": {"met": m["late"][1] < m["early"][1], "late": m["late"][1], "early": m["early"][1]},
        "wise_keeps_80pct_early_pass16_and_late_pass1": {
            "met": w16 >= 0.8 * m["early"][1] and w1 >= late1 - 0.02,
            "wise_pass16_share_of_early": w16 / m["early"][1] if m["early"][1] > 0 else None,
            "wise_pass1_minus_late_pp": 100 * (w1 - late1),
        },
        "temperature_trades_pass1_for_pass16": {
            "met": bool(gains) and all(p1 < late1 for _, p1, _ in gains),
            "hotter_with_more_pass16": [t for t, _, _ in gains],
            "their_pass1_minus_late_pp": [100 * (p1 - late1) for _, p1, _ in gains],
        },
        "wise_above_temperature_frontier": {
            "met": _above_frontier(w1, w16, [(p1, p16) for _, p1, p16 in temps]),
            "wise": [w1, w16],
            "temperatures": {str(t): [p1, p16] for t, p1, p16 in temps},
        },
    }


def _above_frontier(x: float, y: float, points: list[tuple[float, float]]) -> bool:
    """No point, nor a mix of two points (a segment), has pass@1 >= x and pass@16 >= y."""
    for i, (a1, a16) in enumerate(points):
        if a1 >= x and a16 >= y:
            return False
        for b1, b16 in points[i + 1 :]:
            lo, hi = sorted([(a1, a16), (b1, b16)])
            if lo[0] <= x <= hi[0] and hi[0] > lo[0]:
                at = lo[1] + (hi[1] - lo[1]) * (x - lo[0]) / (hi[0] - lo[0])
                if at >= y:
                    return False
    return True


def text(result: dict[str, Any]) -> str:
    """The tables of the reproduction (means ± spread over the seeds), for a terminal or a Markdown page."""
    columns = ["pass@1", "pass@2", "pass@4", "pass@8", "pass@16", "maj@16", "distinct_answers", "var_pass@1",
               "jensen_gap@16"]  # fmt: skip
    rows = [("pretrained (before SFT)", result["pretrained"])]
    rows += [(f"SFT step {c['step']}", c) for c in result["checkpoints"]]
    rows += [
        (f"early = step {result['early_step']}", result["early"]),
        (f"late = step {result['late_step']}", result["late"]),
    ]
    rows += [(f"WiSE alpha={a}", v) for a, v in result["wise"].items()]
    rows += [(f"late, T={t}", v) for t, v in result["temperature"].items()]
    width = max(len(name) for name, _ in rows)
    short = {"distinct_answers": "distinct", "jensen_gap@16": "gap@16"}
    lines = [" ".join([" " * width, *[f"{short.get(c, c):>9}" for c in columns]])]
    lines += [" ".join([name.ljust(width), *[f"{row[c]['mean']:>9.3f}" for c in columns]]) for name, row in rows]
    lines.append("")
    lines.append("pass@1 and pass@16 as mean ± std [min, max] over seeds:")
    for name, row in rows[-(len(result["wise"]) + len(result["temperature"]) + 2) :]:
        lines.append(f"  {name.ljust(width)}  pass@1 {pm(row['pass@1'])}   pass@16 {pm(row['pass@16'])}")
    lines.append("")
    lines += [f"{goal}: {'met' if g['met'] else 'not met'}" for goal, g in result["goals"].items()]
    setup = result["setup"]
    lines.append(
        f"\n{setup['n_layer']}-layer width-{setup['n_embd']} GPT ({setup['parameters']:,} parameters); pretrained "
        f"{setup['pretrain_steps']} steps on {setup['sizes']['pretrain']:,} problems with slips (p={setup['corrupt']} "
        f"per line), finetuned {setup['sft_steps']} steps on {setup['sizes']['sft']} clean problems (batch "
        f"{setup['batch_size']}, a checkpoint every {setup['checkpoint_every']}); {setup['samples']} samples per "
        f"problem on {setup['sizes']['test']} test problems; seeds {result['seeds']}; the early checkpoint "
        f"(step {result['early_step']}) chosen on {setup['sizes']['validation']} validation problems "
        f"(each seed's own choice: {result['early_step_per_seed']})."
    )
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Path]:
    """``wise-ft-lm.png|svg``: pass@k along SFT, and the pass@1 / pass@16 plane (checkpoints, WiSE, temperatures)."""
    from ontheline.report.figures import pyplot, save_figure

    _, (left, right) = pyplot().subplots(1, 2, figsize=(12, 4.4))
    steps = [c["step"] for c in result["checkpoints"]]
    for k in KS:
        left.plot(steps, [c[f"pass@{k}"]["mean"] for c in result["checkpoints"]], marker="o", ms=3, label=f"pass@{k}")
    left.axvline(result["early_step"], color="grey", ls=":", lw=1)
    left.set_xlabel("SFT step")
    left.set_title("test pass@k along SFT (dotted: the early checkpoint, chosen on validation)", fontsize=9)
    left.legend(fontsize=8)
    point = lambda v: (v["pass@1"]["mean"], v["pass@16"]["mean"])  # noqa: E731
    xs, ys = zip(*(point(c) for c in result["checkpoints"]))
    right.plot(xs, ys, color="grey", marker="o", ms=3, lw=1, label="SFT checkpoints")
    tx, ty = zip(*(point(v) for v in result["temperature"].values()))
    right.plot(tx, ty, color="tab:red", marker="s", label="late, temperature sweep")
    for t, v in result["temperature"].items():
        right.annotate(f"T={t}", point(v), fontsize=7, xytext=(3, -8), textcoords="offset points")
    wx, wy = zip(*(point(v) for v in [result["early"], *result["wise"].values(), result["late"]]))
    right.plot(wx, wy, color="tab:blue", marker="D", label="WiSE(early, late, alpha)")
    right.set_xlabel("pass@1")
    right.set_ylabel("pass@16")
    right.set_title("test pass@1 against pass@16 (up and right is better)", fontsize=9)
    right.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(left, Path(folder), "wise-ft-lm")
