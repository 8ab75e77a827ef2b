"""The tiny-LM version in the lab's fact world: pretrain facts, instruction-finetune, track reliance."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ontheline._optional import extra
from ontheline._progress import Progress
from ontheline.research.cpi.data import ift_mixture, with_distractors
from ontheline.research.cpi.metrics import conflict_accuracies, knowledge_filter
from ontheline.research.lm.tasks import ATTRIBUTES, Example, FactWorld

#: Mitigation arms: name -> (p, augment, attention_only); p None: the baseline's (the largest p run).
ARMS: dict[str, tuple[float | None, float, bool]] = {
    "curation": (0.0, 0.0, False),
    "augmentation": (None, 0.2, False),
    "attention_only": (None, 0.0, True),
}


@dataclass(frozen=True)
class LMConfig:
    """Sizes of :func:`pretrain` and :func:`finetune` (entities per pool, steps, the model)."""

    known: int = 60
    evaluated: int = 40
    unknown: int = 60
    copy_pool: int = 30
    copy_examples: int = 150
    pretrain_steps: int = 1500
    ift_examples: int = 400
    ift_steps: int = 400
    every: int = 40
    lr: float = 1e-3
    ift_lr: float = 3e-4
    batch_size: int = 32
    n_layer: int = 2
    n_embd: int = 64
    attribute: str = "city"
    distractors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def world_of(config: LMConfig, seed: int) -> tuple[FactWorld, dict[str, tuple[str, ...]]]:
    """The world (one attribute) and its disjoint entity pools: known (finetuning), evaluated, unknown, copy."""
    c = config
    sizes = {"known": c.known, "evaluated": c.evaluated, "unknown": c.unknown, "copy": c.copy_pool}
    world = FactWorld(sum(sizes.values()), seed=seed, attributes={c.attribute: ATTRIBUTES[c.attribute]})
    pools, start = {}, 0
    for name, size in sizes.items():
        pools[name] = world.entities[start : start + size]
        start += size
    return world, pools


def pretrain(config: LMConfig, seed: int, progress: Progress | None = None) -> tuple[Any, FactWorld, dict[str, Any]]:
    """A tiny GPT that answers the known and evaluated entities' questions closed-book, with a little context use."""
    with extra("torch"), extra("hf"):
        from ontheline.research.lm import CharTokenizer, tiny_gpt, train
    c = config
    world, pools = world_of(c, seed)
    closed = world.questions([*pools["known"], *pools["evaluated"]])
    copying = world.context_questions(c.copy_examples, seed=seed + 1, counterfactual=0.0, entities=pools["copy"])
    copying = [with_distractors(world, q, c.distractors, seed=seed + 2 + i) for i, q in enumerate(copying)]
    model = tiny_gpt(CharTokenizer().vocab_size, n_layer=c.n_layer, n_embd=c.n_embd, n_positions=256, seed=seed)
    train(model, [*closed, *copying], steps=c.pretrain_steps, lr=c.lr, warmup=50, batch_size=c.batch_size, seed=seed,
          threads=1, progress=progress)  # fmt: skip
    return model, world, pools


def evaluation_sets(
    world: FactWorld, pools: dict[str, Any], seed: int, distractors: int = 0
) -> dict[str, list[Example]]:
    """Closed-book, conflict (counterfactual context) and non-conflict (agreeing context) questions on the evaluated entities."""
    attribute = next(iter(world.attributes))
    entities = pools["evaluated"]
    sets = {
        "conflict": [world.context_question(e, attribute, counterfactual=True, seed=seed * 1000 + i)
                     for i, e in enumerate(entities)],
        "nonconflict": [world.context_question(e, attribute, counterfactual=False, seed=seed * 1000 + i)
                        for i, e in enumerate(entities)],
    }  # fmt: skip
    sets = {name: [with_distractors(world, q, distractors, seed=seed * 1000 + i) for i, q in enumerate(qs)]
            for name, qs in sets.items()}  # fmt: skip
    return {"closed": [world.question(e, attribute) for e in entities], **sets}


def answers(model: Any, prompts: list[Example], values: tuple[str, ...]) -> list[str]:
    """Each prompt's most likely completion among ``ANS <value>`` for the attribute's values (one forward pass)."""
    import torch

    from ontheline.research.lm import EOS_ID, CharTokenizer, completion_logprobs

    tok = CharTokenizer()
    ids = [tok.encode(f"ANS {v}") + [EOS_ID] for v in values]
    rows = [(q, i) for q in prompts for i in ids]
    with torch.no_grad():
        logprobs, mask = completion_logprobs(model, [q for q, _ in rows], [i for _, i in rows])
    scores = (logprobs * mask).sum(1).reshape(len(prompts), len(values)).numpy()
    return [values[int(j)] for j in scores.argmax(1)]


