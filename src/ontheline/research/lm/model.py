"""Tiny GPT-2 language models built from a config, saved and loaded as Hugging Face folders.

:func:`tiny_gpt` builds a ``transformers.GPT2LMHeadModel`` from a ``GPT2Config`` (never from
the hub). :func:`save` and :func:`load` go through ``save_pretrained`` (safetensors) and
``AutoModelForCausalLM.from_pretrained(local_files_only=True, trust_remote_code=False)``, so
any local Hugging Face causal-LM folder (GPT-2, Llama, ...) loads the same way and works with
the rest of the lab. :func:`interpolate_models` is WiSE-FT on two such models, through
:func:`ontheline.research.wise_ft.interpolate`.
"""

from __future__ import annotations

import copy
import inspect
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ontheline._optional import extra
from ontheline.research.lm.tokenizer import BOS_ID, EOS_ID, PAD_ID
from ontheline.research.wise_ft.weights import interpolate


def tiny_gpt(
    vocab_size: int,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_positions: int = 128,
    seed: int = 0,
    *,
    dropout: float = 0.0,
    pad_token_id: int = PAD_ID,
    bos_token_id: int = BOS_ID,
    eos_token_id: int = EOS_ID,
) -> Any:
    """A small GPT-2 (``transformers.GPT2LMHeadModel``) with freshly initialised weights.

    Parameters
    ----------
    vocab_size : int
        ``CharTokenizer().vocab_size`` for the lab's tokenizer.
    n_layer, n_embd, n_head : int
        Transformer blocks, width (a multiple of ``n_head``) and attention heads; the MLP is
        ``4 * n_embd`` wide.
    n_positions : int
        The longest sequence (prompt + completion, with ``<bos>`` and ``<eos>``).
    seed : int
        Seeds the initialisation (in a forked torch RNG: the global one is left as it was).
    dropout : float
        Residual, embedding and attention dropout (0 by default: tiny models underfit long
        before they overfit, and training stays deterministic).
    pad_token_id, bos_token_id, eos_token_id : int
        Written to the config and the generation config (the lab tokenizer's ids by default).

    Returns
    -------
    transformers.GPT2LMHeadModel
        In eval mode. The input embedding and the output layer share their weights, as in GPT-2.

    References
    ----------
    .. [1] A. Radford, J. Wu, R. Child, D. Luan, D. Amodei and I. Sutskever, "Language Models are
       Unsupervised Multitask Learners", OpenAI technical report, 2019 (GPT-2).

    Examples
    --------
    >>> from ontheline.research.lm import CharTokenizer
    >>> model = tiny_gpt(CharTokenizer().vocab_size, n_layer=2, n_embd=32)
    >>> sum(p.numel() for p in model.parameters())
    32736
    >>> model.config.tie_word_embeddings, model.config.eos_token_id
    (True, 2)
    """
    with extra("hf"):
        from transformers import GPT2Config, GPT2LMHeadModel
    with extra("torch"):
        import torch

    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}).")
    config = GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, tie_word_embeddings=True,
        pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = pad_token_id
    model.generation_config.bos_token_id = bos_token_id
    model.generation_config.eos_token_id = eos_token_id
    return model.eval()


def save(model: Any, folder: str | os.PathLike[str]) -> Path:
    """Save a Hugging Face model to ``folder`` (safetensors weights, ``config.json``), atomically.

    The model is written to a temporary folder beside ``folder`` and renamed into place, so
    ``folder`` holds the old model or the complete new one, never part of one.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Examples
    --------
    >>> import tempfile
    >>> model = tiny_gpt(99, n_layer=1, n_embd=16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = save(model, f"{tmp}/model")
    ...     sorted(p.name for p in folder.iterdir() if p.suffix in (".json", ".safetensors"))
    ['config.json', 'generation_config.json', 'model.safetensors']
    """
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    kwargs: dict[str, Any] = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:  # transformers 4
        kwargs["safe_serialization"] = True
    try:
        with _quiet():
            model.save_pretrained(temporary, **kwargs)
        _replace_folder(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load(folder: str | os.PathLike[str], *, dtype: Any = None) -> Any:
    """Load a local Hugging Face causal language model (any architecture ``transformers`` knows).

    ``AutoModelForCausalLM.from_pretrained(folder, local_files_only=True,
    trust_remote_code=False)``: nothing is downloaded and no code from the folder runs.

    Parameters
    ----------
    folder : path
        A folder with ``config.json`` and weights (as :func:`save` or ``save_pretrained`` writes).
    dtype : torch.dtype, optional
        Load the weights in this dtype (their saved dtype by default).

    Returns
    -------
    transformers.PreTrainedModel
        In eval mode.

    Examples
    --------
    >>> import tempfile, torch
    >>> model = tiny_gpt(99, n_layer=1, n_embd=16)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     again = load(save(model, tmp))
    >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    True
    """
    with extra("hf"):
        from transformers import AutoModelForCausalLM

    path = Path(folder)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"{str(path)!r} is not a Hugging Face model folder (no config.json); save one with save() or save_pretrained()."
        )
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if dtype is not None:
        kwargs["dtype"] = dtype
    with _quiet():
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    return model.eval()


def interpolate_models(a: Any, b: Any, alpha: float) -> Any:
    """WiSE-FT: a new model with weights ``(1 - alpha) * a + alpha * b``.

    Every floating-point tensor of the state dict is interpolated (integer buffers are copied
    from the nearer endpoint) by :func:`ontheline.research.wise_ft.interpolate`; ``alpha = 0``
    and ``alpha = 1`` give ``a`` and ``b`` exactly. The two models must share an architecture;
    the new one is a copy of ``b`` (its config and generation config) in eval mode. Neither
    input is changed.

    Parameters
    ----------
    a, b : torch.nn.Module
        Two checkpoints of one model (e.g. an early and the latest SFT checkpoint).
    alpha : float in [0, 1]
        The weight of ``b``.

    Returns
    -------
    torch.nn.Module

    References
    ----------
    .. [1] M. Wortsman, G. Ilharco, J. W. Kim, M. Li, S. Kornblith, R. Roelofs, R. Gontijo-Lopes,
       H. Hajishirzi, A. Farhadi, H. Namkoong and L. Schmidt, "Robust Fine-Tuning of Zero-Shot Models",
       CVPR 2022, arXiv:2109.01903 (WiSE-FT).
    .. [2] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478 (interpolating SFT checkpoints for pass@k).

    Examples
    --------
    >>> import torch
    >>> early, late = tiny_gpt(99, n_layer=1, n_embd=16, seed=0), tiny_gpt(99, n_layer=1, n_embd=16, seed=1)
    >>> wise = interpolate_models(early, late, 0.5)
    >>> w = "transformer.h.0.mlp.c_fc.weight"
    >>> torch.allclose(wise.state_dict()[w], (early.state_dict()[w] + late.state_dict()[w]) / 2)
    True
    >>> torch.equal(interpolate_models(early, late, 0.0).state_dict()[w], early.state_dict()[w])
    True
    """
    state = interpolate(a.state_dict(), b.state_dict(), alpha)
    out = copy.deepcopy(b)
    out.load_state_dict(state)
    return out.eval()


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide transformers' progress bars (writing and loading shards) while saving or loading."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is there whenever a model is
        yield
        return
    shown = hf_logging.is_progress_bar_enabled()
    if shown:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


__all__ = ["interpolate_models", "load", "save", "tiny_gpt"]
