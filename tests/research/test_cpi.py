"""Context-parametric inversion: answer classes, the knowledge filter, the exact share p, the theory model's
known cases, and ``ontheline repro cpi`` in miniature."""

import json
from dataclasses import replace

import numpy as np
import pytest

from ontheline.research.cpi import (
    CLASSES,
    TheoryConfig,
    classify_answers,
    conflict_accuracies,
    ift_mixture,
    knowledge_filter,
    train_theory,
)
from ontheline.research.cpi.repro import fall, goals
from ontheline.research.lm.tasks import FactWorld

SMALL = TheoryConfig(known=60, new=40, evaluated=30, examples=80, pretrain_steps=100, steps=60, every=20)


def test_answers_are_classified_as_context_parametric_or_other():
    answers = ["seaport", "ashford", "oakfield", None, " seaport "]
    got = classify_answers(answers, ["seaport"] * 5, ["ashford"] * 5)
    assert got.tolist() == ["context", "parametric", "other", "other", "context"]
    assert set(got) <= set(CLASSES)


def test_an_answer_matching_agreeing_context_and_memory_counts_as_context():
    assert classify_answers(["red"], ["red"], ["red"]).tolist() == ["context"]


def test_classify_answers_needs_one_entry_per_item():
    with pytest.raises(ValueError, match="one entry per item"):
        classify_answers(["a", "b"], ["a"], ["b", "c"])


def test_the_knowledge_filter_keeps_only_items_answered_correctly_closed_book():
    kept = knowledge_filter(["red", "blue", None, " green"], ["red", "green", "white", "green"])
    assert kept.tolist() == [True, False, False, True]


def test_conflict_accuracies_count_only_the_known_items():
    answers, context, world = ["b", "a", "z", "b", "a"], ["b"] * 5, ["a"] * 5
    r = conflict_accuracies(answers, context, world, known=[True, True, True, False, False])
    assert r == {"context_accuracy": pytest.approx(1 / 3), "parametric_accuracy": pytest.approx(1 / 3),
                 "other": pytest.approx(1 / 3), "n": 3}  # fmt: skip
    everything = conflict_accuracies(answers, context, world)
    assert everything["n"] == 5 and everything["context_accuracy"] == pytest.approx(0.4)
    assert np.isnan(conflict_accuracies(answers, context, world, known=[False] * 5)["context_accuracy"])


def test_a_conflict_set_rejects_contexts_that_agree_with_the_facts():
    with pytest.raises(ValueError, match="differ from the facts"):
        conflict_accuracies(["a"], ["a"], ["a"])
    with pytest.raises(ValueError, match="one flag per item"):
        conflict_accuracies(["a"], ["b"], ["a"], known=[True, False])


@pytest.mark.parametrize("p", [0.0, 0.5, 0.8, 0.37, 1.0])
def test_the_mixture_has_exactly_the_share_p_of_non_context_critical_examples(p):
    world = FactWorld(40, seed=0)
    known, unknown = world.entities[:20], world.entities[20:]
    mix = ift_mixture(world, 100, p, known=known, unknown=unknown, seed=3)
    kinds = [e.info["kind"] for e in mix]
    assert len(mix) == 100 and kinds.count("non_critical") == round(100 * p)
    assert kinds.count("critical") == 100 - round(100 * p) and "counterfactual" not in kinds
    for e in mix:
        assert e.answer == e.info["context"] == e.info["world"]  # the context states the fact
        assert (e.info["entity"] in known) == (e.info["kind"] == "non_critical")
    assert mix == ift_mixture(world, 100, p, known=known, unknown=unknown, seed=3)


def test_augmentation_adds_counterfactual_examples_on_known_entities():
    world = FactWorld(40, seed=0)
    mix = ift_mixture(world, 50, 0.8, known=world.entities[:20], unknown=world.entities[20:], seed=0, augment=0.2)
    extra = [e for e in mix if e.info["kind"] == "counterfactual"]
    assert len(mix) == 60 and len(extra) == 10
    assert all(e.answer == e.info["context"] != e.info["world"] and e.info["entity"] in world.entities[:20]
               for e in extra)  # fmt: skip


def test_the_mixture_rejects_bad_shares_and_empty_pools():
    world = FactWorld(10, seed=0)
    with pytest.raises(ValueError, match=r"p must be a share in \[0, 1\]"):
        ift_mixture(world, 10, 1.5, known=world.entities, unknown=world.entities, seed=0)
    with pytest.raises(ValueError, match="unknown must name"):
        ift_mixture(world, 10, 0.5, known=world.entities, unknown=(), seed=0)


