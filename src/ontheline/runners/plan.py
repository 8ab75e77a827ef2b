"""Which (model, dataset) entries a run needs, and which the store already holds: one plan for
the local runner, the Dask runner and the benchmark's store-filling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ontheline.store import Store, entry_key


@dataclass(frozen=True)
class Plan:
    """``keys[model][dataset]``, and the ``(model, dataset)`` pairs to compute (``missing``) or read (``cached``)."""

    keys: dict[str, dict[str, str]]
    missing: tuple[tuple[str, str], ...]
    cached: tuple[tuple[str, str], ...]


def plan(models: Mapping[str, str], datasets: Mapping[str, tuple[str, str]], store: Store) -> Plan:
    """The store key of every model on every dataset, and whether it is stored.

    Parameters
    ----------
    models : mapping of str to str
        Model name -> the fingerprint of its weights and configuration.
    datasets : mapping of str to (str, str)
        Dataset name -> (fingerprint of its content, preprocessing text).
    store : Store

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     p = plan({"m": "w1"}, {"val": ("x1", "")}, Store(folder))
    >>> p.missing, p.cached
    ((('m', 'val'),), ())
    """
    keys = {m: {d: entry_key(fp, *datasets[d]) for d in datasets} for m, fp in models.items()}
    pairs = [(m, d) for m in models for d in datasets]
    stored = {pair for pair in pairs if store.has(keys[pair[0]][pair[1]])}
    return Plan(keys, tuple(p for p in pairs if p not in stored), tuple(p for p in pairs if p in stored))
