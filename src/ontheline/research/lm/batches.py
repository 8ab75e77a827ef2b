"""Training rows and batches: examples (SFT, loss on the completion) and documents (packed), a batch per step.

The batch of step ``s`` is a function of ``(seed, s)`` alone (the rows of the concatenated
per-epoch permutations ``default_rng([seed, epoch])``), which is what makes resuming exact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ontheline.research.lm.tasks import Example

#: The label of a token that is not trained on (torch's cross-entropy ``ignore_index``).
IGNORE = -100

#: A batch function: ``batch(step) -> {"input_ids", "labels"[, "attention_mask"]}`` (torch int64 tensors).
BatchFn = Callable[[int], Mapping[str, Any]]


def rows_of(
    data: Sequence[Example] | Sequence[str], tokenizer: Any, loss_on: str | None, context: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Each training row as ``(input ids, labels)`` and a fingerprint of the data."""
    items: list[Any] = list(data)
    if not items:
        raise ValueError("The training data is empty; pass examples, documents or a batch function.")
    digest = hashlib.sha256()
    if all(isinstance(x, Example) for x in items):
        if loss_on not in (None, "completion", "all"):
            raise ValueError(f"loss_on must be 'completion' or 'all'; got {loss_on!r}.")
        rows = []
        for i, ex in enumerate(items):
            prompt = tokenizer.encode(ex.prompt)
            completion = tokenizer.encode(ex.completion)
            ids = np.array([tokenizer.bos_id, *prompt, *completion, tokenizer.eos_id], dtype=np.int64)
            if len(ids) > context:
                raise ValueError(
                    f"Example {i} is {len(ids)} tokens long (with <bos> and <eos>), more than the context of {context}; "
                    "use a model with more positions, or shorter examples."
                )
            labels = ids.copy()
            if loss_on != "all":
                labels[: 1 + len(prompt)] = IGNORE
            rows.append((ids, labels))
            digest.update(json.dumps([ex.prompt, ex.completion]).encode())
        return rows, "examples:" + digest.hexdigest()[:16]
    if all(isinstance(x, str) for x in items):
        if loss_on == "completion":
            raise ValueError("Documents have no completion; train on them with loss_on='all' (or leave it out).")
        stream: list[int] = []
        for doc in items:
            stream += [tokenizer.bos_id, *tokenizer.encode(doc), tokenizer.eos_id]
            digest.update(json.dumps(doc).encode())
        flat = np.array(stream, dtype=np.int64)
        rows = [(flat[i : i + context], flat[i : i + context]) for i in range(0, len(flat), context)]
        return rows, "documents:" + digest.hexdigest()[:16]
    kinds = sorted({type(x).__name__ for x in items})
    raise ValueError(f"The data must be all Examples or all strings (documents); found {kinds}.")


def collate(rows: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int) -> dict[str, Any]:
    """Right-pad rows into ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = x, y, 1
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(labels),
    }


def batches(
    data: Sequence[Example] | Sequence[str] | BatchFn,
    tokenizer: Any,
    batch_size: int,
    seed: int,
    loss_on: str | None,
    context: int,
) -> tuple[BatchFn, str | None]:
    """The batch of each step (a function of the step alone) and the data's fingerprint."""
    if callable(data):
        return data, None
    rows, fingerprint = rows_of(data, tokenizer, loss_on, context)
    n = len(rows)
    orders: dict[int, np.ndarray] = {}

    def order(epoch: int) -> np.ndarray:
        if epoch not in orders:
            if len(orders) > 4:
                orders.clear()
            orders[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        return orders[epoch]

    def batch(step: int) -> dict[str, Any]:
        positions = range(step * batch_size, (step + 1) * batch_size)
        return collate([rows[order(p // n)[p % n]] for p in positions], tokenizer.pad_id)

    return batch, fingerprint
