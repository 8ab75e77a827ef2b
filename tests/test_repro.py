"""Miniatures of the paper reproductions: the schema, the ranges and the internal consistency, in seconds."""

import json

import pytest

from ontheline.cli import main

pytest.importorskip("torch", reason="the reproductions need the torch extra, which make test installs")
pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")


def test_wise_ft_miniature_reports_every_row_consistently():
    from ontheline.repro import wise_ft

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


def test_repro_json_has_the_documented_keys(monkeypatch, capsys):
    from ontheline.repro import wise_ft

    small = wise_ft.run
    monkeypatch.setattr(wise_ft, "run", lambda quick: small(seeds=(1,), epochs=100, max_test=100))
    assert main(["repro", "wise-ft", "--quick", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("early", "late", "wise"):
        assert {"pass@1", "pass@16"} <= set(result[name])
