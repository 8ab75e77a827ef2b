"""Seeded task generators with checkable answers, and held-out splits that never overlap.

Every generator draws from ``numpy.random.default_rng`` only (never :mod:`random` or
:func:`hash`), so its output depends on the seed alone: not on the Python version, the hash
seed or the platform. Drawing ``n`` examples is a prefix of drawing more with the same seed.

The reasoning tasks return :class:`Example` records whose completion ends in a line
``ANS <answer>``, which :func:`answer_of` reads back from a generated completion:

============  =======================  ============================================
task          prompt                   completion
============  =======================  ============================================
arithmetic    ``7*8+12-5=\\n``          ``7*8=56\\n56+12=68\\n68-5=63\\nANS 63``
digit sums    ``3 1 4 1 5 =\\n``        ``3 4 8 9 4\\nANS 4`` (progressive)
                                       ``GUESS 4\\n. . . . .\\nANS 4`` (premature)
fact world    ``Q: Where does Bako     ``ANS rivertown``
              live?\\n``
============  =======================  ============================================

The text corpora (:func:`markov_text`, :meth:`FactWorld.documents`) are plain strings.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np

T = TypeVar("T")

_ANS = re.compile(r"^ANS[ \t]+(\S[^\n]*)", re.M)


@dataclass(frozen=True)
class Example:
    """One task instance: the ``prompt``, the reference ``completion`` and the ``answer`` it must reach.

    ``info`` holds task-specific facts about the example (not compared, not hashed): for
    instance ``{"corrupted_lines": "1"}`` for arithmetic, ``{"trace": "premature"}`` for digit
    sums, ``{"world": "red", "context": "blue"}`` for a counterfactual question.

    Examples
    --------
    >>> ex = Example("2+3=\\n", "2+3=5\\nANS 5", "5")
    >>> ex.text
    '2+3=\\n2+3=5\\nANS 5'
    >>> answer_of(ex.completion) == ex.answer
    True
    """

    prompt: str
    completion: str
    answer: str
    info: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def text(self) -> str:
        """``prompt + completion``: the training sequence (before ``<bos>`` and ``<eos>``)."""
        return self.prompt + self.completion


def answer_of(text: str) -> str | None:
    """The final answer in a completion: what follows the first ``ANS `` at the start of a line.

    Returns None when the completion has no such line (or an empty one); surrounding spaces
    are stripped. Every task here ends its completions with ``ANS <answer>``.

    Examples
    --------
    >>> answer_of("7*8=56\\n56+12=68\\nANS 68")
    '68'
    >>> answer_of("ANS  blue \\nANS red")   # the first answer counts
    'blue'
    >>> answer_of("7*8=56\\n56+12=6"), answer_of("the ANS 5"), answer_of("ANS \\n")
    (None, None, None)
    """
    match = _ANS.search(text)
    if match is None:
        return None
    return match.group(1).strip() or None


# ---------------------------------------------------------------------------------------------
# Arithmetic with chain of thought

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


# ---------------------------------------------------------------------------------------------
# Digit sums mod 10


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


# ---------------------------------------------------------------------------------------------
# Markov "web" and "domain" text

#: The "web" chain's words: 180 common English words and the full stop (which ends a sentence); none is a domain word.
WEB_WORDS = tuple(
    """the an this that these some every no one two many few all most other same new old good bad
    big small long short high low first last great little right wrong young early late green
    man woman child people friend teacher doctor city house school road river tree garden market
    book letter story song name word day night year week morning water food bread light fire
    time place world home car door window table room street family group idea
    is was has had makes made takes took sees saw gives gave finds found tells told
    asks asked works worked calls called tries tried sends sent feels felt brings brought
    keeps kept begins began shows showed hears heard plays played runs ran moves moved
    lives lived believes held writes wrote reads carries walks walked opens opened
    and but or so because when while if then after before near under over with without
    from into through about between against during of to in on at by for
    very often never always also still just only again soon here there today now
    .""".split()  # noqa: SIM905 - a paragraph of words reads better than a list of 181 strings
)

#: The "domain" chain's words: ABC-style music tokens (notes C-B in two octaves, plain, long ``2``
#: and short ``/2``, and the bar lines ``|``, ``||``, ``:|``), far from the web vocabulary.
DOMAIN_WORDS = tuple([note + length for note in "CDEFGABcdefgab" for length in ("", "2", "/2")] + ["|", "||", ":|"])

_CHAIN_SEEDS = {"web": 0, "domain": 1}


class MarkovChain:
    """A first-order Markov chain over words, each word with a few likely successors.

    Row ``i`` of the transition matrix puts Dirichlet(``concentration``) weights on
    ``branching`` successors chosen at random (and nothing elsewhere): text with learnable,
    sparse structure. The chain itself is a function of ``seed``; documents drawn from it
    take their own seed.

    Parameters
    ----------
    words : sequence of str
    seed : int
    branching : int
        Successors per word.
    concentration : float
        Dirichlet concentration of the successor weights (small: peaked).

    Attributes
    ----------
    words : tuple of str
    transition : ndarray of shape (len(words), len(words))
        Row-stochastic.
    start : ndarray of shape (len(words),)
        The distribution of a document's first word (uniform).

    Examples
    --------
    >>> chain = MarkovChain(["a", "b", "c"], seed=0, branching=2)
    >>> np.allclose(chain.transition.sum(axis=1), 1), int((chain.transition > 0).sum())
    (True, 6)
    >>> chain.sample(6, np.random.default_rng(0))
    ['b', 'b', 'a', 'c', 'b', 'b']
    """

    def __init__(self, words: Sequence[str], seed: int, *, branching: int = 6, concentration: float = 0.5) -> None:
        self.words = tuple(words)
        size = len(self.words)
        repeated = sorted({w for w in self.words if self.words.count(w) > 1})
        if size < 2 or repeated:
            raise ValueError(f"A Markov chain needs at least two words, each once; repeated: {repeated[:5]}.")
        if not 1 <= branching <= size:
            raise ValueError(f"branching must be between 1 and the number of words ({size}); got {branching}.")
        rng = np.random.default_rng(seed)
        self.transition = np.zeros((size, size))
        for i in range(size):
            successors = rng.choice(size, size=branching, replace=False)
            self.transition[i, successors] = rng.dirichlet(np.full(branching, concentration))
        self.start = np.full(size, 1.0 / size)
        self._cumulative = np.cumsum(self.transition, axis=1)

    def sample(self, length: int, rng: np.random.Generator) -> list[str]:
        """``length`` words from the chain, drawn with ``rng``."""
        state = int(rng.choice(len(self.words), p=self.start))
        out = [self.words[state]]
        for u in rng.random(max(length - 1, 0)):
            state = min(int(np.searchsorted(self._cumulative[state], u, side="right")), len(self.words) - 1)
            out.append(self.words[state])
        return out

    def entropy_rate(self) -> float:
        """The chain's entropy per word in nats under its stationary distribution (a loss floor).

        Examples
        --------
        >>> round(MarkovChain(["a", "b"], seed=0, branching=1).entropy_rate(), 6)
        0.0
        """
        values, vectors = np.linalg.eig(self.transition.T)
        stationary = np.abs(np.real(vectors[:, np.argmin(np.abs(values - 1))]))
        stationary /= stationary.sum()
        p = self.transition
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return float(stationary @ rows) + 0.0


def markov_chain(kind: str, chain_seed: int | None = None) -> MarkovChain:
    """The chain behind :func:`markov_text`: ``"web"`` (over :data:`WEB_WORDS`) or ``"domain"`` (over :data:`DOMAIN_WORDS`).

    ``chain_seed`` defaults to 0 for web and 1 for domain, so the two distributions are fixed
    and distinct; pass another to get another distribution of the same kind.

    Examples
    --------
    >>> len(markov_chain("web").words), len(markov_chain("domain").words)
    (181, 45)
    """
    if kind not in _CHAIN_SEEDS:
        raise ValueError(f"kind must be 'web' or 'domain'; got {kind!r}.")
    seed = _CHAIN_SEEDS[kind] if chain_seed is None else chain_seed
    if kind == "web":
        return MarkovChain(WEB_WORDS, seed, branching=8, concentration=0.5)
    return MarkovChain(DOMAIN_WORDS, seed, branching=4, concentration=0.5)


def markov_text(
    kind: str, n: int, seed: int, *, words: int | tuple[int, int] = (20, 60), chain_seed: int | None = None
) -> list[str]:
    """``n`` documents of Markov "web" or "domain" text (see :func:`markov_chain`).

    Parameters
    ----------
    kind : {"web", "domain"}
        Web text is English-like words with full stops; domain text is ABC-style music
        tokens. The two chains share no words.
    n, seed : int
        The documents are a function of ``seed`` (and the chain's seed).
    words : int or (int, int)
        Words per document, or an inclusive range.
    chain_seed : int, optional
        Another chain of the same kind (defaults: web 0, domain 1).

    Returns
    -------
    list of str

    References
    ----------
    .. [1] C. Baek, G. Monti, D. Schwab et al. and P. Maini, "The Finetuner's Fallacy" (specialized
       pretraining), arXiv 2026, arXiv:2603.16177.

    Examples
    --------
    >>> markov_text("web", 1, seed=0, words=12)
    ['showed brought that green opens day long when over just calls an']
    >>> markov_text("domain", 1, seed=0, words=12)
    ['e2 E2 c C | c C | c C | F']
    """
    chain = markov_chain(kind, chain_seed)
    lo, hi = _range(words, "words", minimum=1)
    _check_n(n)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        text = " ".join(chain.sample(int(rng.integers(lo, hi + 1)), rng))
        out.append(text.replace(" .", "."))
    return out


# ---------------------------------------------------------------------------------------------
# A world of entities and attributes

#: Each attribute of :class:`FactWorld` and the values it takes.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "yellow", "black", "white", "orange", "purple"),
    "city": ("rivertown", "stonebridge", "ashford", "lakeview", "millbrook", "northgate", "oakfield", "redcliff",
             "seaport", "westwood"),
    "year": tuple(str(y) for y in range(1950, 2000)),
    "job": ("baker", "pilot", "farmer", "doctor", "teacher", "singer", "sailor", "judge", "painter", "tailor"),
}  # fmt: skip

#: The question asked about each attribute (``{e}``: the entity).
QUESTIONS = {
    "color": "Q: What color does {e} like?\n",
    "city": "Q: Where does {e} live?\n",
    "year": "Q: When was {e} born?\n",
    "job": "Q: What does {e} do?\n",
}

#: The sentences that state a fact in documents and contexts (``{e}``: the entity, ``{v}``: the value).
STATEMENTS = {
    "color": ("{e} likes the color {v}.", "The favorite color of {e} is {v}.", "{e} always wears {v}."),
    "city": ("{e} lives in {v}.", "{e} has a house in {v}.", "The home of {e} is in {v}."),
    "year": ("{e} was born in {v}.", "{e} came into the world in {v}.", "The birth year of {e} is {v}."),
    "job": ("{e} works as a {v}.", "By trade, {e} is a {v}.", "{e} earns a living as a {v}."),
}

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st", "kl")
_VOWELS = ("a", "e", "i", "o", "u")


class FactWorld:
    """Seeded entities with one value per attribute, stated in documents and asked about in questions.

    Parameters
    ----------
    n_entities : int
        Entities, each a unique invented name (two or three syllables, capitalised).
    seed : int
        The world (names and values) is a function of ``seed``.
    attributes : mapping of str to sequence of str
        Each attribute and its values (:data:`ATTRIBUTES` by default); questions and
        statements for attributes outside :data:`QUESTIONS` / :data:`STATEMENTS` use a
        generic template.

    Attributes
    ----------
    entities : tuple of str
    values : dict of (entity, attribute) to str
        The world with fewer entities (same seed) is a prefix of this one.

    References
    ----------
    .. [1] P. Maini, V. Dorna, P. Doshi et al., C. Baek, ... and M. Leavitt, "BeyondWeb: Lessons from
       Scaling Synthetic Data for Trillion-scale Pretraining", arXiv 2025, arXiv:2508.10975.
    .. [2] S. Goyal, C. Baek, Z. Kolter and A. Raghunathan, "Context-Parametric Inversion: Why Instruction
       Finetuning May Not Actually Improve Context Reliance", ICLR 2025, arXiv:2410.10796.

    Examples
    --------
    >>> world = FactWorld(n_entities=20, seed=0)
    >>> e = world.entities[0]
    >>> e, world.values[e, "city"]
    ('Tikeba', 'stonebridge')
    >>> q = world.question(e, "city")
    >>> q.prompt, q.completion, q.answer
    ('Q: Where does Tikeba live?\\n', 'ANS stonebridge', 'stonebridge')
    >>> world.documents(1, seed=0, facts=1)
    ['Gafoklu came into the world in 1993.']
    >>> c = world.context_question(e, "city", counterfactual=True, seed=0)
    >>> print(c.prompt + c.completion)
    Context: Tikeba has a house in seaport.
    Q: Where does Tikeba live?
    ANS seaport
    >>> c.info
    {'entity': 'Tikeba', 'attribute': 'city', 'world': 'stonebridge', 'context': 'seaport', 'counterfactual': '1'}
    """

    def __init__(self, n_entities: int = 300, seed: int = 0, *, attributes: Mapping[str, Sequence[str]] = ATTRIBUTES):
        if n_entities < 1:
            raise ValueError(f"n_entities must be at least 1; got {n_entities}.")
        self.attributes = {name: tuple(values) for name, values in attributes.items()}
        for name, values in self.attributes.items():
            if len(values) < 2 or len(set(values)) != len(values):
                raise ValueError(f"Attribute {name!r} needs at least two distinct values.")
        rng = np.random.default_rng(seed)
        self.values: dict[tuple[str, str], str] = {}
        names: list[str] = []
        while len(names) < n_entities:  # an entity's values right after its name: a smaller world is a prefix
            syllables = int(rng.integers(2, 4))
            name = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                           for _ in range(syllables)).capitalize()  # fmt: skip
            if (name, next(iter(self.attributes))) in self.values:
                continue
            names.append(name)
            for attribute, values in self.attributes.items():
                self.values[name, attribute] = values[int(rng.integers(len(values)))]
        self.entities = tuple(names)

    def statement(self, entity: str, attribute: str, value: str | None = None, *, template: int = 0) -> str:
        """One sentence stating ``entity``'s ``attribute`` (the world's value unless ``value`` is given).

        Examples
        --------
        >>> FactWorld(3, seed=0).statement("Tikeba", "job", "pilot", template=1)
        'By trade, Tikeba is a pilot.'
        """
        forms = STATEMENTS.get(attribute, ("The {a} of {e} is {v}.",))
        value = self.values[entity, attribute] if value is None else value
        return forms[template % len(forms)].format(e=entity, v=value, a=attribute)

    def question(self, entity: str, attribute: str) -> Example:
        """The closed-book question about one fact; the answer is the world's value.

        Examples
        --------
        >>> FactWorld(3, seed=0).question("Tikeba", "year").completion
        'ANS 1990'
        """
        value = self.values[entity, attribute]
        prompt = QUESTIONS.get(attribute, "Q: What is the {a} of {e}?\n").format(e=entity, a=attribute)
        return Example(prompt, f"ANS {value}", value, {"entity": entity, "attribute": attribute})

    def questions(self, entities: Sequence[str] | None = None) -> list[Example]:
        """Every question about ``entities`` (all by default), entity by entity.

        Examples
        --------
        >>> len(FactWorld(5, seed=0).questions())
        20
        """
        chosen = self.entities if entities is None else entities
        return [self.question(e, a) for e in chosen for a in self.attributes]

    def context_question(
        self, entity: str, attribute: str, *, counterfactual: bool, seed: int, template: int | None = None
    ) -> Example:
        """A question after a context sentence that states the fact, or (counterfactual) another value.

        The expected answer is the context's value; ``info`` holds the world's value, the
        context's value and whether they differ.

        Examples
        --------
        >>> world = FactWorld(3, seed=0)
        >>> world.context_question("Tikeba", "job", counterfactual=False, seed=0).answer == world.values["Tikeba", "job"]
        True
        """
        rng = np.random.default_rng(seed)
        truth = self.values[entity, attribute]
        value = truth
        if counterfactual:
            others = [v for v in self.attributes[attribute] if v != truth]
            value = others[int(rng.integers(len(others)))]
        which = int(rng.integers(3)) if template is None else template
        base = self.question(entity, attribute)
        prompt = f"Context: {self.statement(entity, attribute, value, template=which)}\n{base.prompt}"
        info = {**base.info, "world": truth, "context": value, "counterfactual": str(int(counterfactual))}
        return Example(prompt, f"ANS {value}", value, info)

    def context_questions(
        self, n: int, seed: int, *, counterfactual: float = 0.5, entities: Sequence[str] | None = None
    ) -> list[Example]:
        """``n`` context questions on random facts of ``entities``, a share ``counterfactual`` of them counterfactual.

        Examples
        --------
        >>> qs = FactWorld(10, seed=0).context_questions(40, seed=1, counterfactual=0.25)
        >>> sum(q.info["counterfactual"] == "1" for q in qs)
        10
        """
        _check_n(n)
        if not 0.0 <= counterfactual <= 1.0:
            raise ValueError(f"counterfactual must be a share in [0, 1]; got {counterfactual!r}.")
        rng = np.random.default_rng(seed)
        chosen = self._entities(entities)
        names = list(self.attributes)
        flips = np.zeros(n, dtype=bool)
        flips[: int(round(counterfactual * n))] = True
        flips = rng.permutation(flips)
        out = []
        for flip in flips:
            e, a = chosen[int(rng.integers(len(chosen)))], names[int(rng.integers(len(names)))]
            out.append(self.context_question(e, a, counterfactual=bool(flip), seed=int(rng.integers(2**31))))
        return out

    def documents(
        self,
        n: int,
        seed: int,
        *,
        facts: int | tuple[int, int] = (1, 3),
        filler: int = 0,
        entities: Sequence[str] | None = None,
    ) -> list[str]:
        """``n`` documents, each stating a few random facts of ``entities`` (all by default).

        Parameters
        ----------
        n, seed : int
        facts : int or (int, int)
            Facts per document (an inclusive range); each in one of its attribute's phrasings.
        filler : int
            Up to this many sentences of Markov "web" text mixed in (noisy, low-quality documents).
        entities : sequence of str, optional
            Restrict the facts to these entities (e.g. the training entities of a split).

        Examples
        --------
        >>> FactWorld(10, seed=0).documents(2, seed=0, facts=2)
        ['Moneste came into the world in 1981. Betribo lives in seaport.', 'Tikeba likes the color red. The birth year of Moneste is 1981.']
        """
        lo, hi = _range(facts, "facts", minimum=1)
        _check_n(n)
        if filler < 0:
            raise ValueError(f"filler must be at least 0; got {filler}.")
        rng = np.random.default_rng(seed)
        chosen = self._entities(entities)
        names = list(self.attributes)
        chain = markov_chain("web") if filler else None
        out = []
        for _ in range(n):
            sentences = []
            for _ in range(int(rng.integers(lo, hi + 1))):
                e, a = chosen[int(rng.integers(len(chosen)))], names[int(rng.integers(len(names)))]
                sentences.append(self.statement(e, a, template=int(rng.integers(3))))
            if chain is not None:
                for _ in range(int(rng.integers(0, filler + 1))):
                    words = [w for w in chain.sample(int(rng.integers(5, 13)), rng) if w != "."]
                    sentence = " ".join(words or ["the"]) + "."
                    sentences.insert(int(rng.integers(len(sentences) + 1)), sentence[0].upper() + sentence[1:])
            out.append(" ".join(sentences))
        return out

    def _entities(self, entities: Sequence[str] | None) -> Sequence[str]:
        chosen = self.entities if entities is None else list(entities)
        unknown = [e for e in chosen if (e, next(iter(self.attributes))) not in self.values]
        if not chosen or unknown:
            raise ValueError(f"entities must be a non-empty subset of the world's entities; unknown: {unknown[:5]}.")
        return chosen


# ---------------------------------------------------------------------------------------------
# Splits


def _key_of(item: Any) -> Hashable:
    return item.prompt if isinstance(item, Example) else item


@overload
def split(
    items: Sequence[T], fractions: Sequence[float], seed: int, *, key: Callable[[T], Hashable] | None = None
) -> list[list[T]]: ...
@overload
def split(
    items: Sequence[T], fractions: Mapping[str, float], seed: int, *, key: Callable[[T], Hashable] | None = None
) -> dict[str, list[T]]: ...
def split(
    items: Sequence[T],
    fractions: Sequence[float] | Mapping[str, float],
    seed: int,
    *,
    key: Callable[[T], Hashable] | None = None,
) -> list[list[T]] | dict[str, list[T]]:
    """Split examples (or documents) into parts that share no prompt.

    The distinct keys (an :class:`Example`'s prompt, a string itself, or ``key(item)``) are
    sorted, shuffled with ``default_rng(seed)`` and cut by ``fractions``; every item goes to
    the part its key went to. Repeated prompts therefore stay in one part, and the parts are
    disjoint by construction (:func:`check_disjoint` verifies it by hashing). Within a part
    the items keep their order.

    Parameters
    ----------
    items : sequence of Example or str (or anything ``key`` maps to a hashable)
    fractions : sequence or mapping of float, or of int
        Shares of the distinct keys (floats summing to 1), or counts of distinct keys (ints
        summing to at most their number; the rest is left out). A mapping gives a dict of
        parts by name.
    seed : int
    key : callable, optional
        What must not be shared, e.g. ``lambda ex: ex.info["entity"]`` to hold out entities.

    Returns
    -------
    list of lists (or dict of lists)

    Examples
    --------
    >>> pool = arithmetic(100, seed=0)
    >>> parts = split(pool, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    >>> {name: len(part) for name, part in parts.items()}
    {'train': 80, 'val': 10, 'test': 10}
    >>> check_disjoint(*parts.values())
    >>> [len(p) for p in split(pool, [50, 20], seed=0)]
    [50, 20]
    """
    names: list[str] | None = None
    shares: list[float]
    if isinstance(fractions, Mapping):
        names = list(fractions)
        shares = [fractions[k] for k in names]
    else:
        shares = list(fractions)
    get = key or _key_of
    keys = [get(x) for x in items]
    unique = sorted(set(keys), key=_digest)
    order = np.random.default_rng(seed).permutation(len(unique))
    m = len(unique)
    if not shares or any(not isinstance(s, (int, float, np.number)) or s < 0 for s in shares):
        raise ValueError(f"fractions must be non-negative numbers; got {shares!r}.")
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shares):
        if sum(shares) > m:
            raise ValueError(f"The counts {shares} ask for {sum(shares)} distinct prompts; there are {m}.")
        bounds = np.cumsum([0, *shares])
    else:
        if not math.isclose(sum(shares), 1.0, abs_tol=1e-9):
            raise ValueError(f"fractions must sum to 1 (or be integer counts); got {shares} (sum {sum(shares)}).")
        bounds = np.concatenate([[0], np.round(np.cumsum(shares) * m).astype(int)])
        bounds[-1] = m
    part_of = {}
    for p in range(len(shares)):
        for i in order[bounds[p] : bounds[p + 1]]:
            part_of[unique[i]] = p
    parts: list[list[T]] = [[] for _ in shares]
    for x, k in zip(items, keys):
        if k in part_of:
            parts[part_of[k]].append(x)
    return dict(zip(names, parts)) if names is not None else parts


def check_disjoint(*parts: Sequence[Any], key: Callable[[Any], Hashable] | None = None) -> None:
    """Raise ValueError if two parts share a prompt (or a document, or ``key``), found by hashing.

    Each key is hashed with SHA-256 of its ``repr``, which is stable across Python versions
    and runs (unlike :func:`hash`).

    Examples
    --------
    >>> a, b = arithmetic(3, seed=0), arithmetic(3, seed=1)
    >>> check_disjoint(a, b)
    >>> check_disjoint(a, a[:1])
    Traceback (most recent call last):
    ...
    ValueError: Parts 0 and 1 share 1 prompt, e.g. '31-2-3+2=\\n'; split them with split().
    """
    get = key or _key_of
    seen: dict[str, tuple[int, Hashable]] = {}
    for p, part in enumerate(parts):
        digests = {}
        for x in part:
            k = get(x)
            digests[_digest(k)] = k
        for d, k in digests.items():
            if d in seen and seen[d][0] != p:
                q = seen[d][0]
                shared = sum(1 for other in digests if other in seen and seen[other][0] == q)
                noun = "prompt" if shared == 1 else "prompts"
                raise ValueError(f"Parts {q} and {p} share {shared} {noun}, e.g. {k!r:.80}; split them with split().")
        for d, k in digests.items():
            seen.setdefault(d, (p, k))


def _digest(key: Hashable) -> str:
    return hashlib.sha256(repr(key).encode("utf-8", "backslashreplace")).hexdigest()


def _range(value: int | tuple[int, int], name: str, *, minimum: int) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, (int, np.integer)) else value
    if not minimum <= lo <= hi:
        raise ValueError(
            f"{name} must be an integer >= {minimum} or a range (lo, hi) with {minimum} <= lo <= hi; got {value!r}."
        )
    return int(lo), int(hi)


def _check_n(n: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}.")


__all__ = [
    "ATTRIBUTES",
    "DOMAIN_WORDS",
    "QUESTIONS",
    "STATEMENTS",
    "WEB_WORDS",
    "Example",
    "FactWorld",
    "MarkovChain",
    "answer_of",
    "arithmetic",
    "check_disjoint",
    "digit_sums",
    "markov_chain",
    "markov_text",
    "split",
]
