"""BeyondWeb at the data wall: ``ontheline repro beyondweb [--quick]`` (Maini, Dorna, Doshi et al., 2025, arXiv:2508.10975).

Per seed: a knowledge world (:func:`~ontheline.research.beyondweb.make_world`), its web at a
fixed count of unique tokens, half from fact-dense clean documents and half from sparse noisy
ones whose statement is wrong a quarter of the time
(:func:`~ontheline.research.beyondweb.web_corpus`), and seven pretraining runs of a fresh
character GPT, each one pass over the same budget of 3 times the unique web tokens:

- ``repeat``: the web three times;
- ``continuation``: the web, plus text an n-gram model fitted on the web writes after each
  document (the ungrounded control: it states no fact);
- ``summary``: the web, plus knowledge-list summaries of the web documents only;
- ``diverse``: the web, plus summaries, question-answer pairs, chat turns and tutorials in
  equal shares;
- ``diverse-lq`` / ``diverse-hq``: the same, rephrasing only the low- / high-quality documents;
- ``no-chat``: ``diverse`` without the chat turns (the other three share their tokens).

Each model is scored on closed-book fact QA in chat format (``User: <question>\\nAssistant: ``,
the log-probability of each value of the attribute; accuracy is the share of facts whose true
value scores highest) over facts the web states (a fact stated nowhere cannot be known), and on
the perplexity of held-out web documents never trained on. Diversity is the mean pairwise cosine
distance of MiniLM embeddings of a token-weighted sample of the run's corpus (distinct word
3-grams beside it). The sizes were set by pilots on seed 0 (the quick run's seed); the full run
is on seeds 1, 2 and 3, which no pilot saw. Nothing is selected on the reported evaluation: every
model is scored once, after its one pass over the budget.

Goals (the issue's; recorded whatever the outcome, on the means over seeds, with each seed's
verdict beside them): ``diverse`` beats ``repeat`` by at least 10 points of QA accuracy and
beats ``continuation``; ``diverse-hq`` beats ``diverse-lq``; removing the chat style hurts
chat-format QA more than it hurts web perplexity, in relative terms: the relative drop of QA
accuracy, ``(qa[diverse] - qa[no-chat]) / qa[diverse]``, is positive and larger than the
relative rise of web perplexity, ``(ppl[no-chat] - ppl[diverse]) / ppl[diverse]``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from typing import Any

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline._threads import torch_threads
from ontheline.research._spread import pm, spread
from ontheline.research.beyondweb.experiment import Config, run_seed
from ontheline.research.beyondweb.mixture import RUNS

#: The full run's sizes, on seeds 1, 2 and 3, which no pilot ran on.
FULL = Config()
#: ``--quick``: the same world, wall and model on seed 0 (the pilots' seed), 200 held-out documents.
QUICK = replace(FULL, heldout_docs=200)
#: What is reported about each seed's world and web.
WORLD_KEYS = ("world_facts", "web_facts", "web_true_facts", "web_facts_hq", "web_facts_lq", "web_statements",
              "web_wrong_statements", "web_documents", "evaluated_facts", "heldout_documents", "chance")  # fmt: skip
#: The numbers reported per run (means over seeds at the top level, spreads under ``"spread"``).
METRICS = ("qa_accuracy", "web_ppl", "diversity", "distinct_3", "cloze_accuracy", "qa_accuracy_second_turn",
           "synthetic_fact_coverage", "final_train_loss")  # fmt: skip


def run(
    quick: bool = False,
    *,
    seeds: tuple[int, ...] | None = None,
    config: Config | None = None,
    runs: tuple[str, ...] = tuple(RUNS),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The seven runs on every seed: the JSON object of ``ontheline repro beyondweb``.

    ``quick``: :data:`QUICK` on seed 0; otherwise :data:`FULL` on seeds (1, 2, 3). ``seeds``,
    ``config`` and ``runs`` override them (the tests run a miniature).
    """
    with extra("torch"), extra("hf"):
        import torch  # noqa: F401 - the torch extra, checked before any work
        import transformers  # noqa: F401 - the hf extra, checked before any work

    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        raise ValueError(f"runs must be names from {list(RUNS)}; got {unknown}.")
    c = config or (QUICK if quick else FULL)
    seeds = seeds or ((0,) if quick else (1, 2, 3))
    began = time.perf_counter()
    with torch_threads(1):
        per_seed = [run_seed(c, seed, runs, progress) for seed in seeds]
    out_runs: dict[str, Any] = {}
    for name in runs:
        rows = [s["runs"][name] for s in per_seed]
        spreads = {m: spread([r[m] for r in rows]) for m in METRICS}
        out_runs[name] = {
            **{m: spreads[m]["mean"] for m in METRICS},
            "spread": spreads,
            "spec": {**asdict(RUNS[name]), "strategies": list(RUNS[name].strategies)},
            "tokens": rows[0]["tokens"],
            "total_tokens": rows[0]["total_tokens"],
            "trained_tokens": rows[0]["trained_tokens"],
            "steps": rows[0]["steps"],
            "seconds_per_seed": [r["seconds"]["total"] for r in rows],
        }
    first = per_seed[0]
    result: dict[str, Any] = {
        "runs": out_runs,
        "seeds": list(seeds),
        "budgets": {
            "unique_web_tokens": first["web_tokens"],
            "budget": first["budget"],
            "budget_multiple": c.budget_multiple,
            "web_tokens_per_seed": [s["web_tokens"] for s in per_seed],
            "web_tier_tokens": first["web_tier_tokens"],
            "steps": {name: r["steps"] for name, r in out_runs.items()},
            "rows_of_at_most": c.context,
            "rows_per_step": c.batch_size,
        },
        "world": [{k: s[k] for k in WORLD_KEYS} for s in per_seed],
        "setup": {
            "mode": "custom" if config else "quick" if quick else "full",
            "config": c.to_dict(),
            "token": "one character of the lab's CharTokenizer; each document also costs <bos> and <eos>",
            "evaluated_facts": "the facts the web states rightly at least once (a seeded sample when more than "
            "eval_facts); wrong statements of the low-quality tier are never evaluated",
            "selected_on": "nothing: sizes set by pilots on seed 0; the full run's seeds 1-3 were never piloted",
        },  # fmt: skip
        "seconds": {"per_seed": [s["seconds"] for s in per_seed], "total": time.perf_counter() - began},
    }
    result["goals"] = goals(result)
    return result


