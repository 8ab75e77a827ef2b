"""Progressive confidence shaping against outcome-only GRPO on digit sums (Gai et al., 2026, arXiv:2605.24396).

Per seed and task (hard: the sum mod 10 of 8 digits; easy: of 3), a character GPT
(:func:`ontheline.research.lm.tiny_gpt`) is made a base policy in two stages: pretraining on
progressive traces (running sums) until its validation pass@1 reaches 0.9 (checked every 500
steps; the capability), then SFT on a mixture in which only a share of the traces are progressive
and the rest premature (``GUESS`` the last digit, filler, ``ANS`` the guess: right one time in
ten), plus forced-answer examples (a trace cut anywhere, then ``ANS`` and what the trace knows so
far), which teach the model to answer where the probe cuts. From that base, GRPO runs twice:
with the outcome reward alone (eta = 0) and with the PCS penalty (eta = 1, the exact probe, 6
points, against the gold answer, subtracted from the reward before the group normalisation).

Every ``eval_every`` GRPO steps the policy is scored on the validation problems; **each arm's
checkpoint is the one with the best validation pass@1** (the earliest of ties), and the
pretraining stops on validation too: the test problems are never used to choose. Reported on
the test problems (disjoint from every training and validation prompt), mean and spread over the
seeds: pass@1 (4 samples per problem at temperature 1), the share of sampled completions whose
confidence trajectory (own answer, 11 points, exact probe, ranks at resolution 0.1) is
progressive (Spearman rho >= 0.4), and the mean overconfidence score ``<c, w>``; also the share
of premature (``GUESS``) traces.

Goals (the issue's; recorded whatever the outcome, on the seed means): on the hard task PCS beats
outcome-only GRPO by at least 5 points of pass@1 with a higher progressive fraction; the gap is
smaller on the easy task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline._threads import torch_threads
from ontheline.research._spread import pm, spread
from ontheline.research.confidence.experiment import ARMS, TASKS, Settings, run_seed

#: The full run: 3 seeds, 150 GRPO steps per arm, 100 validation and 200 test problems per task.
FULL = Settings(grpo_steps=150, eval_every=25, validation_problems=100, test_problems=200)
#: ``--quick``: 2 seeds, 80 GRPO steps per arm, 64 validation and 100 test problems per task.
QUICK = Settings()
#: The numbers reported per arm (means and spreads over the seeds).
METRICS = ("pass@1", "progressive_fraction", "overconfidence", "guess_share")


def run(
    quick: bool = False,
    *,
    seeds: tuple[int, ...] | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Base policies, GRPO with and without PCS, selection on validation: the JSON of ``ontheline repro pcs``.

    ``quick``: :data:`QUICK` on seeds (0, 1); otherwise :data:`FULL` on seeds (0, 1, 2).
    ``seeds`` and ``settings`` override them (the tests run a miniature).
    """
    with extra("torch"), extra("hf"):
        import torch  # noqa: F401 - the torch extra, checked before any work
        import transformers  # noqa: F401 - the hf extra, checked before any work

    s = settings or (QUICK if quick else FULL)
    seeds = seeds or ((0, 1) if quick else (0, 1, 2))
    began = time.perf_counter()
    with torch_threads(1):
        runs = [run_seed(seed, s, progress) for seed in seeds]
    tasks: dict[str, Any] = {}
    for name in TASKS:
        per = [r["tasks"][name] for r in runs]
        tasks[name] = {
            "digits": TASKS[name],
            "base": _spreads([p["base"] for p in per]),
            **{
                arm: {
                    **_spreads([p[arm] for p in per]),
                    "step_per_seed": [p[arm]["step"] for p in per],
                    "validation_curve_per_seed": [p[arm]["curve"] for p in per],
                }
                for arm in ARMS
            },  # fmt: skip
            "pretrain_steps_per_seed": [p["pretrain_steps"] for p in per],
            "pretrained_validation_pass@1": spread([p["pretrained_validation_pass@1"] for p in per]),
        }
    result: dict[str, Any] = {
        "tasks": tasks,
        "selected_on": "validation",
        "selection": "each arm's GRPO checkpoint (every eval_every steps) with the best validation pass@1, per seed "
        "(the earliest of ties); pretraining stops once validation pass@1 >= pretrain_target; the test problems "
        "are never used to choose",
        "seeds": list(seeds),
        "setup": {
            **s.to_dict(),
            "mode": "custom" if settings else "quick" if quick else "full",
            "parameters": runs[0]["parameters"],
            "tasks": dict(TASKS),
            "arms": dict(ARMS),
        },  # fmt: skip
        "seconds": {
            **{k: spread([r["seconds"][k] for r in runs]) for k in ("pretrain", "sft", "grpo", "scoring")},
            "total": time.perf_counter() - began,
        },
    }
    result["goals"] = goals(result)
    return result


