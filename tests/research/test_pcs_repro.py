"""``ontheline repro pcs`` in miniature (seconds): its JSON keys, the checkpoints chosen on validation,
disjoint problem sets, the forced-answer examples, and the goals' arithmetic on hand-made numbers."""

import json

import pytest

from ontheline.research.confidence.experiment import Settings, forced_answers, problems
from ontheline.research.confidence.repro import goals
from ontheline.research.lm import digit_sums

TINY = Settings(
    n_layer=1, n_embd=32, pretrain_problems=200, pretrain_chunk=10, pretrain_max_steps=20, sft_problems=100,
    sft_steps=10, grpo_steps=4, eval_every=2, group_size=4, prompts_per_step=2, rl_problems=20, validation_problems=4,
    test_problems=4, samples=2, max_new_tokens=24,
)  # fmt: skip


def test_held_out_problems_share_no_prompt_with_any_training_part():
    s = Settings(pretrain_problems=3000, sft_problems=1000, rl_problems=300)
    parts = problems(0, s)
    for name, task in parts.items():
        train = {e.prompt for part in ("pretrain", "sft", "rl") for e in task[part]}
        held = [{e.prompt for e in task[part]} for part in ("validation", "test")]
        assert not (held[0] & held[1]) and not (train & held[0]) and not (train & held[1])
        assert len(task["validation"]) == 64 and len(task["test"]) == 100
        assert {len(e.prompt.split()) - 1 for e in task["test"]} == {8 if name == "hard" else 3}
        mixture = [e for e in task["sft"] if "forced" not in e.info]
        share = sum(e.info["trace"] == "progressive" for e in mixture) / len(mixture)
        assert 0.1 < share < 0.2 and len(task["sft"]) == 1500
    assert problems(0, TINY) == problems(0, TINY) and problems(0, TINY) != problems(1, TINY)


def test_forced_answers_say_what_the_trace_knows_at_the_cut():
    examples = digit_sums(200, seed=4, digits=5, trace=0.5, shortcut=True)
    forced = forced_answers(examples, 0.5, seed=0)
    assert len(forced) == 100
    for f in forced:
        prefix, answer = f.completion.rsplit("ANS ", 1)
        assert answer == f.answer
        if f.info["trace"] == "premature":
            assert answer == f.info["guess"] == f.prompt.split()[-2]
        else:
            sums = prefix.split()
            assert answer == (sums[-1] if sums else f.prompt.split()[-2])


def _arm(p, f):
    return {"pass@1": {"mean": p}, "progressive_fraction": {"mean": f}}


def test_the_goals_compare_what_the_issue_says():
    result = {"tasks": {"hard": {"outcome": _arm(0.20, 0.1), "pcs": _arm(0.26, 0.4)},
                        "easy": {"outcome": _arm(0.90, 0.5), "pcs": _arm(0.91, 0.6)}}}  # fmt: skip
    met = {name: g["met"] for name, g in goals(result).items()}
    assert met == {"hard_pcs_beats_outcome_by_5pp_with_more_progressive": True, "easy_gap_smaller_than_hard": True}
    result["tasks"]["hard"]["pcs"] = _arm(0.24, 0.4)  # 4 points: not enough
    assert not goals(result)["hard_pcs_beats_outcome_by_5pp_with_more_progressive"]["met"]
    result["tasks"]["hard"]["pcs"] = _arm(0.30, 0.05)  # better, but less progressive
    assert not goals(result)["hard_pcs_beats_outcome_by_5pp_with_more_progressive"]["met"]
    result["tasks"]["easy"]["pcs"] = _arm(1.0, 0.6)  # a larger gap on the easy task
    assert not goals(result)["easy_gap_smaller_than_hard"]["met"]


def test_the_miniature_run_has_the_documented_json_and_selects_on_validation(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.cli import main
    from ontheline.research.confidence import repro

    real = repro.run
    monkeypatch.setattr(repro, "run", lambda quick, progress: real(seeds=(0, 1), settings=TINY, progress=progress))
    assert main(["repro", "pcs", "--quick", "--format", "json", "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert set(result["tasks"]) == {"hard", "easy"} and result["selected_on"] == "validation"
    for task in result["tasks"].values():
        for arm in ("base", "outcome", "pcs"):
            for key in ("pass@1", "progressive_fraction", "overconfidence"):
                assert {"mean", "std", "min", "max", "per_seed"} <= set(task[arm][key])
                assert len(task[arm][key]["per_seed"]) == 2
        for arm in ("outcome", "pcs"):
            for step, curve in zip(task[arm]["step_per_seed"], task[arm]["validation_curve_per_seed"]):
                assert [c["step"] for c in curve] == [2, 4]
                best = max(curve, key=lambda c: (c["validation_pass@1"], -c["step"]))
                assert step == best["step"]
    assert set(result["goals"]) == {"hard_pcs_beats_outcome_by_5pp_with_more_progressive", "easy_gap_smaller_than_hard"}
    assert (tmp_path / "plots" / "pcs.png").exists()
