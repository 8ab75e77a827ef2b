"""The text domains (VADER's ground truth): fetched once with pip into the store's data folder,
checked, read, and split; tested on a small source distribution made here with the same layout."""

import hashlib
import io
import json
import shutil
import subprocess
import tarfile

import numpy as np
import pytest

from ontheline._validation import InputError
from ontheline.bench import text
from ontheline.bench.text import TextDomain, fetch_vader, list_fetched, load_domains, split_domain, vader_folder
from ontheline.cli import main

#: Each domain's lines: (id, rating, text); a rating of exactly 0 is dropped by the loader.
LINES = {
    "movieReviewSnippets": [("1", "2.26666666667", "The Rock is destined to be great"), ("2", "-0.6", "Too tepid"),
                            ("3", "0", "A film."), ("4", "1.5", "Jirí Hubac's script is a gem, cliché-free"),
                            ("5", "-2.1", "Dull, dull, dull"), ("6", "3.1", "Wonderful")],
    "tweets": [("1", "2.72", "I love my friends &amp; family"), ("2", "-1.4", "Ugh, Monday"), ("3", "0.0", "ok")],
    "amazonReviewSnippets": [("1_1", "-0.9", "no picture"), ("1_2", "0.15", "a better fit")],
    "nytEditorialSnippets": [("1_1", "0.4", "Santa Claus Ulympics"), ("1_2", "-1.5", "a grim budget")],
}  # fmt: skip


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _fake_sdist(path, lines=LINES):
    """A source distribution with VADER's layout: the ground truth (CRLF, UTF-8) in a nested archive, and more."""
    inner = {
        f"hutto_ICWSM_2014/{stem}_GroundTruth.txt": "\r\n".join("\t".join(row) for row in rows).encode("utf-8")
        for stem, rows in lines.items()
    }
    inner["hutto_ICWSM_2014/vaderSentiment.py"] = b"print('never run')\n"
    inner["hutto_ICWSM_2014/tweets_anonDataRatings.txt"] = b"not extracted\r\n"
    outer = {
        "vaderSentiment-3.3.2/setup.py": b"raise SystemExit('never run')\n",
        "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": _tar_gz(inner),
    }
    path.write_bytes(_tar_gz(outer))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sdist(tmp_path):
    path = tmp_path / "made" / "vaderSentiment-3.3.2.tar.gz"
    path.parent.mkdir()
    return path, _fake_sdist(path)


@pytest.fixture
def pip(monkeypatch, sdist):
    """pip's download replaced by a copy of the archive made here, its SHA-256 the expected one; counts the calls."""
    path, digest = sdist
    calls = []

    def download(folder):
        calls.append(folder)
        shutil.copy(path, folder / path.name)

    monkeypatch.setattr(text, "_run_pip", download)
    monkeypatch.setattr(text, "VADER_SHA256", digest)
    return calls


def test_fetch_extracts_the_four_files_with_a_manifest_and_load_reads_the_domains(tmp_path, pip):
    folder = fetch_vader(tmp_path / "store")
    assert folder == vader_folder(tmp_path / "store") == tmp_path / "store" / "data" / "vader-3.3.2"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{stem}_GroundTruth.txt" for stem in LINES] + ["MANIFEST.json"]
    )
    assert sorted(p.name for p in folder.parent.iterdir()) == ["vader-3.3.2"]  # no staging folder left
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["source_sha256"] == text.VADER_SHA256
    domains = load_domains(folder)
    assert list(domains) == ["movie", "tweets", "amazon", "editorials"]
    movie = domains["movie"]
    assert movie.ids == ("1", "2", "4", "5", "6")  # the rating of exactly 0 is dropped
    assert movie.labels.tolist() == [1, 0, 1, 0, 1] and movie.labels.dtype == np.int64
    np.testing.assert_allclose(movie.ratings, [2.26666666667, -0.6, 1.5, -2.1, 3.1])
    assert movie.texts[2] == "Jirí Hubac's script is a gem, cliché-free"  # UTF-8, no CR left
    assert domains["tweets"].texts == ("I love my friends &amp; family", "Ugh, Monday")  # "0.0" dropped too
    assert len(domains["amazon"]) == 2 and domains["editorials"].labels.tolist() == [1, 0]


def test_a_second_fetch_downloads_nothing_and_a_damaged_folder_is_fetched_again(tmp_path, pip):
    from ontheline.store import Store

    store = Store(tmp_path / "store")
    folder = fetch_vader(store)
    assert fetch_vader(store) == folder and len(pip) == 1
    (folder / "tweets_GroundTruth.txt").write_bytes(b"1\t2.0\tedited\r\n")
    with pytest.raises(InputError, match=r"is damaged \(tweets_GroundTruth.txt does not match .*fetch vader' again"):
        load_domains(folder)
    assert list_fetched(store)[-1]["status"] == "damaged"
    fetch_vader(store)
    assert len(pip) == 2 and len(load_domains(folder)["tweets"]) == 2
    assert {row["status"] for row in list_fetched(store)} == {"ok"}


def test_an_archive_with_another_checksum_is_refused_and_nothing_is_written(tmp_path, pip, monkeypatch):
    monkeypatch.setattr(text, "VADER_SHA256", "0" * 64)
    with pytest.raises(InputError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}: refused"):
        fetch_vader(tmp_path / "store")
    assert not vader_folder(tmp_path / "store").exists()
    assert list((tmp_path / "store" / "data").iterdir()) == []