def score(model: Any, sets: dict[str, list[Example]], values: tuple[str, ...], known: np.ndarray) -> dict[str, Any]:
    """Context and parametric accuracy on the filtered conflicts, and non-conflict accuracy."""
    was = model.training
    model.eval()
    try:
        conflict = answers(model, sets["conflict"], values)
        nonconflict = answers(model, sets["nonconflict"], values)
    finally:
        model.train(was)
    acc = conflict_accuracies(conflict, [q.info["context"] for q in sets["conflict"]],
                              [q.info["world"] for q in sets["conflict"]], known=known)  # fmt: skip
    acc["nonconflict_accuracy"] = float(np.mean([a == q.answer for a, q in zip(nonconflict, sets["nonconflict"])]))
    return acc


def finetune(
    base: Any,
    world: FactWorld,
    pools: dict[str, Any],
    config: LMConfig,
    *,
    p: float,
    seed: int,
    augment: float = 0.0,
    attention_only: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Instruction-finetune a copy of ``base`` on :func:`ift_mixture` and score every checkpoint (step 0 included)."""
    import copy

    from ontheline.research.lm import load, train

    c = config
    values = world.attributes[next(iter(world.attributes))]
    sets = evaluation_sets(world, pools, seed, c.distractors)
    known = knowledge_filter(answers(base.eval(), sets["closed"], values), [q.answer for q in sets["closed"]])
    model = copy.deepcopy(base)
    if attention_only:
        for name, parameter in model.named_parameters():
            parameter.requires_grad = ".attn." in name
    data = ift_mixture(world, c.ift_examples, p, known=pools["known"], unknown=pools["unknown"], seed=seed + 7,
                       augment=augment, distractors=c.distractors)  # fmt: skip
    began = time.perf_counter()
    rows = [{"step": 0, **score(model, sets, values, known)}]
    with tempfile.TemporaryDirectory(prefix="cpi-") as folder:
        result = train(model, data, steps=c.ift_steps, lr=c.ift_lr, schedule="constant", batch_size=c.batch_size,
                       seed=seed, checkpoint_every=c.every, checkpoint_dir=folder, threads=1, progress=progress)  # fmt: skip
        for path in result.checkpoints:
            rows.append({"step": int(path.name.split("-")[1]), **score(load(path), sets, values, known)})
    return {
        "steps": [r["step"] for r in rows],
        "reliance": [r["context_accuracy"] for r in rows],
        "parametric_accuracy": [r["parametric_accuracy"] for r in rows],
        "nonconflict_accuracy": [r["nonconflict_accuracy"] for r in rows],
        "known_items": int(known.sum()),
        "evaluated_items": len(known),
        "seconds": time.perf_counter() - began,
    }


def run_lm(
    config: LMConfig, ps: tuple[float, ...], seed: int, *, arms: bool = True, progress: Progress | None = None
) -> dict[str, Any]:
    """Pretrain once; finetune at each ``p`` and (``arms``) the mitigation arms of :data:`ARMS` at the largest ``p``."""
    began = time.perf_counter()
    base, world, pools = pretrain(config, seed, progress)
    pretrain_seconds = time.perf_counter() - began
    out: dict[str, Any] = {"lm": {}, "mitigations": {}}
    for p in ps:
        out["lm"][str(p)] = finetune(base, world, pools, config, p=p, seed=seed, progress=progress)
    if arms:
        top = max(ps)
        for name, (share, augment, attention_only) in ARMS.items():
            if name == "curation" and "0.0" in out["lm"]:
                out["mitigations"][name] = {**out["lm"]["0.0"], "p": 0.0}
                continue
            arm_p = top if share is None else share
            out["mitigations"][name] = {
                **finetune(base, world, pools, config, p=arm_p, seed=seed, augment=augment,
                           attention_only=attention_only, progress=progress),
                "p": arm_p,
            }  # fmt: skip
    out["pretrain_seconds"] = pretrain_seconds
    return out


__all__ = ["ARMS", "LMConfig", "answers", "evaluation_sets", "finetune", "pretrain", "run_lm", "score", "world_of"]
