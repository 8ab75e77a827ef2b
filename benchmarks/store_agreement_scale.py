"""Pairwise agreement at scale, read from the prediction store: dask (chunked) vs the in-memory kernel.

Writes ``--models`` labels-only entries of ``--samples`` predictions each into a store (once;
``--store`` keeps it between runs), then measures, each in a fresh child process so that peak
memory is its own: (1) ``pairwise_agreement(store.stacked_labels(keys))``, read lazily and
reduced chunk by chunk with dask; (2) every entry read into one in-memory array, then the same
kernel. Both must give the same matrix. Usage::

    python benchmarks/store_agreement_scale.py [--models 1000] [--samples 1000000] [--store DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_store(path: Path, n_models: int, n_samples: int, n_classes: int) -> list[str]:
    """Correlated zoo predictions: each model is right on a model-specific share of samples."""
    from ontheline.store import Store

    store = Store(path)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, n_classes, n_samples).astype(np.uint8)
    keys = []
    for i in range(n_models):
        name = f"m{i:04d}"
        existing = store.ls(model=name)
        if existing:
            keys.append(existing[0].key)
            continue
        model_rng = np.random.default_rng(i + 1)
        wrong = model_rng.random(n_samples) > 0.6 + 0.35 * i / max(n_models - 1, 1)
        labels = np.where(wrong, model_rng.integers(0, n_classes, n_samples), truth).astype(np.uint8)
        info = store.put(
            labels=labels,
            model=name,
            model_fingerprint=f"{name}-{n_samples}",
            dataset="scale",
            dataset_fingerprint=f"scale-{n_samples}",
        )
        keys.append(info.key)
    return keys


def measure(path: Path, keys: list[str], mode: str) -> dict[str, object]:
    import dask

    import ontheline as otl
    from ontheline.store import Store

    store = Store(path)
    start = time.perf_counter()
    if mode == "dask":
        with dask.config.set(scheduler="threads"):
            agreement = otl.pairwise_agreement(store.stacked_labels(keys))
    else:
        labels = np.stack([store.get(k, verify=False).labels for k in keys])
        agreement = otl.pairwise_agreement(labels)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "digest": hashlib.sha256(agreement.tobytes()).hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--store", help="keep the generated store here (default: a temporary folder)")
    parser.add_argument("--measure", choices=("dask", "memory"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.store or scratch)
        if args.measure:
            keys = json.loads((path / "scale-keys.json").read_text())
            print(json.dumps(measure(path, keys, args.measure)))
            return
        start = time.perf_counter()
        keys = write_store(path, args.models, args.samples, args.classes)
        (path / "scale-keys.json").write_text(json.dumps(keys))
        written = time.perf_counter() - start
        results = {}
        for mode in ("dask", "memory"):
            child = [sys.executable, __file__, "--store", str(path), "--measure", mode, "--samples", str(args.samples)]
            results[mode] = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout)
        pair_samples = args.models * (args.models - 1) / 2 * args.samples
        print(
            json.dumps(
                {
                    "models": args.models,
                    "samples": args.samples,
                    "write_seconds": round(written, 1),
                    "same_result": results["dask"]["digest"] == results["memory"]["digest"],
                    "dask": results["dask"]
                    | {"pair_samples_per_s": f"{pair_samples / results['dask']['seconds']:.3g}"},
                    "memory": results["memory"]
                    | {"pair_samples_per_s": f"{pair_samples / results['memory']['seconds']:.3g}"},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
