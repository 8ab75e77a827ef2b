"""``ontheline repro wise-ft-lm`` in miniature (seconds): its JSON keys, the early checkpoint chosen on
validation, disjoint problem sets, and the goals' arithmetic on hand-made numbers."""

import json

import pytest

from ontheline.research.wise_ft_lm.experiment import Settings, problems
from ontheline.research.wise_ft_lm.repro import _above_frontier, goals

TINY = Settings(
    n_layer=1, n_embd=32, n_positions=64, pretrain_problems=200, pretrain_steps=20, sft_problems=20, sft_steps=20,
    checkpoint_every=10, validation_problems=3, test_problems=3, samples=16, max_new_tokens=24,
    temperatures=(1.0, 1.5),
)  # fmt: skip


def test_the_four_problem_sets_share_no_prompt_and_only_pretraining_has_slips():
    parts = problems(0, Settings(pretrain_problems=2000, max_operand=20, max_factor=6))
    assert {k: len(v) for k, v in parts.items()} == {"pretrain": 2000, "sft": 1000, "validation": 100, "test": 200}
    prompts = {name: {e.prompt for e in part} for name, part in parts.items()}
    names = list(prompts)
    assert all(not (prompts[a] & prompts[b]) for i, a in enumerate(names) for b in names[i + 1 :])
    slips = lambda part: sum(e.info["corrupted_lines"] != "0" for e in part) / len(part)  # noqa: E731
    assert 0.15 < slips(parts["pretrain"]) < 0.45
    assert slips(parts["sft"]) == slips(parts["test"]) == 0
    assert problems(0, TINY) == problems(0, TINY) and problems(0, TINY) != problems(1, TINY)


def _point(p1, p16):
    return {"pass@1": {"mean": p1}, "pass@16": {"mean": p16}}


def test_the_goals_compare_what_the_issue_says():
    result = {
        "early": _point(0.40, 0.90), "late": _point(0.60, 0.70), "wise": {"0.5": _point(0.59, 0.75)},
        "temperature": {"0.7": _point(0.61, 0.60), "1.0": _point(0.60, 0.70), "1.5": _point(0.50, 0.80)},
    }  # fmt: skip
    met = {name: g["met"] for name, g in goals(result).items()}
    assert met == {
        "late_pass16_below_early": True,
        "wise_keeps_80pct_early_pass16_and_late_pass1": True,  # 0.75 >= 0.72 and 0.59 >= 0.58
        "temperature_trades_pass1_for_pass16": True,  # T=1.5: +0.10 pass@16 for -0.10 pass@1
        "wise_above_temperature_frontier": True,  # the segment from T=1.5 to T=1 is at 0.71 there
    }
    result["wise"]["0.5"] = _point(0.57, 0.75)  # 3 points below late's pass@1
    assert not goals(result)["wise_keeps_80pct_early_pass16_and_late_pass1"]["met"]
    result["temperature"]["1.5"] = _point(0.62, 0.80)  # a hotter late checkpoint better on both
    g = goals(result)
    assert not g["temperature_trades_pass1_for_pass16"]["met"] and not g["wise_above_temperature_frontier"]["met"]


def test_the_frontier_counts_mixes_of_two_temperatures():
    points = [(0.5, 0.8), (0.7, 0.6)]
    assert not _above_frontier(0.6, 0.69, points)  # the segment is at 0.70 there
    assert _above_frontier(0.6, 0.71, points)
    assert not _above_frontier(0.45, 0.79, points) and _above_frontier(0.75, 0.1, points)


def test_the_miniature_run_has_the_documented_json_and_selects_on_validation(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.cli import main
    from ontheline.research.wise_ft_lm import repro

    real = repro.run
    monkeypatch.setattr(repro, "run", lambda quick, progress: real(seeds=(0, 1), settings=TINY, progress=progress))
    assert main(["repro", "wise-ft-lm", "--quick", "--format", "json", "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    assert [c["step"] for c in result["checkpoints"]] == [10, 20]
    for c in result["checkpoints"]:
        assert {"pass@1", "pass@2", "pass@4", "pass@8", "pass@16", "maj@16", "distinct_answers"} <= set(c)
        assert len(c["pass@1"]["per_seed"]) == 2 and {"mean", "std", "min", "max"} <= set(c["pass@16"])
    assert isinstance(result["early_step"], int) and result["early_selected_on"] == "validation"
    best = max(result["checkpoints"], key=lambda c: (c["validation"]["pass@16"]["mean"], -c["step"]))
    assert result["early_step"] == best["step"] and result["late_step"] == 20
    for name in ("early", "late", "pretrained"):
        assert {"pass@1", "pass@16", "maj@16", "var_pass@1", "jensen_gap@16"} <= set(result[name])
    assert set(result["wise"]) == {"0.25", "0.5", "0.75"} and set(result["temperature"]) == {"1.0", "1.5"}
    assert result["temperature"]["1.0"] == result["late"]
    assert set(result["goals"]) == {"late_pass16_below_early", "wise_keeps_80pct_early_pass16_and_late_pass1",
                                    "temperature_trades_pass1_for_pass16", "wise_above_temperature_frontier"}  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["wise-ft-lm.png", "wise-ft-lm.svg"]
    table = repro.text(result)
    assert "early = step" in table and "WiSE alpha=0.5" in table and "late, T=1.5" in table
