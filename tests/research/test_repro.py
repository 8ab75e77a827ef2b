"""Miniatures of the paper reproductions: the schema, the ranges and the internal consistency, in seconds."""

import json

import pytest

from ontheline.cli import main

pytest.importorskip("torch", reason="the reproductions need the torch extra, which make test installs")
pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")


def test_wise_ft_miniature_reports_every_row_consistently():
    from ontheline.research.wise_ft import repro as wise_ft

    result = wise_ft.run(seeds=(0,), epochs=200, max_test=150)
    for name in ("early", "late", "wise"):
        row = result[name]
        assert 0 <= row["pass@1"] <= row["pass@2"] <= row["pass@16"] <= 1  # pass@k is monotone in k
        assert 0 <= row["maj@16"] <= 1 and row["jensen_gap@16"] >= 0
    assert result["wise"] == result["wise_alphas"]["0.5"]
    assert result["temperature"]["1.0"] == result["late"]  # T = 1 is the late checkpoint itself
    early = result["early_epoch"][0]
    best = max(result["checkpoints"], key=lambda c: c["pass@16"])
    assert early == best["epoch"] and result["checkpoints"][-1]["epoch"] == 200
    assert set(result["goals"]) == {
        "late_pass16_below_early", "late_variance_above_early", "wise_pass16_above_late", "wise_pass1_above_early"
    }  # fmt: skip
    assert "WiSE alpha=0.5" in wise_ft.text(result)


def test_repro_rejects_an_unknown_name_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["repro", "nothing"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_repro_rejects_jobs_for_a_reproduction_without_workers(capsys):
    assert main(["repro", "vmcr2", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert "runs in one process; drop --jobs" in err and err.count("\n") == 1


def test_repro_json_has_the_documented_keys(monkeypatch, capsys):
    from ontheline.research.wise_ft import repro as wise_ft

    small = wise_ft.run
    monkeypatch.setattr(
        wise_ft, "run", lambda quick, progress: small(seeds=(1,), epochs=100, max_test=100, progress=progress)
    )
    assert main(["repro", "wise-ft", "--quick", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("early", "late", "wise"):
        assert {"pass@1", "pass@16"} <= set(result[name])


def test_sam_in_worker_processes_gives_the_same_numbers():
    from ontheline.research.sam import repro as sam

    small = {"settings": (("digits", 0.6),), "seeds": (0,), "epochs": 1, "max_train": 96}
    assert sam.run(**small, jobs=2)["settings"] == sam.run(**small)["settings"]


def test_sam_miniature_reports_every_method_and_the_linear_demo(tmp_path):
    from ontheline.research.sam import repro as sam

    result = sam.run(settings=(("digits", 0.6),), seeds=(0,), epochs=2, max_train=128)
    assert set(result["methods"]) == {"sgd", "sam", "1-sam", "l-sam", "j-sam", "sgd-reg"}
    for method, v in result["methods"].items():
        assert 0 <= v["final_acc"] <= v["best_acc"] <= 1, method
    curves = result["settings"]["digits-60"]["methods"]["sgd"]
    assert len(curves["test_acc"]) == len(curves["clean_fit"]) == len(curves["noisy_fit"]) == 2
    demo = result["linear_demo"]
    assert demo["clean_over_noisy_sam"] > demo["clean_over_noisy_sgd"]  # SAM up-weights the clean examples
    ratios = demo["ratio_by_margin_decile"]
    assert all(b > a for a, b in zip(ratios, ratios[1:]))  # and its weight grows with the margin
    paths = sam.figures(result, tmp_path)
    assert sorted(p.name for p in paths) == ["sam-curves.png", "sam-curves.svg"]


def test_symmetric_noise_flips_exactly_the_rate_to_other_classes_and_is_seeded():
    import numpy as np

    from ontheline.research.sam.repro import noisy_labels

    labels = np.arange(1000) % 10
    noisy, mask = noisy_labels(labels, 0.6, seed=3)
    assert mask.sum() == 600 and (noisy[mask] != labels[mask]).all() and (noisy[~mask] == labels[~mask]).all()
    again, mask_again = noisy_labels(labels, 0.6, seed=3)
    assert (again == noisy).all() and (mask_again == mask).all()


def test_vmcr2_miniature_reports_the_documented_keys(tmp_path):
    from ontheline.research.mcr2 import repro_vmcr2 as vmcr2

    result = vmcr2.run(steps=3, timing_steps=2)
    assert result["classes"] == [10, 50, 100]
    for method in ("mcr2", "vmcr2"):
        assert len(result["step_seconds"][method]) == 3 and all(s > 0 for s in result["step_seconds"][method])
        assert result["delta_r"][method] > 0 and 0 <= result["accuracy"][method] <= 1
    assert set(result["digits"]) == {"mcr2", *vmcr2.VARIANTS}
    settings = [(t["dim"], t["per_class"]) for t in result["timing"]]
    assert settings == list(vmcr2.TIMING) and result["timing"][0]["step_seconds"] == result["step_seconds"]
    assert [(g["dim"], g["per_class"]) for g in result["goals"]["speedup_at_100_classes_by_setting"]] == settings
    assert "speed-up at 100 classes" in vmcr2.text(result)
    pytest.importorskip("matplotlib", reason="the plot extra, which make test installs")
    paths = vmcr2.figures(result, tmp_path)
    assert [p.name for p in paths] == ["vmcr2-step-time.png", "vmcr2-step-time.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_incremental_miniature_grows_exactly_the_joint_network_and_the_mlp_forgets():
    from ontheline.research.mcr2 import repro_incremental as incremental

    result = incremental.run(layers=3, mlp_epochs=5)
    curves = result["accuracy_after_each_task"]
    assert curves["incremental"] == curves["joint"]  # built from stored statistics: the same network
    final = result["final_accuracy"]
    assert set(final) == {"joint", "incremental", "mlp_sequential"}
    assert final["mlp_sequential"] < 0.5 < final["incremental"]  # finetuning task by task forgets the old classes
