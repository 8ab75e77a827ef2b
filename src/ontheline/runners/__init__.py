"""Run models over datasets into the prediction store: adapters, the local runner and the Dask path."""

from ontheline.runners.adapters import Model, OnnxModel, SklearnModel, TorchModel, load_hf, load_sklearn, load_torch
from ontheline.runners.distributed import run_distributed
from ontheline.runners.local import Dataset, RunReport, run

__all__ = [
    "Dataset",
    "Model",
    "OnnxModel",
    "RunReport",
    "SklearnModel",
    "TorchModel",
    "load_hf",
    "load_sklearn",
    "load_torch",
    "run",
    "run_distributed",
]
