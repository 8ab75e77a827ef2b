"""Training checkpoints: ``checkpoint_dir/step-%08d/`` holds a Hugging Face model folder, ``trainer.pt`` and ``trainer.json``.

``trainer.pt`` is the optimizer and RNG state, ``trainer.json`` the step, the losses, the
gradient norms and the run's settings (a resume must match them). Each checkpoint is written
to a temporary folder and renamed into place: it is complete or absent.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from ontheline.research.lm.model import _quiet, _replace_folder, load, save

#: A checkpoint folder's name; group 1 is the step.
CHECKPOINT = re.compile(r"^step-(\d+)$")


def write_checkpoint(
    folder: Path,
    step: int,
    model: Any,
    optimizer: Any,
    losses: list[float],
    norms: list[float],
    settings: dict[str, Any],
) -> Path:
    """Write the checkpoint of ``step`` to ``folder/step-%08d/`` (atomically) and return its path."""
    import torch

    target = folder / f"step-{step:08d}"
    temporary = folder / f".step-{step:08d}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        save(model, temporary)
        torch.save(
            {"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "step": step}, temporary / "trainer.pt"
        )
        state = {"step": step, "losses": losses, "grad_norms": norms, "settings": settings}
        (temporary / "trainer.json").write_text(json.dumps(state, indent=1))
        _replace_folder(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def latest(folder: Path) -> Path | None:
    """The checkpoint with the highest step in ``folder`` (None when there is none)."""
    found = listed(folder)
    return found[-1] if found else None


def restore(path: Path, model: Any, optimizer: Any, settings: dict[str, Any]) -> tuple[int, list[float], list[float]]:
    """Load checkpoint ``path`` into ``model`` and ``optimizer`` (and torch's RNG): ``(step, losses, grad_norms)``.

    Raises ValueError when the checkpoint was written with other ``settings``.
    """
    import torch

    state = json.loads((path / "trainer.json").read_text())
    saved = state["settings"]
    changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    if changed:
        shown = ", ".join(f"{k}: {saved.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
        raise ValueError(
            f"The checkpoint {str(path)!r} was written by a run with other settings ({shown}); "
            "resume with the same settings, pass resume=False, or use another checkpoint_dir."
        )
    with _quiet():
        model.load_state_dict(load(path).state_dict())
    trainer = torch.load(path / "trainer.pt", weights_only=True)
    optimizer.load_state_dict(trainer["optimizer"])
    torch.set_rng_state(trainer["rng"])
    return int(state["step"]), list(state["losses"]), list(state["grad_norms"])


def listed(folder: Path | None) -> list[Path]:
    """The checkpoint folders in ``folder``, by step (none when it is None or absent)."""
    if folder is None or not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]
