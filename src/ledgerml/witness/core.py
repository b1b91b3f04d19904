"""The witness itself (c2sp.org/tlog-witness v1), independent of HTTP.

Why a class without HTTP: the decision — verify the log's signature, compare `old` with
the size last cosigned, check the consistency proof, record the new head — is the part
that must be right, atomic and crash-safe; `witness.server` only moves bytes.

    init_witness(Path("w"), name="bank-b.example/witness")      # keys 0600, witness.db
    w = Witness.open(Path("w"))
    w.add_log("ledgerml.local/abc+1234abcd+AQ…")                 # a log it will witness
    answer = w.add_checkpoint(body)                              # Answer(status, body, type)

State (witness.db, SQLite, WAL, synchronous=FULL): per origin the size, root and note last
cosigned. The compare-and-set runs inside one `BEGIN IMMEDIATE` transaction that commits
*before* the cosignature is made and returned, so concurrent requests cannot roll the head
back and a crash can never lead to two cosigned roots of one size. A rejected request
writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sqlite3
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledgerml.crypto.files import (
    create_private_file,
    make_private_dir,
    read_private,
    write_private,
)
from ledgerml.crypto.note import NoteVerifier, SignedNote, parse_checkpoint_head, parse_note
from ledgerml.crypto.signers import Ed25519Signer, MLDSASigner, load_private_pem
from ledgerml.errors import InputError, ProjectError, VerificationError
from ledgerml.ledger.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from ledgerml.witness.cosignature import WitnessKeys
from ledgerml.witness.policy import LOG_TYPES, BadLogSignature, log_signature_lines

#: A request body larger than this is refused (413) before it is parsed.
MAX_BODY_BYTES = 256 * 1024
#: tlog-witness: a client MUST NOT send more than 63 consistency proof lines.
MAX_PROOF_LINES = 63
MAX_SIZE = 2**63 - 1
SIZE_TYPE = "text/x.tlog.size"
TEXT_TYPE = "text/plain; charset=utf-8"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}", re.ASCII)

CONFIG = "witness.toml"
ED25519_KEY = "keys/witness-ed25519.pem"
MLDSA44_KEY = "keys/witness-mldsa44.pem"
STATE_DB = "witness.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (origin TEXT NOT NULL, vkey TEXT NOT NULL,
    PRIMARY KEY (origin, vkey));
CREATE TABLE IF NOT EXISTS heads (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
    root BLOB NOT NULL, note TEXT NOT NULL, updated REAL NOT NULL);
"""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body text, content type."""

    status: int
    body: str
    content_type: str = TEXT_TYPE


#: The answer to a body over MAX_BODY_BYTES (the server also gives it while reading).
TOO_LARGE = Answer(413, f"body: over {MAX_BODY_BYTES:,} bytes\n")


@dataclass(frozen=True)
class Request:
    """A parsed add-checkpoint body."""

    old: int
    proof: tuple[bytes, ...]
    note: SignedNote
    origin: str
    size: int
    root: bytes


class BadRequest(Exception):
    """The body is malformed (HTTP 400), with the field and reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")


