"""The command line's error contract: the user's mistakes exit 2 with one line that names the fix;
a bug in ontheline exits 1 with one line that says so, and --debug or ONTHELINE_DEBUG=1 shows
its traceback; an interrupt exits 130."""

import errno
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ontheline as otl
import ontheline.cli
from ontheline.cli import _common, main
from ontheline.cli import estimate as estimate_cli

NAMES = np.array([f"net{i}" for i in range(6)])


@pytest.fixture(autouse=True)
def no_debug_from_the_environment(monkeypatch):
    monkeypatch.delenv("ONTHELINE_DEBUG", raising=False)


@pytest.fixture(scope="module")
def zoo():
    return otl.make_line_zoo(n_models=6, n_samples=400, random_state=0)


@pytest.fixture
def files(tmp_path, zoo):
    id_probs, id_labels, ood_probs, ood_labels = zoo
    np.savez(tmp_path / "id.npz", labels=id_labels, probs=id_probs, models=NAMES)
    np.savez(tmp_path / "ood.npz", labels=ood_labels, probs=ood_probs, models=NAMES)
    return str(tmp_path / "id.npz"), str(tmp_path / "ood.npz")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def estimate(capsys, files, *extra):
    return run(capsys, *extra, "estimate", "--id", files[0], "--ood", files[1], "--bootstrap", "0")


def raising(exc):
    def fail(*args, **kwargs):
        raise exc

    return fail


def assert_bug_line(code, err, described):
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"ontheline: bug: {described}. This is a bug in ontheline"), err
    assert "--debug" in err and "ONTHELINE_DEBUG=1" in err


# --- bugs: exit 1, one line, the traceback on request ------------------------------------------


def test_an_unexpected_exception_in_a_command_exits_1_with_one_line_that_calls_it_a_bug(capsys, monkeypatch, files):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(RuntimeError("the engine\nstalled")))
    code, out, err = estimate(capsys, files)
    assert out == ""
    assert_bug_line(code, err, "RuntimeError: the engine stalled")


def test_a_bug_without_a_message_is_named_by_its_type(capsys, monkeypatch, files):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(ZeroDivisionError()))
    code, _, err = estimate(capsys, files)
    assert_bug_line(code, err, "ZeroDivisionError")


def test_with_debug_the_bug_propagates_with_its_traceback(capsys, monkeypatch, files):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(ZeroDivisionError("division by zero")))
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        estimate(capsys, files, "--debug")


def test_with_ontheline_debug_set_the_bug_propagates_too(capsys, monkeypatch, files):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(RuntimeError("boom")))
    monkeypatch.setenv("ONTHELINE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        estimate(capsys, files)


@pytest.mark.parametrize("value", ["", "0"])
def test_ontheline_debug_empty_or_0_keeps_the_one_line(capsys, monkeypatch, files, value):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(RuntimeError("boom")))
    monkeypatch.setenv("ONTHELINE_DEBUG", value)
    code, _, err = estimate(capsys, files)
    assert_bug_line(code, err, "RuntimeError: boom")


def test_a_plain_value_error_deep_inside_estimate_is_a_bug_not_bad_input(capsys, monkeypatch, files):
    evaluation_module = importlib.import_module("ontheline.evaluation")
    # ranking runs after the files were checked and evaluated: its ValueError cannot be the user's
    monkeypatch.setattr(evaluation_module, "rank_models", raising(ValueError("no ranking")))
    code, out, err = estimate(capsys, files)
    assert out == ""
    assert_bug_line(code, err, "ValueError: no ranking")


def test_a_plain_value_error_inside_an_estimator_is_a_bug_not_bad_input(capsys, monkeypatch, files):
    from ontheline.estimators import aline

    # A broadcasting slip in the ALine-D solve: numpy raises ValueError, which is no input check.
    monkeypatch.setattr(aline.ALineD, "point", staticmethod(raising(ValueError("operands could not be broadcast"))))
    code, out, err = estimate(capsys, files)
    assert out == ""
    assert_bug_line(code, err, "ValueError: operands could not be broadcast")


