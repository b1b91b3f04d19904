"""Personal data kept off the ledger: encrypted per data subject, erasable by key destruction.

Why: the ledger is append-only and replicated, so it must never hold personal
data (GDPR Art. 5(1)(c), Art. 17; EDPB Guidelines 02/2025). The ledger gets a
salted *commitment*; the value itself lives here, AES-256-GCM encrypted under a
key that belongs to one data subject. `erase(subject)` destroys that key and
salt, so the ciphertexts (wherever copies went) are unreadable and the
commitments on the ledger can no longer be linked to a value by guessing.

File: `<project>/vault.db` (SQLite, `journal_mode=DELETE`, `secure_delete=ON`,
and `VACUUM` after every erase, so erased bytes do not linger in the file or in
a WAL). It holds every subject's key, so it is created 0600 whatever the umask
(SQLite gives its journal the same mode) and opening one that group or other may
read is refused, naming the `chmod` that fixes it (`ledgerml.crypto.files`).
Messages never quote a subject id or a value: they may end up in logs.

Exact formats (stable; an auditor can recompute commitments with `hashlib`):

* `lp(x)` = 4-byte big-endian length of `x` ‖ `x`; strings are UTF-8.
* value commitment = SHA-256(`b"ledgerml/vault/v1/value"` ‖ `0x00` ‖ lp(salt) ‖
  lp(subject) ‖ lp(column) ‖ lp(value)), hex; `salt` is the subject's random
  32 bytes; `value` is the UTF-8 text or the raw bytes given.
* subject commitment = SHA-256(`b"ledgerml/vault/v1/subject"` ‖ `0x00` ‖
  lp(salt) ‖ lp(subject)), hex — what `subject.erased` records.
* ciphertext = AES-256-GCM(key, nonce = 12 random bytes, plaintext = value,
  AAD = `b"ledgerml/vault/v1/aad"` ‖ `0x00` ‖ lp(subject) ‖ lp(column)), so a
  ciphertext moved to another subject or column fails to decrypt.

Usage::

    vault = Vault(ProjectPaths(home).vault_db)
    c = vault.put("cust-42", "name", "Ada Lovelace")   # commitment, for the ledger
    vault.get("cust-42", "name")                       # 'Ada Lovelace'
    erased = vault.erase("cust-42")                    # subject commitment; key gone
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledgerml.crypto.files import check_private_file, create_private_file, make_private_dir
from ledgerml.errors import InputError, IntegrityError
from ledgerml.faults import crash_point

_VALUE_TAG = b"ledgerml/vault/v1/value\x00"
_SUBJECT_TAG = b"ledgerml/vault/v1/subject\x00"
_AAD_TAG = b"ledgerml/vault/v1/aad\x00"
_PENDING_TAG = b"ledgerml/vault/v1/pending\x00"
MAX_ID_LEN = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subjects (
    subject TEXT PRIMARY KEY,
    key     BLOB NOT NULL,
    salt    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pii (
    subject    TEXT NOT NULL REFERENCES subjects(subject),
    col        TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('text', 'bytes')),
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (subject, col)
);
-- Erasures shredded here whose `subject.erased` ledger entry may not be written yet
-- (a crash between the two): the next erase finishes them. No personal data: a hash
-- of the subject id (this file also holds the keys) and the ledger-safe commitment.
CREATE TABLE IF NOT EXISTS pending_erasures (
    subject_hash BLOB PRIMARY KEY,
    commitment   TEXT NOT NULL,
    reason       TEXT
);
"""


#: SQLite's companion files, which hold pages of the database (so its keys) too.
_SIDE_FILES = ("-journal", "-wal", "-shm")

_UNKNOWN = "no data for this subject (unknown or erased)"


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def value_commitment(salt: bytes, subject: str, column: str, value: str | bytes) -> str:
    """The ledger-safe commitment to one value (see the module docstring for the bytes)."""
    return hashlib.sha256(
        _VALUE_TAG
        + _lp(salt)
        + _lp(subject.encode())
        + _lp(column.encode())
        + _lp(_as_bytes(value))
    ).hexdigest()


def subject_commitment_of(salt: bytes, subject: str) -> str:
    """The ledger-safe commitment to a data subject."""
    return hashlib.sha256(_SUBJECT_TAG + _lp(salt) + _lp(subject.encode())).hexdigest()


def subject_hash(subject: str) -> bytes:
    """How `pending_erasures` names a subject: unsalted, so a re-run of the same erase
    finds its own interrupted erasure after the salt is gone."""
    return hashlib.sha256(_PENDING_TAG + subject.encode()).digest()


@dataclass(frozen=True)
class PendingErasure:
    """A shredded subject whose ledger record may still be missing."""

    subject_hash: bytes
    commitment: str
    reason: str | None


