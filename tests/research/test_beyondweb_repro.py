"""``ontheline repro beyondweb`` in miniature (seconds): its JSON keys, the invariants of the token accounting,
the evaluation's ranges, and the goals' arithmetic on hand-made numbers."""

import json
import math

import pytest

from ontheline.research.beyondweb.experiment import Config
from ontheline.research.beyondweb.mixture import RUNS
from ontheline.research.beyondweb.repro import METRICS, goals

TINY = Config(n_entities=8, web_tokens=3000, n_layer=1, n_embd=16, n_head=2, context=128, batch_size=4, eval_facts=12,
              heldout_docs=10, diversity_docs=6, distinct_ngrams=200, embeddings=False)  # fmt: skip
NAMES = ["repeat", "continuation", "summary", "diverse", "diverse-lq", "diverse-hq", "no-chat"]


def _runs(**qa_ppl):
    return {"runs": {name: {"qa_accuracy": q, "web_ppl": p} for name, (q, p) in qa_ppl.items()}}


def test_a_context_too_short_for_the_evaluation_is_refused_before_any_training():
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    from dataclasses import replace

    from ontheline.research.beyondweb.experiment import run_seed

    with pytest.raises(ValueError, match=r"context must hold the longest evaluation row, \d+ tokens; got 40"):
        run_seed(replace(TINY, context=40), seed=0, progress=lambda *a: pytest.fail("it trained"))


def test_the_runs_are_the_issue_s_seven():
    assert list(RUNS) == NAMES


def test_the_goals_compare_what_the_issue_says():
    base = {"repeat": (0.20, 5.0), "continuation": (0.25, 5.0), "summary": (0.3, 5.0), "diverse": (0.40, 5.2),
            "diverse-lq": (0.30, 5.2), "diverse-hq": (0.35, 5.2), "no-chat": (0.30, 5.25)}  # fmt: skip
    met = {k: v["met"] for k, v in goals(_runs(**base)).items()}
    assert met == dict.fromkeys(met, True) and len(met) == 4
    style = goals(_runs(**base))["no_chat_hurts_chat_qa_more_than_web_ppl"]
    assert style["relative_qa_drop"] == pytest.approx(0.25) and style["relative_ppl_rise"] == pytest.approx(0.05 / 5.2)
    worse = {**base, "repeat": (0.31, 5.0)}  # 9 points: not enough
    assert not goals(_runs(**worse))["diverse_beats_repeat_by_10_points"]["met"]
    swapped = {**base, "diverse-lq": (0.35, 5.2)}  # a tie is not a win
    assert not goals(_runs(**swapped))["hq_seeds_beat_lq_seeds"]["met"]
    ppl_hurt = {**base, "no-chat": (0.38, 6.0)}  # 5% QA drop, 15% perplexity rise
    assert not goals(_runs(**ppl_hurt))["no_chat_hurts_chat_qa_more_than_web_ppl"]["met"]
    better = {**base, "no-chat": (0.45, 5.0)}  # no-chat better at QA: no harm at all
    assert not goals(_runs(**better))["no_chat_hurts_chat_qa_more_than_web_ppl"]["met"]


def test_the_miniature_run_has_the_documented_json(monkeypatch, capsys):
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.cli import main
    from ontheline.research.beyondweb import repro

    real = repro.run
    monkeypatch.setattr(repro, "run", lambda quick, progress: real(seeds=(0, 1), config=TINY, progress=progress))
    assert main(["repro", "beyondweb", "--quick", "--format", "json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert list(result["runs"]) == NAMES and result["seeds"] == [0, 1]
    budget = result["budgets"]["budget"]
    assert budget == 3 * result["budgets"]["unique_web_tokens"] == 3 * TINY.web_tokens
    assert result["budgets"]["web_tokens_per_seed"] == [TINY.web_tokens] * 2
    for name, run in result["runs"].items():
        assert {"qa_accuracy", "web_ppl", "diversity"} <= set(run) and set(METRICS) <= set(run["spread"])
        assert 0.0 <= run["qa_accuracy"] <= 1.0 and 0.0 <= run["cloze_accuracy"] <= 1.0
        assert run["web_ppl"] > 1.0 and math.isfinite(run["web_ppl"])
        assert run["total_tokens"] == budget == sum(run["tokens"].values()) == run["trained_tokens"]
        assert run["tokens"]["web"] == RUNS[name].web_repeats * TINY.web_tokens
        assert len(run["spread"]["qa_accuracy"]["per_seed"]) == 2
        coverage = run["synthetic_fact_coverage"]
        assert coverage == 0.0 if name in ("repeat", "continuation") else coverage > 0.0
    assert set(result["goals"]) == {"diverse_beats_repeat_by_10_points", "diverse_beats_continuation",
                                    "hq_seeds_beat_lq_seeds", "no_chat_hurts_chat_qa_more_than_web_ppl"}  # fmt: skip
    assert all(isinstance(g["met"], bool) and len(g["per_seed_met"]) == 2 for g in result["goals"].values())
    assert all(w["evaluated_facts"] <= w["web_facts"] for w in result["world"])
    assert repro.text(result).count("\n") > len(NAMES)
