"""Pairwise-agreement throughput: ontheline's bit-plane kernel vs the per-pair numpy loop.

Both run in this one process on the same int64 label array, so the ratio is measured in one
run. The loop is the official AGL code's approach, ``(P[i] == P[j]).mean()`` for every pair
i < j. Usage::

    python benchmarks/agreement_throughput.py [--models 1000] [--samples 100000] [--classes 10]
        [--baseline-pairs N]   # time the loop on N random pairs and extrapolate (default: all pairs)
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import ontheline as otl


def per_pair_loop(labels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.array([(labels[i] == labels[j]).mean() for i, j in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: all CPUs)")
    parser.add_argument("--baseline-pairs", type=int, default=None, help="time the loop on this many random pairs")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, (args.models, args.samples))  # int64, as users usually have them
    all_pairs = np.argwhere(np.triu(np.ones((args.models, args.models), bool), k=1))
    n_pairs = len(all_pairs)

    start = time.perf_counter()
    agreement = otl.pairwise_agreement(labels, n_threads=args.threads)
    kernel_s = time.perf_counter() - start

    timed = (
        all_pairs
        if args.baseline_pairs is None
        else all_pairs[rng.choice(n_pairs, min(args.baseline_pairs, n_pairs), replace=False)]
    )
    start = time.perf_counter()
    reference = per_pair_loop(labels, timed)
    loop_s = (time.perf_counter() - start) * n_pairs / len(timed)
    assert np.array_equal(reference, agreement[timed[:, 0], timed[:, 1]]), "kernel disagrees with the loop"

    pair_samples = n_pairs * args.samples
    print(
        json.dumps(
            {
                "models": args.models,
                "samples": args.samples,
                "classes": args.classes,
                "threads": args.threads or "all",
                "cpu": platform.processor() or platform.machine(),
                "kernel_seconds": round(kernel_s, 3),
                "loop_seconds": round(loop_s, 3),
                "loop_pairs_timed": len(timed),
                "speedup": round(loop_s / kernel_s, 1),
                "kernel_pair_samples_per_second": f"{pair_samples / kernel_s:.3g}",
                "loop_pair_samples_per_second": f"{pair_samples / loop_s:.3g}",
                "exact": True,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
