"""Multi-step arithmetic with one chain-of-thought line per operation and a checkable answer (the WiSE-FT task)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ontheline.research.lm.tasks.records import Example, _check_n, _range

_OPS = ("+", "-", "*")
_Ref = tuple[str, int]  # ("lit", value) or ("step", index)


def arithmetic(
    n: int,
    seed: int,
    *,
    ops: int | tuple[int, int] = (2, 3),
    corrupt: float = 0.0,
    max_operand: int = 99,
    max_factor: int = 12,
) -> list[Example]:
    """Multi-step arithmetic problems over ``+ - *`` with one chain-of-thought line per operation.

    The prompt is the expression (``7*8+12-5=\\n``); the completion computes each product,
    then the sum from left to right, one ``a op b=c`` line per operator, and ends with
    ``ANS c``. Every intermediate result and the answer lie in 0-999 by construction: each
    term is drawn below the room the running total leaves (a ``-`` that would go below 0
    becomes ``+``, and the other way round).

    Parameters
    ----------
    n : int
        Number of problems.
    seed : int
        The problems are a function of ``seed`` alone (and a prefix of any longer draw).
    ops : int or (int, int)
        Operators per problem (= chain-of-thought lines), or an inclusive range.
    corrupt : float in [0, 1]
        Chance that each chain-of-thought line slips (its result off by 1-3). A slip
        propagates: later lines compute correctly from the wrong value, so the completion's
        ``ANS`` is wrong while ``Example.answer`` stays the true answer ("broad, imperfect"
        pretraining data). Slips that would push a later value outside 0-999, or cancel an
        earlier slip, are not made.
        The prompts are the same whatever ``corrupt`` is; ``info["corrupted_lines"]`` counts
        the slips.
    max_operand : int
        Largest number outside a product.
    max_factor : int
        Largest factor of a product (factors are at least 2 where the room allows).

    Returns
    -------
    list of Example

    References
    ----------
    .. [1] X. Dang, C. Baek, K. Wen, Z. Kolter and A. Raghunathan, "Weight Ensembling Improves Reasoning
       in Language Models", COLM 2025, arXiv:2504.10478 (chain-of-thought SFT, pass@k).

    Examples
    --------
    >>> from ontheline.research.lm import answer_of
    >>> ex = arithmetic(1, seed=17)[0]
    >>> print(ex.prompt + ex.completion)
    7*8+76+37=
    7*8=56
    56+76=132
    132+37=169
    ANS 169
    >>> ex.answer
    '169'
    >>> slipped = arithmetic(50, seed=17, corrupt=0.5)
    >>> [e.prompt for e in slipped] == [e.prompt for e in arithmetic(50, seed=17)]
    True
    >>> sum(answer_of(e.completion) != e.answer for e in slipped) > 0
    True
    """
    lo, hi = _range(ops, "ops", minimum=1)
    _check_n(n)
    if not 0.0 <= corrupt <= 1.0:
        raise ValueError(f"corrupt must be a probability in [0, 1]; got {corrupt!r}.")
    if max_operand < 1 or max_factor < 2:
        raise ValueError("max_operand must be at least 1 and max_factor at least 2.")
    rng = np.random.default_rng(seed)
    slips = np.random.default_rng([seed, 1])  # a stream of its own: the prompts do not depend on corrupt
    out = []
    for _ in range(n):
        text, steps, refs = _expression(rng, int(rng.integers(lo, hi + 1)), max_operand, max_factor)
        values = _evaluate(steps, {})
        answer = values[-1]
        overrides: dict[int, int] = {}
        if corrupt > 0:
            for i in range(len(steps)):
                draw, size, sign = slips.random(), int(slips.integers(1, 4)), int(slips.choice([-1, 1]))
                if draw >= corrupt:
                    continue
                for delta in (sign * size, -sign * size):
                    trial = _evaluate(steps, {**overrides, i: delta})
                    if all(0 <= v <= 999 for v in trial) and trial[-1] != answer:
                        overrides[i] = delta
                        break
        shown = _evaluate(steps, overrides)
        lines = [f"{_value(a, shown)}{op}{_value(b, shown)}={shown[i]}" for i, (a, op, b) in enumerate(steps)]
        completion = "\n".join([*lines, f"ANS {shown[-1]}"])
        out.append(Example(text + "=\n", completion, str(answer), {"corrupted_lines": str(len(overrides))}))
        del refs
    return out


def _expression(
    rng: np.random.Generator, n_ops: int, max_operand: int, max_factor: int
) -> tuple[str, list[tuple[_Ref, str, _Ref]], list[_Ref]]:
    """One expression: its text, its steps (operand refs, operator) in evaluation order, and term refs."""
    chosen = [_OPS[i] for i in rng.choice(3, size=n_ops)]
    terms: list[int] = [1]  # factors per term
    signs: list[str] = []
    for op in chosen:
        if op == "*":
            terms[-1] += 1
        else:
            signs.append(op)
            terms.append(1)
    steps: list[tuple[_Ref, str, _Ref]] = []
    parts: list[str] = []
    running: _Ref | None = None
    total = 0
    refs: list[_Ref] = []
    for j, factors in enumerate(terms):
        if j == 0:
            room = 999
        else:
            sign = signs[j - 1]
            if sign == "-" and total < 1:
                sign = "+"
            elif sign == "+" and total > 998:
                sign = "-"
            signs[j - 1] = sign
            room = total if sign == "-" else 999 - total
        if factors == 1:
            value = int(rng.integers(1, min(max_operand, room) + 1))
            term: _Ref = ("lit", value)
            parts.append(str(value))
        else:
            product, numbers = 1, []
            for _ in range(factors):
                top = min(max_factor, room // product)
                f = int(rng.integers(2, top + 1)) if top >= 2 else 1
                numbers.append(f)
                product *= f
            parts.append("*".join(map(str, numbers)))
            term = ("lit", numbers[0])
            for f in numbers[1:]:
                steps.append((term, "*", ("lit", f)))
                term = ("step", len(steps) - 1)
            value = product
        refs.append(term)
        if running is None:
            running, total = term, value
        else:
            steps.append((running, signs[j - 1], term))
            running = ("step", len(steps) - 1)
            total = total - value if signs[j - 1] == "-" else total + value
    text = parts[0] + "".join(s + p for s, p in zip(signs, parts[1:]))
    return text, steps, refs


def _value(ref: _Ref, values: list[int]) -> int:
    return ref[1] if ref[0] == "lit" else values[ref[1]]


def _evaluate(steps: list[tuple[_Ref, str, _Ref]], overrides: Mapping[int, int]) -> list[int]:
    values: list[int] = []
    for i, (a, op, b) in enumerate(steps):
        x, y = _value(a, values), _value(b, values)
        result = x + y if op == "+" else x - y if op == "-" else x * y
        values.append(result + overrides.get(i, 0))
    return values


__all__ = ["arithmetic"]
