"""Fact triples and the parser that reads them back from any text of the world.

A fact is ``(entity, attribute, value)``. :func:`parse_facts` finds every fact a text states,
in any of the forms the topic writes:

- a statement in one of the world's phrasings (:data:`~ontheline.research.lm.STATEMENTS`,
  e.g. ``"Tikeba lives in seaport."``; web documents, question-answer pairs and tutorials);
- a knowledge-list line, ``"- Tikeba: city seaport; job pilot."`` (summaries);
- a conversational turn, ``"User: Where does Tikeba live?\\nAssistant: seaport"``.

Only entities of the world and values of the attribute count, so filler text never reads as a
fact. The parser is what checks that a rephrase preserves its source's facts: it is not told
which strategy wrote the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from ontheline.research.lm.tasks import QUESTIONS, STATEMENTS

#: ``(entity, attribute, value)``.
Fact = tuple[str, str, str]

#: The question asked about each attribute in chat turns and in question-answer pairs (``{e}``: the entity).
CHAT_QUESTIONS: dict[str, str] = {a: q.removeprefix("Q: ").strip() for a, q in QUESTIONS.items()}

_ENTITY = r"(?<![A-Za-z])(?P<e>[A-Z][a-z]+)"


def question_text(entity: str, attribute: str) -> str:
    """The plain question about one fact, as chat turns and question-answer pairs ask it.

    Examples
    --------
    >>> question_text("Tikeba", "city")
    'Where does Tikeba live?'
    """
    return CHAT_QUESTIONS.get(attribute, "What is the {a} of {e}?").format(e=entity, a=attribute)


def _values(values: tuple[str, ...]) -> str:
    return "(?P<v>" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)) + r")(?![A-Za-z0-9])"


def _template(template: str, values: tuple[str, ...], attribute: str) -> str:
    """A phrasing as a pattern: ``{e}`` an entity, ``{v}`` a value, ``{a}`` the attribute; a leading letter in either case."""
    head = template[0]
    pattern = f"[{head.upper()}{head.lower()}]" + re.escape(template[1:]) if head.isalpha() else re.escape(template)
    pattern = pattern.replace(r"\{a\}", re.escape(attribute)).replace(r"\{e\}", _ENTITY)
    return pattern.replace(r"\{v\}", _values(values))


@lru_cache(maxsize=16)
def _patterns(attributes: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[Any, ...]:
    """Compiled patterns per attribute: (statement patterns, chat pattern, list-item pattern)."""
    out = []
    for attribute, values in attributes:
        forms = STATEMENTS.get(attribute, ("The {a} of {e} is {v}.",))
        statements = [re.compile(_template(t.rstrip("."), values, attribute)) for t in forms]
        question = _template(CHAT_QUESTIONS.get(attribute, "What is the {a} of {e}?"), values, attribute)
        chat = re.compile(r"User: " + question + r"\nAssistant: " + _values(values))
        item = re.compile(re.escape(attribute) + " " + _values(values) + r"(?=[;.]|$)")
        out.append((attribute, statements, chat, item))
    return tuple(out)


_LIST_LINE = re.compile(r"^- (?P<e>[A-Z][a-z]+): (?P<items>[^\n]*)$", re.MULTILINE)


def parse_facts(text: str, world: Any) -> list[Fact]:
    """Every fact ``text`` states about ``world``, in order of first appearance, each once.

    Parameters
    ----------
    text : str
    world : FactWorld or mapping
        A :class:`~ontheline.research.lm.FactWorld`, or a mapping of attribute to values with
        no entity check (any capitalised word is an entity).

    Returns
    -------
    list of (entity, attribute, value)
        The value is what the text says, whether or not the world agrees.

    Examples
    --------
    >>> from ontheline.research.lm import FactWorld
    >>> world = FactWorld(20, seed=0)
    >>> parse_facts("Noise here. Tikeba lives in seaport. By trade, Tikeba is a pilot.", world)
    [('Tikeba', 'city', 'seaport'), ('Tikeba', 'job', 'pilot')]
    >>> parse_facts("User: When was Tikeba born?\\nAssistant: 1990\\n- Moneste: color red; job baker.", world)
    [('Tikeba', 'year', '1990'), ('Moneste', 'color', 'red'), ('Moneste', 'job', 'baker')]
    >>> parse_facts("Nobody lives in seaport.", world)
    []
    """
    attributes: Mapping[str, Any] = getattr(world, "attributes", world)
    known = getattr(world, "values", None)
    first = next(iter(attributes))

    def real(entity: str) -> bool:
        return known is None or (entity, first) in known

    found: list[tuple[int, Fact]] = []
    patterns = _patterns(tuple((a, tuple(v)) for a, v in attributes.items()))
    for attribute, statements, chat, _ in patterns:
        for pattern in (*statements, chat):
            for m in pattern.finditer(text):
                if real(m["e"]):
                    found.append((m.start(), (m["e"], attribute, m["v"])))
    for line in _LIST_LINE.finditer(text):
        if not real(line["e"]):
            continue
        for attribute, _, _, item in patterns:
            for m in item.finditer(line["items"]):
                if m.start() == 0 or line["items"][m.start() - 2 : m.start()] == "; ":
                    found.append((line.start() + m.start(), (line["e"], attribute, m["v"])))
    seen: set[Fact] = set()
    out = []
    for _, fact in sorted(found, key=lambda x: x[0]):
        if fact not in seen:
            seen.add(fact)
            out.append(fact)
    return out


def fact_set(texts: Iterable[str], world: Any) -> set[Fact]:
    """The facts stated anywhere in ``texts``.

    Examples
    --------
    >>> from ontheline.research.lm import FactWorld
    >>> sorted(fact_set(["Tikeba lives in seaport.", "Tikeba lives in seaport."], FactWorld(5, seed=0)))
    [('Tikeba', 'city', 'seaport')]
    """
    return {f for t in texts for f in parse_facts(t, world)}


__all__ = ["CHAT_QUESTIONS", "Fact", "fact_set", "parse_facts", "question_text"]
