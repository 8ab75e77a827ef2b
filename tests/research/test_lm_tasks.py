"""The lab's task generators: deterministic given the seed (and nothing else), correct by
construction, and split into parts that share no prompt."""

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from ontheline.research.lm import (
    DOMAIN_WORDS,
    WEB_WORDS,
    CharTokenizer,
    Example,
    FactWorld,
    answer_of,
    arithmetic,
    check_disjoint,
    digit_sums,
    markov_text,
    split,
)

LINE = re.compile(r"^(\d+)([+\-*])(\d+)=(\d+)$")


def _everything(seed):
    world = FactWorld(12, seed=seed)
    return {
        "arithmetic": [e.text for e in arithmetic(30, seed, corrupt=0.3)],
        "digits": [e.text for e in digit_sums(30, seed, trace=0.5, shortcut=True)],
        "web": markov_text("web", 5, seed),
        "domain": markov_text("domain", 5, seed),
        "world": [e.text for e in world.questions()] + world.documents(5, seed, filler=2),
        "contexts": [e.text for e in world.context_questions(10, seed)],
    }


def _digest(seed):
    return hashlib.sha256(json.dumps(_everything(seed)).encode()).hexdigest()


def test_every_generator_gives_the_same_output_for_the_same_seed_and_another_for_another():
    first, again, other = _everything(0), _everything(0), _everything(1)
    assert first == again
    for name in first:
        assert first[name] != other[name], name