def test_an_os_error_without_a_file_is_not_blamed_on_the_store(capsys, monkeypatch, tmp_path):
    import errno

    from ontheline.bench import suite

    monkeypatch.setattr(suite, "zoo_predictions", raising(OSError(errno.EMFILE, "Too many open files")))
    code, _, err = run(capsys, "demo", "--config", "tiny", "--store", tmp_path / "store", "--out", tmp_path / "out")
    assert_bug_line(code, err, "OSError: [Errno 24] Too many open files")


def test_a_plain_value_error_deep_inside_passk_is_a_bug_not_bad_input(capsys, monkeypatch, tmp_path):
    import ontheline.research.passk

    path = tmp_path / "samples.csv"
    path.write_text("problem,correct\np1,1\np1,0\np2,1\np2,1\n")
    monkeypatch.setattr(ontheline.research.passk, "pass_at_k", raising(ValueError("k too large")))
    code, _, err = run(capsys, "passk", path)
    assert_bug_line(code, err, "ValueError: k too large")


def test_an_os_error_that_is_not_about_a_named_output_is_a_bug(capsys, monkeypatch, files):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(OSError(errno.EMFILE, "Too many open files")))
    code, _, err = estimate(capsys, files)
    assert_bug_line(code, err, "OSError: [Errno 24] Too many open files")


# --- the user's input, zoo, store and environment: exit 2, one line ----------------------------


def test_debug_leaves_bad_input_as_one_line_with_exit_2(capsys, tmp_path, files):
    code, out, err = run(capsys, "--debug", "estimate", "--id", tmp_path / "missing.npz", "--ood", files[1])
    assert code == 2 and out == "" and err.count("\n") == 1 and "does not exist" in err


def test_a_zoo_that_defeats_every_method_exits_2_with_one_line(capsys, tmp_path, zoo):
    np.savez(tmp_path / "id.npz", labels=zoo[1], probs=zoo[0][:2], models=NAMES[:2])
    np.savez(tmp_path / "ood.npz", probs=zoo[2][:2], models=NAMES[:2])
    code, out, err = run(
        capsys, "estimate", "--id", tmp_path / "id.npz", "--ood", tmp_path / "ood.npz", "--method", "aline-d"
    )
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("ontheline: error: None of the methods could run")


def test_an_unknown_store_entry_exits_2_with_one_line(capsys, tmp_path):
    pytest.importorskip("zarr", reason="the store needs the store extra, which make test installs")
    from ontheline.store import Store

    store = Store(tmp_path / "store")
    store.put(
        np.array([[0.9, 0.1], [0.2, 0.8]]), model="m", model_fingerprint="w", dataset="d", dataset_fingerprint="x"
    )
    code, out, err = run(capsys, "store", "info", "f" * 12, "--store", store.path)
    assert code == 2 and out == "" and err.count("\n") == 1 and "No entry" in err


def test_a_failed_write_of_a_named_output_exits_2_naming_the_path(capsys, monkeypatch, tmp_path, files):
    import ontheline._io

    report = tmp_path / "out" / "report.html"
    full = OSError(errno.ENOSPC, "No space left on device", str(report.parent / ".report.html.1.tmp"))
    monkeypatch.setattr(ontheline._io, "write_text", raising(full))
    code, _, err = run(capsys, "estimate", "--id", files[0], "--ood", files[1], "--format", "json", "--report", report)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"ontheline: error: --report {str(report)!r} could not be written (No space left on device)")


def test_a_missing_optional_package_exits_2_naming_the_extra_to_install(capsys, monkeypatch, files):
    from ontheline._optional import extra

    def needs_matplotlib(*args, **kwargs):
        with extra("plot"):
            raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(estimate_cli, "evaluate", needs_matplotlib)
    code, _, err = estimate(capsys, files)
    assert code == 2 and err.count("\n") == 1
    assert (
        err
        == "ontheline: error: This needs matplotlib, which comes with the 'plot' extra: pip install 'ontheline[plot]'.\n"
    )


def test_a_missing_optional_package_is_recognised_by_its_name_alone():
    assert "pip install 'ontheline[torch]'" in _common.missing_extra(ModuleNotFoundError(name="torch"))
    assert _common.missing_extra(ModuleNotFoundError(name="ontheline.gone")) is None
    assert _common.missing_extra(ImportError("cannot import name 'x'")) is None