def test_before_finetuning_every_share_p_starts_from_the_same_pretrained_model():
    first = {p: train_theory(p, config=SMALL)["reliance"][0] for p in (0.0, 0.5, 0.8)}
    assert len(set(first.values())) == 1


def test_the_theory_model_with_only_context_critical_examples_learns_to_use_the_context():
    values_train = replace(SMALL, copy_steps=10, pretrain=("v", "f"), train=("kq", "v", "f"))
    r = train_theory(0.0, config=values_train)
    assert r["attention"][-1] > r["attention"][0] + 0.1
    assert r["reliance"][-1] > r["reliance"][0] + 0.3
    assert fall(r["reliance"])["fall"] <= 0.03  # no fall without non-context-critical examples


def test_the_default_theory_model_inverts_at_p_08_and_not_when_only_the_attention_trains():
    """The recorded finding (seed 0; the settings were chosen on seed 1): reliance on conflicts rises, then falls."""
    inverted = fall(train_theory(0.8, seed=0)["reliance"])
    assert inverted["rise"] >= 0.2 and inverted["fall"] >= 0.10 and inverted["peak_not_last"]
    attention_only = fall(train_theory(0.8, seed=0, config=TheoryConfig(train=("kq",)))["reliance"])
    assert attention_only["fall"] < inverted["fall"]


def test_the_theory_model_checks_its_arguments():
    with pytest.raises(ValueError, match="p must be a share"):
        train_theory(-0.1, config=SMALL)
    with pytest.raises(ValueError, match="config.train must name"):
        train_theory(0.5, config=TheoryConfig(train=("w",)))


def test_the_fall_is_measured_from_the_peak_to_the_last_checkpoint():
    assert fall([0.1, 0.9, 0.9, 0.6]) == {"peak": 0.9, "peak_index": 1, "final": 0.6, "fall": 0.3, "rise": 0.8,
                                          "peak_not_last": True}  # fmt: skip
    assert fall([0.1, 0.5, 0.7])["peak_not_last"] is False


def test_the_goals_compare_what_the_issue_says():
    up = {"reliance": [0.2, 0.5, 0.6], "nonconflict_accuracy": [0.5, 0.8, 0.9]}
    inverted = {"reliance": [0.2, 0.8, 0.6], "nonconflict_accuracy": [0.5, 0.8, 0.9]}
    small_fall = {"reliance": [0.2, 0.8, 0.75], "nonconflict_accuracy": [0.5, 0.8, 0.9]}
    benchmark_drops = {"reliance": [0.2, 0.8, 0.6], "nonconflict_accuracy": [0.5, 0.9, 0.8]}
    r = {"theory": {"by_p": {"0.0": up, "0.5": small_fall, "0.8": inverted}, "mitigations": {"a": small_fall}},
         "lm": {"0.0": inverted, "0.5": benchmark_drops, "0.8": up}, "mitigations": {"a": up}}  # fmt: skip
    met = {name: g["met"] for name, g in goals(r).items()}
    assert met == {
        "theory_inverts_at_p_0.5": False,  # a fall of 5 points
        "theory_inverts_at_p_0.8": True,
        "theory_no_fall_at_p_0": True,
        "theory_mitigations_shrink_the_fall": True,
        "lm_inverts_at_p_0.5": False,  # non-conflict accuracy fell after the peak
        "lm_inverts_at_p_0.8": False,
        "lm_no_fall_at_p_0": False,
        "lm_mitigations_shrink_the_fall": False,  # no fall at baseline to shrink
    }


def test_the_miniature_run_has_the_documented_json(monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from ontheline.research.cpi import repro
    from ontheline.research.cpi.lm import LMConfig

    tiny_lm = LMConfig(known=8, evaluated=6, unknown=8, copy_pool=4, copy_examples=8, pretrain_steps=6,
                       ift_examples=20, ift_steps=6, every=3, batch_size=8, n_layer=1, n_embd=32)  # fmt: skip
    result = repro.run(lm_config=tiny_lm, theory_config=replace(SMALL, steps=20, every=10))
    json.loads(json.dumps(result))
    assert [len(x) for x in (result["theory"]["reliance"],)] == [3]
    assert set(result["lm"]) == {"0.0", "0.5", "0.8"}
    for curve in [*result["lm"].values(), *result["mitigations"].values()]:
        assert curve["steps"] == [0, 3, 6]
        assert len(curve["reliance"]) == len(curve["nonconflict_accuracy"]) == 3
    assert set(result["mitigations"]) == {"curation", "augmentation", "attention_only"}
    assert all(isinstance(g["met"], bool) for g in result["goals"].values())
    assert "reliance" in repro.text(result)