def test_the_output_does_not_depend_on_the_hash_seed_of_the_process():
    code = (
        f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_lm_tasks as t; print(t._digest(0))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(0)


def test_a_shorter_draw_is_a_prefix_of_a_longer_one():
    assert arithmetic(5, seed=4) == arithmetic(20, seed=4)[:5]
    assert digit_sums(5, seed=4) == digit_sums(20, seed=4)[:5]
    assert markov_text("web", 3, seed=4) == markov_text("web", 9, seed=4)[:3]
    assert FactWorld(5, seed=4).entities == FactWorld(20, seed=4).entities[:5]


def test_arithmetic_chains_of_thought_are_correct_and_stay_within_0_to_999():
    tok = CharTokenizer()
    for ex in arithmetic(300, seed=2, ops=(1, 4)):
        *lines, last = ex.completion.split("\n")
        assert 1 <= len(lines) <= 4 and last == f"ANS {ex.answer}"
        for line in lines:
            a, op, b, c = LINE.match(line).groups()
            assert int(c) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
            assert 0 <= int(c) <= 999
        assert eval(ex.prompt.removesuffix("=\n")) == int(ex.answer)  # the expression, with precedence
        assert tok.decode(tok.encode(ex.text)) == ex.text


def test_corrupted_arithmetic_slips_propagate_to_a_wrong_final_answer():
    clean, slipped = arithmetic(200, seed=5), arithmetic(200, seed=5, corrupt=0.3)
    assert [e.prompt for e in clean] == [e.prompt for e in slipped]
    corrupted = [e for e in slipped if e.info["corrupted_lines"] != "0"]
    assert 0.3 < len(corrupted) / len(slipped) < 0.9
    for ex in corrupted:
        *lines, _ = ex.completion.split("\n")
        wrong = 0
        for line in lines:
            a, op, b, c = LINE.match(line).groups()
            wrong += int(c) != {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
            assert 0 <= int(c) <= 999
        assert wrong == int(ex.info["corrupted_lines"])
        assert answer_of(ex.completion) != ex.answer
    assert all(answer_of(e.completion) == e.answer for e in slipped if e.info["corrupted_lines"] == "0")


def test_digit_sum_traces_are_progressive_or_premature():
    for ex in digit_sums(50, seed=1, digits=(3, 10), trace=0.5):
        digits = [int(d) for d in ex.prompt.removesuffix(" =\n").split()]
        assert ex.answer == str(sum(digits) % 10)
        if ex.info["trace"] == "progressive":
            running = [int(s) for s in ex.completion.split("\n")[0].split()]
            assert running == [int(x) for x in np.cumsum(digits) % 10]
        else:
            assert ex.completion.startswith(f"GUESS {ex.answer}\n")
        assert answer_of(ex.completion) == ex.answer
    shortcut = digit_sums(200, seed=1, trace="premature", shortcut=True)
    right = np.mean([answer_of(e.completion) == e.answer for e in shortcut])
    assert 0.02 < right < 0.25  # the last digit is the answer about one time in ten


def test_web_and_domain_text_come_from_distinct_vocabularies():
    assert not set(WEB_WORDS) & set(DOMAIN_WORDS)
    web, domain = " ".join(markov_text("web", 20, 0)), " ".join(markov_text("domain", 20, 0))
    assert set(web.replace(".", " ").split()) <= set(WEB_WORDS)
    assert set(domain.split()) <= set(DOMAIN_WORDS)
    CharTokenizer().encode(web + domain)  # both within the tokenizer's alphabet


def test_the_fact_world_asks_about_documented_facts_and_builds_counterfactual_contexts():
    world = FactWorld(30, seed=3)
    assert len(set(world.entities)) == 30
    for q in world.questions():
        assert answer_of(q.completion) == q.answer == world.values[q.info["entity"], q.info["attribute"]]
    docs = world.documents(20, seed=0, facts=(1, 3), filler=2, entities=world.entities[:5])
    assert all(any(e in d for e in world.entities[:5]) and not any(e in d for e in world.entities[5:]) for d in docs)
    contexts = world.context_questions(100, seed=0, counterfactual=0.3)
    flipped = [c for c in contexts if c.info["counterfactual"] == "1"]
    assert len(flipped) == 30
    for c in contexts:
        assert c.answer == c.info["context"] and c.info["context"] in c.prompt
        assert (c.info["context"] != c.info["world"]) == (c.info["counterfactual"] == "1")
    CharTokenizer().encode("".join(c.text for c in contexts) + "".join(docs))


def test_train_validation_and_test_splits_share_no_prompt_checked_by_hashing():
    pool = arithmetic(600, seed=0, ops=1, max_operand=20)  # few distinct prompts: many repeats
    assert len({e.prompt for e in pool}) < len(pool)
    parts = split(pool, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    assert sum(len(p) for p in parts.values()) == len(pool)
    hashes = {name: {hashlib.sha256(e.prompt.encode()).hexdigest() for e in part} for name, part in parts.items()}
    assert (
        not hashes["train"] & hashes["val"]
        and not hashes["train"] & hashes["test"]
        and not hashes["val"] & hashes["test"]
    )
    check_disjoint(*parts.values())
    assert split(pool, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0) == parts
    assert split(pool, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=1) != parts


def test_a_split_can_hold_out_whole_entities():
    world = FactWorld(20, seed=0)
    train, test = split(world.questions(), [0.75, 0.25], seed=0, key=lambda q: q.info["entity"])
    assert {q.info["entity"] for q in train}.isdisjoint({q.info["entity"] for q in test})
    assert len(test) == 5 * 4


def test_overlapping_parts_are_reported():
    a = arithmetic(10, seed=0)
    with pytest.raises(ValueError, match="Parts 0 and 1 share 2 prompts"):
        check_disjoint(a[:6], a[4:])
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        split(a, [0.5, 0.4], seed=0)


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("7*8=56\n56+12=68\n68-5=63\nANS 63", "63"),
        ("7*8=56\nANS 56 \n\nANS 12", "56"),
        ("GUESS 4\n. . .\nANS 4", "4"),
        ("ANS blue", "blue"),
        ("7*8=56\n56+12=6", None),
        ("the ANS 5", None),
        ("ANS\n5", None),
        ("", None),
    ],
)
def test_answers_are_read_from_the_first_ans_line(completion, expected):
    assert answer_of(completion) == expected


def test_examples_are_plain_records():
    ex = Example("1+1=\n", "1+1=2\nANS 2", "2", {"corrupted_lines": "0"})
    assert ex == Example("1+1=\n", "1+1=2\nANS 2", "2") and hash(ex) == hash(Example("1+1=\n", "1+1=2\nANS 2", "2"))
    assert ex.text == "1+1=\n1+1=2\nANS 2"