def test_a_missing_module_of_ontheline_itself_is_a_bug(capsys, monkeypatch, files):
    broken = ModuleNotFoundError("No module named 'ontheline.gone'", name="ontheline.gone")
    monkeypatch.setattr(estimate_cli, "evaluate", raising(broken))
    code, _, err = estimate(capsys, files)
    assert_bug_line(code, err, "ModuleNotFoundError: No module named 'ontheline.gone'")


def test_an_adaptation_value_the_method_refuses_names_its_flag(capsys):
    code, out, err = run(capsys, "demo", "--config", "tiny", "--adapt", "bn", "--adapt-batch-size", "1")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("ontheline: error: --adapt-batch-size: The 'batch_size' parameter of AdaptConfig")


def test_samples_that_are_not_utf8_exit_2_with_one_line(capsys, tmp_path):
    path = tmp_path / "samples.csv"
    path.write_bytes(b"problem,correct\n\xff\xfe,1\n")
    code, _, err = run(capsys, "passk", path)
    assert code == 2 and err.count("\n") == 1 and "is not UTF-8 text" in err


def test_malformed_samples_name_the_file(capsys, tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"problem": 1}\n')
    code, _, err = run(capsys, "passk", path)
    assert code == 2 and err.startswith(f"ontheline: error: FILE {str(path)!r}: The samples need a 'correct' column")


def test_an_interrupt_exits_130_with_one_line(capsys, monkeypatch, files):
    monkeypatch.setattr(estimate_cli, "evaluate", raising(KeyboardInterrupt()))
    code, out, err = estimate(capsys, files)
    assert (code, out, err) == (130, "", "ontheline: interrupted.\n")


# --- the command line itself -------------------------------------------------------------------


def test_an_unknown_command_points_at_ontheline_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["estimat"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.endswith("see 'ontheline --help'.\n") and "ontheline ontheline" not in err


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["estimate", "--id", "a.npz"], "ontheline estimate"),
        (["estimate", "--id", "a.npz", "--ood", "b.npz", "--bogus"], "ontheline estimate"),
        (["store", "ls", "--bogus"], "ontheline store ls"),
        (["store"], "ontheline store"),
    ],
)
def test_a_bad_subcommand_line_points_at_that_subcommands_help(capsys, argv, command):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.endswith(f"see '{command} --help'.\n"), err


def test_an_output_error_is_about_the_path_itself_what_is_under_it_beside_it_or_above_it():
    target = Path("/data/out/report.html")

    def about(filename):
        return _common.is_about(OSError(errno.EACCES, "Permission denied", filename), target)

    assert _common.is_about(OSError(errno.ENOSPC, "No space left on device"), target)  # a write() names no file
    assert about(str(target)) and about("/data/out/.report.html.42.tmp") and about("/data/out")
    assert about(str(Path("/data/out/report.html/inner")))
    assert not about("/elsewhere/file") and not about("/data/other/report.html")


def test_the_refused_flag_is_the_one_the_message_quotes_or_else_all_of_them():
    from ontheline.cli.adapt import ADAPT_FLAGS, refused_flag

    assert refused_flag("The 'lr' parameter of AdaptConfig must be in [0.0, inf].", ADAPT_FLAGS) == "--lr"
    assert refused_flag("something else", ADAPT_FLAGS) == "--method/--lr/--steps/--batch-size"


def test_debug_is_requested_by_the_flag_or_a_non_zero_environment_variable():
    assert _common.debug_requested(True, {}) and _common.debug_requested(False, {"ONTHELINE_DEBUG": "1"})
    assert not _common.debug_requested(False, {}) and not _common.debug_requested(False, {"ONTHELINE_DEBUG": "0"})


def test_python_m_ontheline_cli_still_runs_and_lists_the_debug_flag():
    done = subprocess.run([sys.executable, "-m", "ontheline.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--debug" in done.stdout and "estimate" in done.stdout


def test_importing_the_command_line_imports_no_research_module_but_the_registry():
    code = "import sys, ontheline.cli; print(sorted(m for m in sys.modules if m.startswith('ontheline.research')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['ontheline.research']"


def test_every_module_of_the_command_line_stays_under_400_lines():
    folder = Path(ontheline.cli.__file__).parent
    lengths = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert max(lengths.values()) <= 400, lengths
