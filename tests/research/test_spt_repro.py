"""``ontheline repro spt`` in miniature (seconds): its JSON keys, exact token accounting along a run, finetuning
selected on validation, and the goals' arithmetic on hand-made numbers."""

import json

import numpy as np
import pytest

from ontheline.research.spt.experiment import Config
from ontheline.research.spt.repro import goals

TINY = Config(
    steps=60, every=10, ft_budgets=(20, 60), batch_size=8, warmup=5, ft_lrs=(3e-4, 1e-3), ft_max_steps=10,
    ft_eval_every=5, patience=2, n_layer=1, n_embd=16, n_head=2, n_train=30, n_val=10, n_test=12, n_general=12,
)  # fmt: skip


def test_the_budgets_skip_checkpoints_inside_the_learning_rate_decay():
    assert TINY.budgets == [10, 20, 30, 40, 60]  # decay over steps 48-59: the checkpoint at 50 is inside
    assert Config(steps=1600, every=100, ft_budgets=(400,)).budgets[-2:] == [1200, 1600]
    with pytest.raises(ValueError, match="multiples of every"):
        Config(steps=100, every=30, ft_budgets=())


def test_the_goals_compare_what_the_issue_says():
    out = {
        "r_gain": {"0.0": 0.0, "0.02": 0.8, "0.2": -3.0},
        "forgetting": {"0.0": [0.9], "0.02": [0.2], "0.2": [0.01]},
        "best_delta": {"1000": 0.1, "8000": 0.02},
        "best_delta_pretraining": {},
        "law": {"heldout_delta_max_rel_error": 0.03, "onset": {"0.2": {"measured": 100.0, "predicted": 105.0,
                                                                        "rel_error": 0.05}}},
    }  # fmt: skip
    met = {k: v["met"] for k, v in goals(out).items()}
    assert met == {"spt_beats_npt_after_ft_with_less_forgetting": True, "best_delta_shrinks_with_budget": True,
                   "law_predicts_heldout_delta": True}  # fmt: skip
    out["forgetting"]["0.02"] = [1.0]  # the gain, but more forgetting than NPT
    out["best_delta"] = {"1000": 0.02, "8000": 0.02}  # flat: not shrinking
    out["law"]["onset"]["0.2"]["rel_error"] = 0.2
    met = {k: v["met"] for k, v in goals(out).items()}
    assert not any(met.values())


def test_the_miniature_run_has_the_documented_json(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    from ontheline.cli import main
    from ontheline.research.spt import repro

    real = repro.run
    monkeypatch.setattr(repro, "run", lambda quick, progress: real(seeds=(0, 1), config=TINY, progress=progress))
    assert main(["repro", "spt", "--quick", "--format", "json", "--plots", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.rindex("}") + 1])
    keys = [str(d) for d in TINY.deltas]
    assert result["deltas"] == list(TINY.deltas) and result["seeds"] == [0, 1]
    assert result["budgets"] == [20 * 8 * 32, 60 * 8 * 32]
    assert set(result["post_ft_loss"]) == set(keys) and all(len(v) == 2 for v in result["post_ft_loss"].values())
    assert set(result["r_gain"]) == set(keys) and result["r_gain"]["0.0"] == 0.0
    # a float, or null (JSON's NaN) when the curves cannot give one; the detail says which budgets it read
    detail = result["compute_multiplier_detail"]
    if detail["multiplier"] is None:
        assert result["compute_multiplier"] is None
    else:
        assert result["compute_multiplier"] == pytest.approx(detail["npt_tokens"] / detail["spt_tokens"])
    assert {"params", "r2", "heldout_delta_max_rel_error"} <= set(result["law"])
    assert set(result["best_delta"]) == {str(t) for t in result["budgets"]}
    assert set(result["goals"]) == {"spt_beats_npt_after_ft_with_less_forgetting", "best_delta_shrinks_with_budget",
                                    "law_predicts_heldout_delta"}  # fmt: skip
    pt = result["pretraining"]
    for k, delta in zip(keys, TINY.deltas):
        steps = np.array(pt["steps"])
        # exact token accounting: the domain tokens trained on are delta * T to within one row
        assert np.all(np.abs(np.array(pt[k]["domain_tokens"]) - delta * np.array(pt["tokens"])) <= TINY.length)
        assert pt[k]["epochs"] == pytest.approx(list(delta * steps * 8 * 32 / (30 * 32)), rel=1e-4, abs=1e-6)
    for k in keys:  # the learning rate chosen on validation is one of the grid's
        for lr_per_seed in result["ft_chosen_lr"][k]:
            assert set(lr_per_seed) <= set(TINY.ft_lrs)
    assert (tmp_path / "plots" / "spt.png").exists()