def _spreads(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: spread([r[name] for r in rows]) for name in METRICS}


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's goals on the seed means, each ``{"met": bool, ...the numbers it compares}``.

    Examples
    --------
    >>> arm = lambda p, f: {"pass@1": {"mean": p}, "progressive_fraction": {"mean": f}}
    >>> r = {"tasks": {"hard": {"outcome": arm(0.2, 0.1), "pcs": arm(0.4, 0.5)},
    ...                "easy": {"outcome": arm(0.8, 0.6), "pcs": arm(0.81, 0.7)}}}
    >>> {name: g["met"] for name, g in goals(r).items()}
    {'hard_pcs_beats_outcome_by_5pp_with_more_progressive': True, 'easy_gap_smaller_than_hard': True}
    """
    gap = {
        name: 100 * (t["pcs"]["pass@1"]["mean"] - t["outcome"]["pass@1"]["mean"]) for name, t in result["tasks"].items()
    }
    hard = result["tasks"]["hard"]
    more = hard["pcs"]["progressive_fraction"]["mean"] > hard["outcome"]["progressive_fraction"]["mean"]
    return {
        "hard_pcs_beats_outcome_by_5pp_with_more_progressive": {
            "met": gap["hard"] >= 5 and more,
            "pass@1_gap_pp": gap["hard"],
            "progressive_fraction": {arm: hard[arm]["progressive_fraction"]["mean"] for arm in ARMS},
        },
        "easy_gap_smaller_than_hard": {
            "met": gap["easy"] < gap["hard"],
            "hard_gap_pp": gap["hard"],
            "easy_gap_pp": gap["easy"],
        },  # fmt: skip
    }


def text(result: dict[str, Any]) -> str:
    """The table of the reproduction (means ± spread over the seeds), for a terminal or a Markdown page."""
    lines = []
    for name, task in result["tasks"].items():
        lines.append(f"{name} task (sum of {task['digits']} digits mod 10), test problems:")
        lines.append(
            f"  {'':<8} {'pass@1':>24} {'progressive fraction':>24} {'overconfidence':>24} {'GUESS share':>12}"
        )
        for arm in ("base", *ARMS):
            row = task[arm]
            lines.append(
                f"  {arm:<8} {pm(row['pass@1']):>24} {pm(row['progressive_fraction']):>24} "
                f"{pm(row['overconfidence']):>24} {row['guess_share']['mean']:>12.3f}"
            )
        lines.append(
            f"  GRPO checkpoints chosen on validation: outcome {task['outcome']['step_per_seed']}, "
            f"pcs {task['pcs']['step_per_seed']}; pretraining steps {task['pretrain_steps_per_seed']}"
        )
        lines.append("")
    lines += [f"{goal}: {'met' if g['met'] else 'not met'}" for goal, g in result["goals"].items()]
    s = result["setup"]
    lines.append(
        f"\n{s['n_layer']}-layer width-{s['n_embd']} GPT ({s['parameters']:,} parameters); SFT mixture with "
        f"{s['progressive_share']:.0%} progressive traces; GRPO {s['grpo_steps']} steps (G={s['group_size']}, "
        f"{s['prompts_per_step']} prompts per step, lr {s['grpo_lr']}), eta {s['eta']}; {s['samples']} samples per "
        f"problem on {s['test_problems']} test problems per task; seeds {result['seeds']}; {result['selection']}."
    )
    return "\n".join(lines)


def figures(result: dict[str, Any], folder: Any) -> list[Path]:
    """``pcs.png|svg``: validation pass@1 along GRPO per task and arm (the mean over seeds)."""
    import numpy as np

    from ontheline.report.figures import pyplot, save_figure

    _, axes = pyplot().subplots(1, len(result["tasks"]), figsize=(11, 4))
    for ax, (name, task) in zip(np.atleast_1d(axes), result["tasks"].items()):
        for arm in ARMS:
            curves = task[arm]["validation_curve_per_seed"]
            steps = [c["step"] for c in curves[0]]
            ax.plot(steps, np.mean([[c["validation_pass@1"] for c in cv] for cv in curves], axis=0), marker="o",
                    label=arm)  # fmt: skip
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("validation pass@1")
        ax.set_title(f"{name}: sum of {task['digits']} digits", fontsize=9)
        ax.legend(fontsize=8)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return save_figure(ax, Path(folder), "pcs")
