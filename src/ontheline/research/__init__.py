"""Paper reproductions, each run by ``ontheline repro NAME [--quick] [--format json]``.

A reproduction module has ``run(quick: bool, progress=None) -> dict`` (the JSON object) and
``text(result: dict) -> str`` (the tables a person reads); ``figures(result, folder)`` where
it draws any.
"""

from __future__ import annotations

import importlib
from types import ModuleType

REPROS = {
    "beyondweb": "ontheline.research.beyondweb.repro",
    "fm-agl": "ontheline.research.fm_agl.repro",
    "gde": "ontheline.research.gde.repro",
    "incremental": "ontheline.research.mcr2.repro_incremental",
    "cpi": "ontheline.research.cpi.repro",
    "interaction": "ontheline.research.interaction.repro",
    "pcs": "ontheline.research.confidence.repro",
    "rewards": "ontheline.research.rewards.repro",
    "sam": "ontheline.research.sam.repro",
    "spt": "ontheline.research.spt.repro",
    "vmcr2": "ontheline.research.mcr2.repro_vmcr2",
    "wise-ft": "ontheline.research.wise_ft.repro",
    "wise-ft-lm": "ontheline.research.wise_ft_lm.repro",
}


def load(name: str) -> ModuleType:
    if name not in REPROS:
        raise ValueError(f"Unknown reproduction {name!r}; choose one of {sorted(REPROS)}.")
    return importlib.import_module(REPROS[name])
