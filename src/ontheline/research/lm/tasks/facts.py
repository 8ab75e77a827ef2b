"""A seeded world of entities and attributes: questions, documents and counterfactual contexts (for BeyondWeb and CPI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ontheline.research.lm.tasks.markov import markov_chain
from ontheline.research.lm.tasks.records import Example, _check_n, _range

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


def phrase(entity: str, attribute: str, value: str, template: int = 0) -> str:
    """One sentence saying that ``entity``'s ``attribute`` is ``value``, in phrasing ``template`` (modulo their number).

    Examples
    --------
    >>> phrase("Tikeba", "job", "pilot", template=1)
    'By trade, Tikeba is a pilot.'
    """
    forms = STATEMENTS.get(attribute, ("The {a} of {e} is {v}.",))
    return forms[template % len(forms)].format(e=entity, v=value, a=attribute)


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
        return phrase(entity, attribute, self.values[entity, attribute] if value is None else value, template)

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


__all__ = ["ATTRIBUTES", "QUESTIONS", "STATEMENTS", "FactWorld", "phrase"]