def _decimal(text: str, field: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_SIZE:
        raise BadRequest(field, "not a decimal size without leading zeroes (at most 2^63-1)")
    return int(text)


def parse_request(body: bytes) -> Request:
    """Parse `old N`, up to 63 base64 proof lines, a blank line, then the checkpoint."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body", "not UTF-8") from None
    first, sep, rest = text.partition("\n")
    if not sep or not first.startswith("old "):
        raise BadRequest("old", "the body must start with an `old <size>` line")
    old = _decimal(first[4:], "old")
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise BadRequest("proof", "no blank line before the checkpoint")
        if line == "":
            break
        if len(proof) == MAX_PROOF_LINES:
            raise BadRequest("proof", f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            node = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("proof", f"line {len(proof) + 1} is not base64") from None
        if len(node) != HASH_SIZE:
            raise BadRequest("proof", f"line {len(proof) + 1} is not a 32-byte hash")
        proof.append(node)
    try:
        note = parse_note(rest)
        origin, size, root = parse_checkpoint_head(note.text)
    except (VerificationError, InputError) as exc:
        raise BadRequest("checkpoint", str(exc)) from None
    if size > MAX_SIZE:
        raise BadRequest("checkpoint", "tree size is over 2^63-1")
    if len(root) != HASH_SIZE:
        raise BadRequest("checkpoint", "root hash is not 32 bytes")
    return Request(old, tuple(proof), note, origin, size, root)


def init_witness(home: Path, *, name: str, post_quantum: bool = False) -> WitnessKeys:
    """Create a witness folder: its name, its keys (0600, never overwritten) and state."""
    if (home / CONFIG).exists():
        raise InputError(f"a witness already exists at {home}", field="dir")
    if not name or any(c.isspace() for c in name) or "+" in name or len(name.encode()) > 255:
        raise InputError("must be 1..255 bytes without spaces or '+'", field="name")
    make_private_dir(home)
    make_private_dir(home / "keys")
    write_private(home / ED25519_KEY, Ed25519Signer.generate().private_pem())
    if post_quantum:
        write_private(home / MLDSA44_KEY, MLDSASigner.generate("ml-dsa-44").private_pem())
    _connect(home / STATE_DB).close()
    write_private(home / CONFIG, f'name = "{name}"\n'.encode())  # last: a half-made one is none
    return load_keys(home)


def load_keys(home: Path) -> WitnessKeys:
    """The witness's name and keys; secrets are refused when group/other may read them."""
    try:
        config = tomllib.loads(read_private(home / CONFIG).decode())
    except FileNotFoundError:
        raise ProjectError(
            f"no witness at {home} (run `ledgerml witness init --name NAME`)", field="dir"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{home / CONFIG}: {exc}", field="witness.toml") from None
    name = config.get("name")
    if not isinstance(name, str):
        raise InputError("must be a string", field="witness.toml name")
    ed = load_private_pem(read_private(home / ED25519_KEY))
    pq = None
    if (home / MLDSA44_KEY).exists():
        pq = load_private_pem(read_private(home / MLDSA44_KEY))
    if not isinstance(ed, Ed25519Signer) or not (pq is None or isinstance(pq, MLDSASigner)):
        raise InputError("witness key files hold keys of the wrong kind", field="keys")
    return WitnessKeys(name, ed, pq)


def _connect(path: Path) -> sqlite3.Connection:
    create_private_file(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    return conn


@dataclass(frozen=True)
class Head:
    """What a witness last cosigned for one log."""

    origin: str
    size: int
    root: bytes
    note: str


class Witness:
    """One witness: keys, trusted logs and per-log heads in `witness.db`."""

    def __init__(self, home: Path, keys: WitnessKeys) -> None:
        self.home = home
        self.keys = keys
        self._conn = _connect(home / STATE_DB)
        #: one connection, one transaction at a time (BEGIN IMMEDIATE also guards processes)
        self._lock = threading.RLock()
        self.counts: dict[int, int] = {}

    @classmethod
    def open(cls, home: Path) -> Witness:
        return cls(home, load_keys(home))

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- configuration -----------------------------------------------------------------

    def add_log(self, vkey: str, origin: str | None = None) -> NoteVerifier:
        """Trust a log's verifier key for `origin` (default: the key's name, as tlog-checkpoint
        recommends; some logs sign under another key name)."""
        verifier = NoteVerifier.from_vkey(vkey.strip())
        origin = verifier.name if origin is None else origin
        if not origin or len(origin.encode()) > 255 or any(ord(c) < 0x20 for c in origin):
            raise InputError("must be 1..255 bytes on one line", field="origin")
        if verifier.sig_type not in LOG_TYPES:
            raise InputError(
                f"unknown or unsupported key type {verifier.sig_type:#04x} (a log signs with "
                "0x01 Ed25519, 0x04 or 0x06)",
                field="vkey",
            )
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO logs(origin, vkey) VALUES (?, ?)",
                (origin, verifier.vkey()),
            )
        return verifier

    def log_verifiers(self, origin: str) -> list[NoteVerifier]:
        with self._lock:
            rows = self._conn.execute("SELECT vkey FROM logs WHERE origin=?", (origin,)).fetchall()
        return [NoteVerifier.from_vkey(v) for (v,) in rows]

    def logs(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT origin, vkey FROM logs ORDER BY 1").fetchall()
        return [(o, v) for o, v in rows]

    def head(self, origin: str) -> Head | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT size, root, note FROM heads WHERE origin=?", (origin,)
            ).fetchone()
        return None if row is None else Head(origin, int(row[0]), bytes(row[1]), str(row[2]))

    def heads(self) -> list[Head]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT origin, size, root, note FROM heads ORDER BY origin"
            ).fetchall()
        return [Head(o, int(s), bytes(r), str(n)) for o, s, r, n in rows]

    # -- the protocol ------------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> Answer:
        """Handle one add-checkpoint request body; never changes state unless it cosigns."""
        answer = self._add_checkpoint(body)
        self.counts[answer.status] = self.counts.get(answer.status, 0) + 1
        return answer

    def _add_checkpoint(self, body: bytes) -> Answer:
        if len(body) > MAX_BODY_BYTES:
            return TOO_LARGE
        try:
            req = parse_request(body)
        except BadRequest as exc:
            return Answer(400, f"{exc}\n")
        logs = self.log_verifiers(req.origin)
        if not logs:
            return Answer(404, "checkpoint: unknown log origin\n")
        try:
            signed_lines = log_signature_lines(req.note, logs)
        except BadLogSignature as exc:
            return Answer(403, f"checkpoint: bad signature from log key {exc.key_name}\n")
        if not signed_lines:
            return Answer(403, "checkpoint: no signature from a key trusted for this origin\n")
        if req.old > req.size:
            return Answer(400, "old: larger than the checkpoint's tree size\n")
        if req.size == 0 and req.root != EMPTY_ROOT:
            return Answer(422, "checkpoint: a tree of size 0 must have the empty root\n")
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT size, root FROM heads WHERE origin=?", (req.origin,)
            ).fetchone()
            known, known_root = (0, EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))
            if req.old != known:
                return Answer(409, f"{known}\n", SIZE_TYPE)
            problem = _inconsistent(req, known_root)
            if problem:
                _report(f"refused {req.origin}@{req.size} from size {req.old}: {problem}")
                return Answer(422, f"{problem}\n")
            cosig = self.keys.cosign(req.note.text)
            note = SignedNote(req.note.text, tuple(signed_lines)).encode() + cosig
            conn.execute(
                "INSERT INTO heads(origin, size, root, note, updated) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(origin) DO UPDATE SET size=excluded.size, root=excluded.root,"
                " note=excluded.note, updated=excluded.updated",
                (req.origin, req.size, req.root, note, time.time()),
            )
        # committed (fsynced) before the cosignature leaves this process
        return Answer(200, cosig)

    def latest(self, origin_hash: str) -> Answer:
        """GET <prefix>/<sha256(origin) hex>/checkpoint: the last cosigned checkpoint."""
        for head in self.heads():
            if hashlib.sha256(head.origin.encode()).hexdigest() == origin_hash:
                return Answer(200, head.note)
        return Answer(404, "no checkpoint cosigned for that origin\n")


def _inconsistent(req: Request, known_root: bytes) -> str | None:
    """Why `req` does not extend the head (size `req.old`, `known_root`), or None."""
    if req.old == 0:
        return "proof: must be empty from size 0" if req.proof else None
    if req.old == req.size:
        if req.root != known_root:
            return "checkpoint: same size as the last cosigned one but another root"
        return "proof: must be empty for the same size" if req.proof else None
    if not verify_consistency(req.old, req.size, known_root, req.root, req.proof):
        return "proof: the consistency proof does not verify"
    return None


def _report(message: str) -> None:
    """One line on stderr for possible log misbehaviour (origins and sizes only)."""
    print(f"witness: {message}", file=sys.stderr, flush=True)
