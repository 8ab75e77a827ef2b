"""``ontheline repro``: the registry and its command line, which need no torch to check their arguments."""

import json

import pytest

from ontheline.cli import main
from ontheline.research import REPROS, load


def test_every_registered_reproduction_has_run_and_text():
    for name in REPROS:
        module = load(name)
        assert callable(module.run) and callable(module.text), name


def test_repro_rejects_an_unknown_name_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["repro", "nothing"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_repro_rejects_jobs_for_a_reproduction_without_workers(capsys):
    assert main(["repro", "vmcr2", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert "runs in one process; drop --jobs" in err and err.count("\n") == 1


def test_repro_json_has_the_documented_keys(monkeypatch, capsys):
    pytest.importorskip("torch", reason="the reproduction needs the torch extra, which make test installs")
    pytest.importorskip("sklearn", reason="the packaged digits need the bench extra, which make test installs")
    from ontheline.research.wise_ft import repro as wise_ft

    small = wise_ft.run
    monkeypatch.setattr(
        wise_ft, "run", lambda quick, progress: small(seeds=(1,), epochs=100, max_test=100, progress=progress)
    )
    assert main(["repro", "wise-ft", "--quick", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("early", "late", "wise"):
        assert {"pass@1", "pass@16"} <= set(result[name])
