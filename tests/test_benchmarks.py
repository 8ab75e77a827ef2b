"""Miniatures of the benchmark scripts: they run and their numbers are consistent, in seconds."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_agreement_throughput_benchmark_runs_on_a_tiny_zoo():
    done = subprocess.run(
        [sys.executable, BENCH / "agreement_throughput.py", "--models", "20", "--samples", "3000", "--baseline-pairs", "50"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["exact"] is True and result["loop_pairs_timed"] == 50
    assert result["speedup"] > 0 and result["kernel_seconds"] > 0
