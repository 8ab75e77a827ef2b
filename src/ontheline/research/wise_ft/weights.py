"""Weight interpolation between two checkpoints of one model (WiSE-FT).

``theta = (1 - alpha) * theta_a + alpha * theta_b`` over every floating-point tensor. Dang,
Baek, Wen, Kolter and Raghunathan (2025) interpolate an early and the latest supervised
finetuning checkpoint (alpha = 0.5) to recover pass@k while improving pass@1.

Integer and boolean tensors (BatchNorm's ``num_batches_tracked``, position ids) are copied,
not averaged: from ``theta_a`` when ``alpha < 0.5``, else from ``theta_b``. ``alpha = 0`` and
``alpha = 1`` return the endpoints exactly. Files are handled tensor by tensor: safetensors
are read lazily and written as they are computed, so a large model never needs two copies
in memory; torch files are memory-mapped.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ontheline._io import atomic_write
from ontheline._optional import extra

_ST_DTYPES = {  # safetensors dtype names (the format's specification)
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip


def interpolate(state_a: Mapping[str, Any], state_b: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Interpolate two state dicts of torch tensors (or numpy arrays); see the module docstring.

    Parameters
    ----------
    state_a, state_b : mapping of str to tensor or ndarray
        Two checkpoints of the same architecture (the same keys, shapes and dtypes).
    alpha : float in [0, 1]
        The weight of ``state_b``: 0 gives ``state_a``, 1 gives ``state_b``.

    Returns
    -------
    dict of str to tensor or ndarray
        ``(1 - alpha) * theta_a + alpha * theta_b`` for every floating-point tensor, in its dtype.

    References
    ----------
    .. [1] M. Wortsman, G. Ilharco, J. W. Kim, M. Li, S. Kornblith, R. Roelofs, R. Gontijo-Lopes,
       H. Hajishirzi, A. Farhadi, H. Namkoong and L. Schmidt, "Robust Fine-Tuning of Zero-Shot Models",
       CVPR 2022, arXiv:2109.01903 (WiSE-FT).
    .. [2] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478 (interpolating SFT checkpoints for pass@k).

    Examples
    --------
    >>> import numpy as np
    >>> early = {"w": np.array([0.0, 2.0]), "steps": np.array(10)}
    >>> late = {"w": np.array([1.0, 4.0]), "steps": np.array(90)}
    >>> mixed = interpolate(early, late, 0.5)
    >>> mixed["w"].tolist(), int(mixed["steps"])  # integers are copied from the nearer checkpoint
    ([0.5, 3.0], 90)
    """
    _check_alpha(alpha)
    _check_same(state_a.keys(), state_b.keys())
    return {key: mix(key, state_a[key], state_b[key], alpha) for key in state_a}


def mix(key: str, a: Any, b: Any, alpha: float) -> Any:
    """One tensor of the interpolation; refuses shapes or dtypes that differ.

    Examples
    --------
    >>> import numpy as np
    >>> mix("w", np.zeros(2, np.float16), np.ones(2, np.float16), 0.25)  # computed in float64, kept in float16
    array([0.25, 0.25], dtype=float16)
    >>> try:
    ...     mix("w", np.zeros(2), np.zeros(3), 0.5)
    ... except ValueError as exc:
    ...     print(str(exc).split(";")[0])
    Tensor 'w' has shape (2,) in the first checkpoint and (3,) in the second
    """
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"Tensor {key!r} has shape {tuple(a.shape)} in the first checkpoint and {tuple(b.shape)} in "
                         "the second; interpolate checkpoints of the same architecture.")  # fmt: skip
    if a.dtype != b.dtype:
        raise ValueError(f"Tensor {key!r} has dtype {a.dtype} in one checkpoint and {b.dtype} in the other.")
    if alpha in (0, 1) or not _is_float(a):  # the endpoints exactly; integers from the nearer one
        return _copy(a if alpha < 0.5 else b)
    if hasattr(a, "to"):  # torch: in float32 at least (half precision would round the weights twice)
        with extra("torch"):
            import torch

        wide = torch.promote_types(a.dtype, torch.float32)
        return (a.to(wide) * (1 - alpha) + b.to(wide) * alpha).to(a.dtype)
    return (a.astype("float64") * (1 - alpha) + b.astype("float64") * alpha).astype(a.dtype)


