"""Optional dependencies: an import that fails names the extra that brings it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: The extra of ``pyproject.toml`` that installs each optional top-level package.
EXTRAS = {
    "torch": "torch",
    "sklearn": "bench",
    "mlxtend": "bench",
    "zarr": "store",
    "dask": "dask",
    "distributed": "dask",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "safetensors": "safetensors",
    "transformers": "hf",
    "matplotlib": "plot",
    "pandas": "frame",
    "gymnasium": "rl",
    "minigrid": "rl",
}


@contextmanager
def extra(name: str) -> Iterator[None]:
    """Turn a failed import of an optional package into an ImportError that names the extra to install.

    ``name`` is the extra (``'torch'``, ``'store'``, ...) that provides what the block imports.

    Examples
    --------
    >>> with extra("torch"):
    ...     import not_a_real_package_for_this_doctest
    Traceback (most recent call last):
    ...
    ImportError: This needs not_a_real_package_for_this_doctest, which comes with the 'torch' extra: pip install 'ontheline[torch]'.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        wanted = EXTRAS.get(missing, name)
        raise ImportError(
            f"This needs {missing or 'a package'}, which comes with the '{wanted}' extra: pip install 'ontheline[{wanted}]'."
        ) from exc
