"""The PII vault: encryption per subject, commitments, and erasure that really erases."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, IntegrityError
from ledgerml.storage import BlockStore, Vault

ALICE = {
    "name": "Alicia Qwertyuiop-Zanzibar",
    "iban": "DE89370400440532013000XQ7",
    "email": "alicia.qwerty@zanzibar-example.test",
}
BOB = {"name": "Bobby Plonkwhistle-Vexmoor", "iban": "FR7630006000011234567890189ZZ"}


def lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def secrets_of(db: Path, subject: str) -> tuple[bytes, bytes]:
    con = sqlite3.connect(db)
    try:
        key, salt = con.execute(
            "SELECT key, salt FROM subjects WHERE subject = ?", (subject,)
        ).fetchone()
    finally:
        con.close()
    return bytes(key), bytes(salt)


def all_file_bytes(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in folder.rglob("*") if p.is_file()]


@pytest.fixture
def vault(home: Path) -> Vault:
    return Vault(ProjectPaths(home).vault_db)


def test_put_get_round_trip_and_types(vault: Vault) -> None:
    vault.put_many("alice", ALICE)
    vault.put("alice", "photo", b"\x89PNG\x00raw")
    assert vault.get("alice", "iban") == ALICE["iban"]
    assert vault.get("alice", "photo") == b"\x89PNG\x00raw"
    assert vault.get_all("alice") == {**ALICE, "photo": b"\x89PNG\x00raw"}
    assert vault.subjects() == ["alice"]


def test_commitment_formula_is_the_documented_one(vault: Vault, home: Path) -> None:
    commitments = vault.put_many("alice", ALICE)
    _, salt = secrets_of(ProjectPaths(home).vault_db, "alice")
    assert len(salt) == 32
    for col, value in ALICE.items():
        expected = hashlib.sha256(
            b"ledgerml/vault/v1/value\x00"
            + lp(salt)
            + lp(b"alice")
            + lp(col.encode())
            + lp(value.encode())
        ).hexdigest()
        assert commitments[col] == expected == vault.commitment("alice", col, value)
    subject = hashlib.sha256(b"ledgerml/vault/v1/subject\x00" + lp(salt) + lp(b"alice")).hexdigest()
    assert vault.subject_commitment("alice") == subject
    # Same value, other subject: unlinkable commitment (different salt).
    assert vault.put("bob", "iban", ALICE["iban"]) != commitments["iban"]


def test_clear_values_never_reach_the_file(vault: Vault, home: Path) -> None:
    vault.put_many("alice", ALICE)
    for _path, content in all_file_bytes(home):
        for value in ALICE.values():
            assert value.encode() not in content


def test_erase_removes_values_key_and_salt_from_every_file(vault: Vault, home: Path) -> None:
    db = ProjectPaths(home).vault_db
    vault.put_many("alice", ALICE)
    vault.put_many("bob", BOB)
    # Put the same clear values into the blockstore? No: only the vault may hold them.
    BlockStore(ProjectPaths(home).blocks).add_bytes(b"unrelated artifact")
    key, salt = secrets_of(db, "alice")
    expected = vault.subject_commitment("alice")
    # Updates leave old pages around unless the file is cleaned: rewrite a few times.
    for i in range(3):
        vault.put("alice", "note", f"revision {i} of Alicia's file")

    assert vault.erase("alice") == expected

    needles = [key, salt, *(v.encode() for v in ALICE.values()), b"Alicia's file"]
    files = all_file_bytes(home)
    assert any(p.name == "vault.db" for p, _ in files)
    for path, content in files:
        for needle in needles:
            assert needle not in content, f"{needle!r} still in {path}"
    assert not list(home.glob("vault.db-*"))  # no journal or WAL left behind
    # Bob is untouched.
    assert vault.get_all("bob") == BOB
    with pytest.raises(InputError, match="unknown or erased"):
        vault.get("alice", "iban")
    with pytest.raises(InputError, match="unknown or erased"):
        vault.erase("alice")
    assert vault.subjects() == ["bob"]


def test_tampered_ciphertext_fails_closed(vault: Vault, home: Path) -> None:
    vault.put("alice", "iban", ALICE["iban"])
    con = sqlite3.connect(ProjectPaths(home).vault_db)
    ct = bytearray(con.execute("SELECT ciphertext FROM pii").fetchone()[0])
    ct[0] ^= 1
    con.execute("UPDATE pii SET ciphertext = ?", (bytes(ct),))
    con.commit()
    con.close()
    with pytest.raises(IntegrityError, match="'iban'") as raised:
        vault.get("alice", "iban")
    assert "alice" not in str(raised.value)  # names the column, never the subject


def test_ciphertext_is_bound_to_subject_and_column(vault: Vault, home: Path) -> None:
    vault.put("alice", "iban", ALICE["iban"])
    vault.put("alice", "name", ALICE["name"])
    con = sqlite3.connect(ProjectPaths(home).vault_db)
    row = con.execute("SELECT nonce, ciphertext FROM pii WHERE col = 'iban'").fetchone()
    con.execute("UPDATE pii SET nonce = ?, ciphertext = ? WHERE col = 'name'", row)
    con.commit()
    con.close()
    with pytest.raises(IntegrityError):
        vault.get("alice", "name")


@pytest.mark.parametrize(
    ("args", "field"),
    [(("", "c", "v"), "subject"), (("s", "", "v"), "column"), (("x" * 300, "c", "v"), "subject")],
)
def test_bad_input_names_the_field(vault: Vault, args: tuple[str, str, str], field: str) -> None:
    with pytest.raises(InputError) as err:
        vault.put(*args)
    assert err.value.field == field


def test_bad_value_type_and_unknown_column(vault: Vault) -> None:
    with pytest.raises(InputError):
        vault.put("alice", "age", 42)  # type: ignore[arg-type]
    vault.put("alice", "name", "A")
    with pytest.raises(InputError) as err:
        vault.get("alice", "nope")
    assert err.value.field == "column"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    subject=st.text(min_size=1, max_size=40),
    value=st.text(max_size=200) | st.binary(max_size=200),
)
def test_property_round_trip(vault: Vault, subject: str, value: str | bytes) -> None:
    c = vault.put(subject, "col", value)
    assert vault.get(subject, "col") == value
    assert vault.commitment(subject, "col", value) == c


def test_batch_is_one_transaction(vault: Vault) -> None:
    with vault.batch() as b:
        ca = b.put_many("alice", ALICE)
        sa = b.subject_commitment("alice")
        b.put_many("bob", BOB)
    assert vault.get_all("alice") == ALICE and vault.get_all("bob") == BOB
    assert vault.subject_commitment("alice") == sa
    assert vault.commitment("alice", "iban", ALICE["iban"]) == ca["iban"]
    # A failure inside the block rolls every subject back.
    with pytest.raises(RuntimeError), vault.batch() as b:
        b.put_many("carol", {"name": "Carol Xylophone-Quux"})
        raise RuntimeError("table store failed")
    assert not vault.has("carol")
    with pytest.raises(InputError), vault.batch() as b:
        b.subject_commitment("nobody")