def interpolate_files(
    path_a: str | os.PathLike[str], path_b: str | os.PathLike[str], alpha: float, out: str | os.PathLike[str]
) -> Path:
    """Interpolate two checkpoints on disk into ``out``.

    Each of ``path_a`` / ``path_b`` is a ``.safetensors`` file, a torch state-dict file (read
    with ``weights_only=True``), or a Hugging Face model folder (its ``*.safetensors`` shards
    are interpolated one by one; every other file, such as ``config.json``, is copied from
    ``path_b``). Returns the path written.

    References
    ----------
    .. [1] M. Wortsman, G. Ilharco, J. W. Kim, M. Li, S. Kornblith, R. Roelofs, R. Gontijo-Lopes,
       H. Hajishirzi, A. Farhadi, H. Namkoong and L. Schmidt, "Robust Fine-Tuning of Zero-Shot Models",
       CVPR 2022, arXiv:2109.01903 (WiSE-FT).
    .. [2] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478 (interpolating SFT checkpoints for pass@k).

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from safetensors.torch import load_file, save_file
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     early, late, wise = (f"{folder}/{name}.safetensors" for name in ("early", "late", "wise"))
    ...     save_file({"w": torch.zeros(2), "b": torch.ones(1)}, early)
    ...     save_file({"w": torch.ones(2), "b": torch.ones(1)}, late)
    ...     out = interpolate_files(early, late, 0.25, wise)
    ...     print(out.name, load_file(out)["w"].tolist())
    wise.safetensors [0.25, 0.25]
    """
    _check_alpha(alpha)
    a, b, out = Path(path_a), Path(path_b), Path(out)
    for path in (a, b):
        if not path.exists():
            raise ValueError(
                f"Checkpoint {str(path)!r} does not exist; pass a .safetensors or .pt file or a model folder."
            )
    if a.is_dir() != b.is_dir():
        raise ValueError("Pass two files or two model folders, not one of each.")
    if a.is_dir():
        return _interpolate_folders(a, b, alpha, out)
    if a.suffix == ".safetensors" and b.suffix == ".safetensors":
        _interpolate_safetensors(a, b, alpha, out)
        return out
    with extra("torch"):
        import torch

    state_a = torch.load(a, map_location="cpu", weights_only=True, mmap=True)
    state_b = torch.load(b, map_location="cpu", weights_only=True, mmap=True)
    with atomic_write(out) as handle:
        torch.save(interpolate(state_a, state_b, alpha), handle)
    return out


def _interpolate_folders(a: Path, b: Path, alpha: float, out: Path) -> Path:
    shards_a = sorted(p.name for p in a.glob("*.safetensors"))
    shards_b = sorted(p.name for p in b.glob("*.safetensors"))
    if not shards_a:
        raise ValueError(f"Model folder {str(a)!r} has no .safetensors file; save the model with safe_serialization.")
    _check_same(shards_a, shards_b, what="weight files")
    out.mkdir(parents=True, exist_ok=True)
    for item in b.iterdir():
        if item.is_file() and item.suffix != ".safetensors":
            shutil.copy2(item, out / item.name)
    for name in shards_a:
        _interpolate_safetensors(a / name, b / name, alpha, out / name)
    return out


def _interpolate_safetensors(a: Path, b: Path, alpha: float, out: Path) -> None:
    """Read both files lazily and write the result tensor by tensor (the safetensors layout:
    an 8-byte little-endian header length, a JSON header of dtypes, shapes and byte offsets,
    then the raw little-endian tensor bytes)."""
    with extra("safetensors"):
        from safetensors import safe_open

    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        keys = list(fa.keys())
        _check_same(keys, fb.keys())
        header_a, header_b = _header(a), _header(b)
        header: dict[str, Any] = (
            {"__metadata__": header_b.get("__metadata__", {})} if "__metadata__" in header_b else {}
        )
        offset = 0
        for key in keys:
            info = header_a[key]
            if info["shape"] != header_b[key]["shape"] or info["dtype"] != header_b[key]["dtype"]:
                raise ValueError(f"Tensor {key!r} differs in shape or dtype between the two checkpoints: "
                                 f"{info['dtype']}{info['shape']} vs {header_b[key]['dtype']}{header_b[key]['shape']}.")  # fmt: skip
            size = info["data_offsets"][1] - info["data_offsets"][0]
            header[key] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [offset, offset + size]}
            offset += size
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
        with atomic_write(out) as handle:
            handle.write(struct.pack("<Q", len(text)) + text)
            for key in keys:
                tensor = mix(key, fa.get_tensor(key), fb.get_tensor(key), alpha)
                handle.write(_tensor_bytes(tensor))


def _header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length))


def _tensor_bytes(tensor: Any) -> bytes:
    with extra("torch"):
        import torch

    flat = tensor.detach().contiguous().cpu().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _is_float(x: Any) -> bool:
    dtype = x.dtype
    return bool(getattr(dtype, "is_floating_point", False)) or getattr(dtype, "kind", "") == "f"


def _copy(x: Any) -> Any:
    return x.clone() if hasattr(x, "clone") else x.copy()


def _check_alpha(alpha: float) -> None:
    if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1] (0: the first checkpoint, 1: the second); got {alpha!r}.")


def _check_same(keys_a: Iterable[str], keys_b: Iterable[str], what: str = "tensors") -> None:
    a, b = list(keys_a), list(keys_b)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5]
        raise ValueError(
            f"The checkpoints hold different {what}: only in the first {only_a}, only in the second {only_b}; "
            "interpolate checkpoints of the same model."
        )


__all__ = ["interpolate", "interpolate_files", "mix"]