def _values(result: dict[str, Any], name: str, metric: str) -> list[float]:
    run_ = result["runs"][name]
    per = run_.get("spread", {}).get(metric, {}).get("per_seed")
    return list(per) if per else [run_[metric]]


def _compare(result: dict[str, Any], metric: str, better: str, worse: str, margin: float = 0.0) -> dict[str, Any]:
    a, b = result["runs"][better][metric], result["runs"][worse][metric]
    per = [x - y >= margin if margin else x > y for x, y in zip(_values(result, better, metric),
                                                               _values(result, worse, metric))]  # fmt: skip
    met = a - b >= margin if margin else a > b
    return {"met": bool(met), better: a, worse: b, "difference": a - b, "per_seed_met": per}


def _style(qa_d: float, qa_n: float, ppl_d: float, ppl_n: float) -> tuple[float, float, bool]:
    qa_drop = (qa_d - qa_n) / qa_d if qa_d > 0 else float("nan")
    ppl_rise = (ppl_n - ppl_d) / ppl_d
    return qa_drop, ppl_rise, bool(qa_drop > 0 and qa_drop > ppl_rise)


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's goals, each ``{"met": bool, ...the numbers}``, on the means (and per seed).

    Examples
    --------
    >>> runs = {n: {"qa_accuracy": q, "web_ppl": p} for n, q, p in [("repeat", 0.2, 5.0), ("continuation", 0.25, 5.0),
    ...         ("diverse", 0.5, 5.1), ("diverse-hq", 0.5, 5.0), ("diverse-lq", 0.4, 5.0), ("no-chat", 0.3, 5.0)]}
    >>> {k: v["met"] for k, v in goals({"runs": runs}).items()}
    {'diverse_beats_repeat_by_10_points': True, 'diverse_beats_continuation': True, 'hq_seeds_beat_lq_seeds': True, 'no_chat_hurts_chat_qa_more_than_web_ppl': True}
    """
    out = {
        "diverse_beats_repeat_by_10_points": _compare(result, "qa_accuracy", "diverse", "repeat", margin=0.10),
        "diverse_beats_continuation": _compare(result, "qa_accuracy", "diverse", "continuation"),
        "hq_seeds_beat_lq_seeds": _compare(result, "qa_accuracy", "diverse-hq", "diverse-lq"),
    }
    d, n = result["runs"]["diverse"], result["runs"]["no-chat"]
    qa_drop, ppl_rise, met = _style(d["qa_accuracy"], n["qa_accuracy"], d["web_ppl"], n["web_ppl"])
    per = [_style(*v)[2] for v in zip(_values(result, "diverse", "qa_accuracy"), _values(result, "no-chat", "qa_accuracy"),
                                      _values(result, "diverse", "web_ppl"), _values(result, "no-chat", "web_ppl"))]  # fmt: skip
    out["no_chat_hurts_chat_qa_more_than_web_ppl"] = {
        "met": met, "relative_qa_drop": qa_drop, "relative_ppl_rise": ppl_rise,
        "qa": {"diverse": d["qa_accuracy"], "no-chat": n["qa_accuracy"]},
        "web_ppl": {"diverse": d["web_ppl"], "no-chat": n["web_ppl"]},
        "definition": "met when (qa[diverse] - qa[no-chat]) / qa[diverse] > 0 and exceeds "
                      "(ppl[no-chat] - ppl[diverse]) / ppl[diverse]",
        "per_seed_met": per,
    }  # fmt: skip
    return out


def _f(value: float | None, width: int, digits: int) -> str:
    """A number for the table; ``n/a`` where it is missing (NaN in Python, null in the JSON)."""
    if value is None or not math.isfinite(value):
        return f"{'n/a':>{width}}"
    return f"{value:{width}.{digits}f}"


def text(result: dict[str, Any]) -> str:
    """The runs' table (means ± std [min, max] over seeds), the budgets, then the goals."""
    b = result["budgets"]
    lines = [f"BeyondWeb at the data wall: {b['unique_web_tokens']} unique web tokens, budget {b['budget']} "
             f"({b['budget_multiple']}x), one pass: {min(b['steps'].values())}-{max(b['steps'].values())} steps of "
             f"{b['rows_per_step']} packed rows of at most {b['rows_of_at_most']} tokens; seeds {result['seeds']}",
             "",
             f"{'run':<13} {'chat QA acc':>30} {'2nd turn':>8} {'cloze acc':>9} {'web ppl':>8} {'MiniLM div':>10} "
             f"{'distinct-3':>10} {'syn. cover':>10}"]  # fmt: skip
    for name, r in result["runs"].items():
        lines.append(f"{name:<13} {pm(r['spread']['qa_accuracy']):>30} {_f(r['qa_accuracy_second_turn'], 8, 3)} "
                     f"{_f(r['cloze_accuracy'], 9, 3)} {_f(r['web_ppl'], 8, 3)} {_f(r['diversity'], 10, 4)} "
                     f"{_f(r['distinct_3'], 10, 3)} {_f(r['synthetic_fact_coverage'], 10, 3)}")  # fmt: skip
    lines.append("")
    for name, g in result["goals"].items():
        numbers = {k: v for k, v in g.items() if isinstance(v, float) and math.isfinite(v)}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in numbers.items())
        lines.append(f"{name}: {'met' if g['met'] else 'not met'} ({shown}; per seed {g['per_seed_met']})")
    world = result["world"][0]
    lines.append(f"\nworld: {world['world_facts']} facts; the web states {world['web_true_facts']} of them rightly "
                 f"and {world['web_facts'] - world['web_true_facts']} wrong ones (low-quality tier); "
                 f"{world['evaluated_facts']} evaluated "
                 f"(chance {world['chance']:.3f}); {result['seconds']['total']:.0f} s in all.")  # fmt: skip
    return "\n".join(lines)


__all__ = ["FULL", "METRICS", "QUICK", "goals", "run", "text"]
