"""Miniatures of the benchmark scripts: they run and their numbers are consistent, in seconds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_agreement_throughput_benchmark_runs_on_a_tiny_zoo():
    done = subprocess.run(
        [sys.executable, BENCH / "agreement_throughput.py", "--models", "20", "--samples", "3000", "--baseline-pairs", "50"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["exact"] is True and result["loop_pairs_timed"] == 50
    assert result["speedup"] > 0 and result["kernel_seconds"] > 0


def test_store_agreement_scale_benchmark_runs_on_a_tiny_store(tmp_path):
    pytest.importorskip("dask.array", reason="the dask extra, which make test installs")
    pytest.importorskip("zarr", reason="the store extra, which make test installs")
    done = subprocess.run(
        [sys.executable, BENCH / "store_agreement_scale.py", "--models", "12", "--samples", "30000", "--store", tmp_path],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["same_result"] is True and result["models"] == 12
    assert result["dask"]["seconds"] > 0 and result["memory"]["peak_rss_gb"] > 0


def test_adaptation_benchmark_runs_on_the_tiny_zoo(tmp_path, bench_store):
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    done = subprocess.run(
        [sys.executable, BENCH / "adaptation.py", "--config", "tiny", "--methods", "bn", "--store", bench_store,
         "--out", tmp_path, "--jobs", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["configs"] == ["none", "bn-b128"]
    assert set(result["summary"]) == {"none", "bn-b128"}
    choice = result["label_free_choice"]
    assert 0 <= choice["within_1_point"] <= choice["shifts"] == 7 and choice["mean_regret"] >= 0
    recorded = (tmp_path / "results.md").read_text()
    assert "Produced by `python benchmarks/adaptation.py --config tiny" in recorded
    assert json.loads((tmp_path / "results.json").read_text())["label_free_choice"]["per_shift"]


def test_lm_throughput_benchmark_runs_on_a_tiny_model():
    pytest.importorskip("torch", reason="the torch extra, which make test installs")
    pytest.importorskip("transformers", reason="the hf extra, which make test installs")
    done = subprocess.run(
        [sys.executable, BENCH / "lm_throughput.py", "--sizes", "1x32", "--threads", "1", "--train-steps", "3",
         "--prompts", "2", "--samples", "2", "--grpo-steps", "1"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    [run] = result["runs"]
    assert (run["size"], run["threads"]) == ("1x32", 1) and run["parameters"] > 0
    for key in ("train_tokens_per_s", "train_steps_per_s", "sampled_tokens_per_s", "grpo_steps_per_s"):
        assert run[key] > 0, key
    assert len(result["load_average_before"]) == 3 and result["command"].startswith(
        "python benchmarks/lm_throughput.py"
    )