def test_a_failed_extraction_leaves_no_folder_behind(tmp_path, pip, monkeypatch):
    def broken(staging, folder):
        raise OSError("disk full")

    monkeypatch.setattr(text, "_move_into_place", broken)
    with pytest.raises(OSError, match="disk full"):
        fetch_vader(tmp_path / "store")
    assert list((tmp_path / "store" / "data").iterdir()) == []


def test_an_archive_without_the_ground_truth_is_refused(tmp_path, pip, sdist, monkeypatch):
    path, _ = sdist
    lines = {stem: rows for stem, rows in LINES.items() if stem != "tweets"}
    monkeypatch.setattr(text, "VADER_SHA256", _fake_sdist(path, lines))
    with pytest.raises(InputError, match="has no hutto_ICWSM_2014/tweets_GroundTruth.txt"):
        fetch_vader(tmp_path / "store")
    assert list((tmp_path / "store" / "data").iterdir()) == []


def test_missing_data_names_the_command_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("ONTHELINE_STORE", str(tmp_path / "default-store"))
    with pytest.raises(
        InputError,
        match=r"not in '.*default-store/data/vader-3.3.2'; fetch them once with 'ontheline data fetch vader'\.$",
    ):
        load_domains()
    with pytest.raises(InputError, match="fetch them once with 'ontheline data fetch vader' \\(add --store DIR"):
        load_domains(tmp_path)


def test_a_pip_failure_is_one_clear_error(tmp_path, monkeypatch):
    failed = subprocess.CompletedProcess([], 1, "", "Collecting ...\nERROR: No matching distribution found for x\n")
    monkeypatch.setattr(text.subprocess, "run", lambda *args, **kwargs: failed)
    with pytest.raises(InputError, match=r"pip could not download vadersentiment==3.3.2 \(ERROR: No matching"):
        fetch_vader(tmp_path)


def test_the_pip_command_downloads_the_source_distribution_only(tmp_path, monkeypatch):
    seen = []

    def run(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(text.subprocess, "run", run)
    text._run_pip(tmp_path)
    assert seen[0][1:] == ["-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "vadersentiment==3.3.2",
                           "-d", str(tmp_path), "--disable-pip-version-check", "--no-input"]  # fmt: skip


def _domain(n=100, positive=0.3):
    labels = (np.arange(n) < positive * n).astype(np.int64)
    return TextDomain("d", tuple(f"text {i}" for i in range(n)), labels, labels - 0.5, tuple(map(str, range(n))))


def test_splits_are_seeded_disjoint_complete_and_stratified():
    domain = _domain()
    parts = split_domain(domain, (0.6, 0.2, 0.2), seed=3, names=("train", "val", "test"))
    assert [p.name for p in parts] == ["d-train", "d-val", "d-test"]
    ids = [set(p.ids) for p in parts]
    assert set.union(*ids) == set(domain.ids) and sum(map(len, ids)) == len(domain)
    for part, share in zip(parts, (0.6, 0.2, 0.2)):
        assert abs(part.labels.sum() - share * 30) <= 1 and abs(len(part) - share * 100) <= 2
        for i, sentence_id in enumerate(part.ids):  # texts, labels and ratings stay together
            assert part.texts[i] == f"text {sentence_id}" and part.labels[i] == domain.labels[int(sentence_id)]
        assert list(map(int, part.ids)) == sorted(map(int, part.ids))  # the source order
    again, other = split_domain(domain, (0.6, 0.2, 0.2), seed=3), split_domain(domain, (0.6, 0.2, 0.2), seed=4)
    assert [a.ids for a in again] == [p.ids for p in parts] and other[1].ids != parts[1].ids


@pytest.mark.parametrize("fractions", [(0.5, 0.6), (1.0,), (0.5, 0.0, 0.5)])
def test_bad_split_fractions_are_refused(fractions):
    with pytest.raises(InputError, match="two or more positive shares summing to 1"):
        split_domain(_domain(), fractions)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_data_commands_fetch_and_list(tmp_path, pip, capsys):
    code, out, err = run(capsys, "data", "fetch", "vader", "--store", tmp_path)
    assert code == 0 and "Downloading vadersentiment==3.3.2" in err and "Checked its SHA-256" in err
    assert out.strip() == f"VADER's sentences are in {vader_folder(tmp_path)}."
    code, out, _ = run(capsys, "data", "ls", "--store", tmp_path)
    assert code == 0 and "movieReviewSnippets_GroundTruth.txt" in out and out.count(" ok") == 4
    code, out, _ = run(capsys, "data", "ls", "--store", tmp_path, "--format", "json")
    rows = json.loads(out)
    assert {r["file"]: r["sha256"] for r in rows} == {
        name: entry["sha256"]
        for name, entry in json.loads((vader_folder(tmp_path) / "MANIFEST.json").read_text())["files"].items()
    }
    code, out, _ = run(capsys, "data", "ls", "--store", tmp_path / "elsewhere")
    assert code == 0 and "Nothing is fetched" in out and "ontheline data fetch vader" in out


def test_a_refused_fetch_exits_2_with_one_line(tmp_path, pip, capsys, monkeypatch):
    monkeypatch.setattr(text, "VADER_SHA256", "0" * 64)
    code, _, err = run(capsys, "data", "fetch", "vader", "--store", tmp_path)
    last = err.splitlines()[-1]
    assert code == 2 and last.startswith("ontheline: error: The downloaded vaderSentiment-3.3.2.tar.gz has SHA-256")
    with pytest.raises(SystemExit) as exited:  # argparse exits on a bad command line
        main(["data", "fetch", "imagenet", "--store", str(tmp_path)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'imagenet'" in err