def _aad(subject: str, column: str) -> bytes:
    return _AAD_TAG + _lp(subject.encode()) + _lp(column.encode())


def _check_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError("must be a non-empty string", field=field)
    if len(value) > MAX_ID_LEN:
        raise InputError(f"longer than {MAX_ID_LEN} characters", field=field)
    return value


def _validate_values(values: Mapping[str, str | bytes]) -> None:
    for column, value in values.items():
        _check_id(column, "column")
        if not isinstance(value, str | bytes):
            raise InputError(
                f"value must be str or bytes, got {type(value).__name__}", field=column
            )


def _read_secrets(con: sqlite3.Connection, subject: str) -> tuple[bytes, bytes] | None:
    row = con.execute("SELECT key, salt FROM subjects WHERE subject = ?", (subject,)).fetchone()
    return (bytes(row[0]), bytes(row[1])) if row else None


class VaultBatch:
    """Writes inside one open vault transaction (from `Vault.batch()`)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    def _secrets(self, subject: str, *, create: bool) -> tuple[bytes, bytes] | None:
        secrets = _read_secrets(self._con, subject)
        if secrets is None and create:
            secrets = (AESGCM.generate_key(bit_length=256), os.urandom(32))
            self._con.execute(
                "INSERT INTO subjects (subject, key, salt) VALUES (?, ?, ?)", (subject, *secrets)
            )
        return secrets

    def put_many(self, subject: str, values: Mapping[str, str | bytes]) -> dict[str, str]:
        """Encrypt and store columns of one subject (replacing old values); commitments."""
        _check_id(subject, "subject")
        _validate_values(values)
        secrets = self._secrets(subject, create=True)
        assert secrets is not None
        key, salt = secrets
        aes = AESGCM(key)
        out: dict[str, str] = {}
        for column, value in values.items():
            nonce = os.urandom(12)
            ct = aes.encrypt(nonce, _as_bytes(value), _aad(subject, column))
            self._con.execute(
                "INSERT OR REPLACE INTO pii (subject, col, kind, nonce, ciphertext) "
                "VALUES (?, ?, ?, ?, ?)",
                (subject, column, "text" if isinstance(value, str) else "bytes", nonce, ct),
            )
            out[column] = value_commitment(salt, subject, column, value)
        return out

    def subject_commitment(self, subject: str) -> str:
        """The subject commitment (the subject must have been stored, in or before this batch)."""
        _check_id(subject, "subject")
        secrets = self._secrets(subject, create=False)
        if secrets is None:
            raise InputError(_UNKNOWN, field="subject")
        return subject_commitment_of(secrets[1], subject)


class Vault:
    """Per-subject encrypted storage of personal data in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            make_private_dir(self.path.parent)
        if not create_private_file(self.path):  # new: 0600 before SQLite writes a byte
            for suffix in ("", *_SIDE_FILES):
                check_private_file(f"{self.path}{suffix}")  # InputError when group/other may read
        con = sqlite3.connect(self.path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=DELETE")
            con.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        finally:
            con.close()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One connection per operation, committed on success, rolled back on error."""
        con = sqlite3.connect(self.path, isolation_level=None)
        try:
            # DELETE journal: no WAL file keeps old pages; secure_delete zeroes freed content.
            con.execute("PRAGMA journal_mode=DELETE")
            con.execute("PRAGMA secure_delete=ON")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    @staticmethod
    def _secrets(con: sqlite3.Connection, subject: str) -> tuple[bytes, bytes] | None:
        return _read_secrets(con, subject)  # kept: mlops/datasets.py calls it (use `batch()`)

    def put(self, subject: str, column: str, value: str | bytes) -> str:
        """Encrypt and store one value (replacing any previous one); return its commitment."""
        return self.put_many(subject, {column: value})[_check_id(column, "column")]

    def put_many(self, subject: str, values: Mapping[str, str | bytes]) -> dict[str, str]:
        """Store several columns of one subject in one transaction; commitments by column."""
        with self.batch() as batch:
            return batch.put_many(subject, values)

    @contextmanager
    def batch(self) -> Iterator[VaultBatch]:
        """One transaction for many subjects (a whole table): all stored, or none.

        The transaction commits when the block exits normally, so a caller can do
        its other work (store the pseudonymised table, append to the ledger)
        inside the block and have the vault roll back if that fails::

            with vault.batch() as b:
                for subject, cols in rows.items():
                    commitments = b.put_many(subject, cols)
                    subject_commitment = b.subject_commitment(subject)
        """
        with self._db() as con:
            yield VaultBatch(con)

    def get(self, subject: str, column: str) -> str | bytes:
        """Decrypt one value; an erased or unknown subject is an input error."""
        _check_id(subject, "subject")
        _check_id(column, "column")
        with self._db() as con:
            secrets = self._secrets(con, subject)
            if secrets is None:
                raise InputError(_UNKNOWN, field="subject")
            row = con.execute(
                "SELECT kind, nonce, ciphertext FROM pii WHERE subject = ? AND col = ?",
                (subject, column),
            ).fetchone()
        if row is None:
            raise InputError(f"the subject has no value in column {column!r}", field="column")
        kind, nonce, ct = row
        try:
            plain = AESGCM(secrets[0]).decrypt(bytes(nonce), bytes(ct), _aad(subject, column))
        except InvalidTag:
            raise IntegrityError(
                f"a vault value in column {column!r} fails authentication (tampered)"
            ) from None
        return plain.decode("utf-8") if kind == "text" else plain

    def get_all(self, subject: str) -> dict[str, str | bytes]:
        """Every stored column of a subject, decrypted."""
        _check_id(subject, "subject")
        with self._db() as con:
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT col FROM pii WHERE subject = ? ORDER BY col", (subject,)
                )
            ]
        return {c: self.get(subject, c) for c in cols}

    def commitment(self, subject: str, column: str, value: str | bytes) -> str:
        """Recompute a value commitment (to check a ledger entry against a claimed value)."""
        return value_commitment(self._salt(subject), subject, _check_id(column, "column"), value)

    def subject_commitment(self, subject: str) -> str:
        """The subject's commitment, as `erase` will return it."""
        return subject_commitment_of(self._salt(subject), subject)

    def _salt(self, subject: str) -> bytes:
        _check_id(subject, "subject")
        with self._db() as con:
            secrets = self._secrets(con, subject)
        if secrets is None:
            raise InputError(_UNKNOWN, field="subject")
        return secrets[1]

    def subjects(self) -> list[str]:
        """Subjects that still have keys, sorted."""
        with self._db() as con:
            return [r[0] for r in con.execute("SELECT subject FROM subjects ORDER BY subject")]

    def has(self, subject: str) -> bool:
        _check_id(subject, "subject")
        with self._db() as con:
            return self._secrets(con, subject) is not None

    def erase(self, subject: str, *, reason: str | None = None) -> str:
        """Crypto-shred a subject: overwrite and delete key, salt and ciphertexts, then VACUUM.

        Returns the subject commitment so the caller can record `subject.erased`
        on the ledger. Nothing here touches the ledger; the same transaction leaves a
        `pending_erasures` row that the caller settles (`settle_erasure`) once recorded.
        """
        _check_id(subject, "subject")
        with self._db() as con:
            secrets = self._secrets(con, subject)
            if secrets is None:
                raise InputError(_UNKNOWN, field="subject")
            commitment = subject_commitment_of(secrets[1], subject)
            # Overwrite in place first, so no page ever holds the old key after commit...
            con.execute(
                "UPDATE subjects SET key = zeroblob(32), salt = zeroblob(32) WHERE subject = ?",
                (subject,),
            )
            con.execute(
                "UPDATE pii SET nonce = zeroblob(12), ciphertext = zeroblob(length(ciphertext)) "
                "WHERE subject = ?",
                (subject,),
            )
            # ...then delete (secure_delete zeroes the freed cells).
            con.execute("DELETE FROM pii WHERE subject = ?", (subject,))
            con.execute("DELETE FROM subjects WHERE subject = ?", (subject,))
            con.execute(
                "INSERT OR REPLACE INTO pending_erasures(subject_hash, commitment, reason) "
                "VALUES (?, ?, ?)",
                (subject_hash(subject), commitment, reason),
            )
            crash_point("vault.erase.before_commit")
        # Rebuild the file so no free page or stale copy survives; outside any transaction.
        con2 = sqlite3.connect(self.path, isolation_level=None)
        try:
            con2.execute("PRAGMA secure_delete=ON")
            con2.execute("VACUUM")
        finally:
            con2.close()
        crash_point("vault.erase.committed")
        return commitment

    def pending_erasures(self) -> list[PendingErasure]:
        """Erasures shredded here and not yet settled, oldest first."""
        with self._db() as con:
            rows = con.execute(
                "SELECT subject_hash, commitment, reason FROM pending_erasures ORDER BY rowid"
            ).fetchall()
        return [PendingErasure(bytes(h), str(c), r) for h, c, r in rows]

    def settle_erasure(self, commitment: str) -> None:
        """The erasure's ledger record exists: forget the pending row."""
        with self._db() as con:
            con.execute("DELETE FROM pending_erasures WHERE commitment = ?", (commitment,))
