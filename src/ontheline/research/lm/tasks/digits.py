"""Digit sums mod 10 with progressive or premature traces (for progressive confidence shaping)."""

from __future__ import annotations

import numpy as np

from ontheline.research.lm.tasks.records import Example, _check_n, _range


def digit_sums(
    n: int,
    seed: int,
    *,
    digits: int | tuple[int, int] = (3, 4),
    trace: str | float = "progressive",
    shortcut: bool = False,
) -> list[Example]:
    """The sum of a few digits mod 10, with a progressive or a premature trace.

    The prompt lists the digits (``3 1 4 1 5 =\\n``). A *progressive* trace writes the
    running sums mod 10 and then the answer (``3 4 8 9 4\\nANS 4``): the answer becomes
    knowable step by step. A *premature* trace states a guess first, then filler of the same
    length that computes nothing, then the guess as the answer (``GUESS 4\\n. . . . .\\nANS 4``).

    Parameters
    ----------
    n, seed : int
    digits : int or (int, int)
        How many digits (an inclusive range): 3-4 is easy, 8-10 hard.
    trace : "progressive", "premature" or float in [0, 1]
        One kind of trace, or the chance that each example's trace is progressive (a mixture;
        the share of progressive traces is the "accessibility" knob).
    shortcut : bool
        Premature guesses use the last digit instead of the true answer (right about one time
        in ten, and then the completion's ``ANS`` is wrong).

    Returns
    -------
    list of Example
        ``info["trace"]`` is "progressive" or "premature"; premature ones have ``info["guess"]``.
        The digits are the same whatever ``trace`` and ``shortcut`` are.

    References
    ----------
    .. [1] J. Gai, Z. Zeng, C. Baek, Y. Wu, Z. Kolter, A. Risteski and A. Raghunathan, "Premature
       Confidence in Chain-of-Thought Reasoning" (progressive confidence shaping), arXiv 2026, arXiv:2605.24396.

    Examples
    --------
    >>> ex = digit_sums(1, seed=0, digits=5)[0]
    >>> print(ex.prompt + ex.completion)
    8 6 5 2 3 =
    8 4 9 1 4
    ANS 4
    >>> early = digit_sums(1, seed=0, digits=5, trace="premature")[0]
    >>> print(early.completion)
    GUESS 4
    . . . . .
    ANS 4
    """
    lo, hi = _range(digits, "digits", minimum=1)
    _check_n(n)
    if isinstance(trace, str):
        if trace not in ("progressive", "premature"):
            raise ValueError(f"trace must be 'progressive', 'premature' or a share in [0, 1]; got {trace!r}.")
        share = 1.0 if trace == "progressive" else 0.0
    elif isinstance(trace, (int, float)) and 0.0 <= trace <= 1.0:
        share = float(trace)
    else:
        raise ValueError(f"trace must be 'progressive', 'premature' or a share in [0, 1]; got {trace!r}.")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ds = rng.integers(0, 10, size=int(rng.integers(lo, hi + 1))).tolist()
        progressive = rng.random() < share  # drawn always, so the digits do not depend on trace
        running = np.cumsum(ds) % 10
        answer = str(int(running[-1]))
        prompt = " ".join(map(str, ds)) + " =\n"
        if progressive:
            completion = " ".join(map(str, running.tolist())) + f"\nANS {answer}"
            info = {"trace": "progressive"}
        else:
            guess = str(ds[-1]) if shortcut else answer
            completion = f"GUESS {guess}\n" + " ".join("." * len(ds)) + f"\nANS {guess}"
            info = {"trace": "premature", "guess": guess}
        out.append(Example(prompt, completion, answer, info))
    return out


__all__ = ["digit_sums"]
