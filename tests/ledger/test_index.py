"""The audit index's `mlflow.*` keys (issue 16): what the MLflow plugin looks up per
`create_model_version` answers exactly as a scan of the ledger would, and an index that does
not hold what the ledger gives is found by `verify` and rebuilt.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledgerml.ledger.index import KEYS_DIGEST, LedgerIndex, index_keys
from ledgerml.ledger.project import init_project, open_ledger

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
CID2 = "bafkreidgvpkjawlxz6sffxzwgooowe5yt7i6wsyg236mfoks77nywkptdq"


def _cid(tag: str) -> str:
    """A well-formed CID (for `model.registered` bodies) that differs from CID by `tag`."""
    return CID[: -len(tag)] + tag


PREFIXES = ("1/models/m-a/artifacts", "1/models/m-ab/artifacts", "2/r1/artifacts/model")


def _items() -> list[tuple[str, dict[str, Any]]]:
    items: list[tuple[str, dict[str, Any]]] = []
    for i, prefix in enumerate(PREFIXES):
        for name in ("MLmodel", "model.ubj", "sub/conda.yaml"):
            body = {"path": f"{prefix}/{name}", "cid": CID if i % 2 else CID2, "size": i}
            items.append(("mlflow.artifact_stored", body))
        items.append(("mlflow.batch_logged", {"run_id": f"r{i}", "params": {"p": "0" * 64}}))
    items += [
        ("mlflow.run_created", {"run_id": "r1", "experiment_id": "2", "start_time": 1}),
        ("mlflow.logged_model", {"action": "created", "model_id": "m-a", "source_run_id": "r1"}),
        ("mlflow.logged_model", {"action": "finalized", "model_id": "m-a", "status": "READY"}),
        ("mlflow.model_version", {"name": "fraud", "version": "1", "cid": CID}),
        ("mlflow.model_version", {"name": "fraud-2", "version": "1", "cid": CID2}),
        ("model.registered", {"name": "fraud", "cid": CID, "framework": "xgboost"}),
        # a re-upload: the newest record of a path wins for the plugin
        ("mlflow.artifact_stored", {"path": f"{PREFIXES[0]}/MLmodel", "cid": CID, "size": 9}),
        ("x.note", {"text": f"{PREFIXES[0]}/MLmodel m-a r1 fraud {CID}"}),  # bytes, not keys
    ]
    return items


@pytest.fixture
def ledger_db(tmp_path: Path) -> Path:
    paths = init_project(tmp_path / "p")
    with open_ledger(paths) as ledger:
        ledger.append_many(_items())
    return paths.ledger_db


def _scan(ledger_db: Path, event_type: str, match: Any) -> list[int]:
    """What the plugin found before the index: every entry of the type, parsed and filtered."""
    home = ledger_db.parent
    from ledgerml.config import ProjectPaths

    with open_ledger(ProjectPaths(home), read_only=True) as ledger:
        return [
            i
            for i, e in ledger.entries_of_type(event_type)
            if any(match(k) for k in index_keys(event_type, e["body"]))
        ]


LOOKUPS = [
    ("mlflow.artifact_stored", PREFIXES[0] + "/", True),
    ("mlflow.artifact_stored", PREFIXES[1] + "/", True),
    ("mlflow.artifact_stored", PREFIXES[2] + "/", True),
    ("mlflow.artifact_stored", "1/models/m-", True),
    ("mlflow.artifact_stored", "3/", True),
    ("mlflow.run_created", "r1", False),
    ("mlflow.logged_model", "m-a", False),
    ("mlflow.logged_model", "m-ab", False),
    ("mlflow.model_version", "fraud", False),
    ("model.registered", CID, False),
    ("model.registered", CID2, False),
]


@pytest.mark.parametrize(("event_type", "key", "prefix"), LOOKUPS)
def test_mlflow_lookups_answer_as_a_scan(
    ledger_db: Path, tmp_path: Path, event_type: str, key: str, prefix: bool
) -> None:
    with LedgerIndex.open(tmp_path / "index.db", ledger_db) as index:
        index.refresh()
        got = index.find_prefix(key, event_type) if prefix else index.find(key, event_type)
    want = _scan(ledger_db, event_type, (lambda k: k.startswith(key)) if prefix else key.__eq__)
    assert got == want
    assert (len(got) > 0) == (key not in {"3/", "m-ab", CID2})


def test_prefix_seek_does_not_overreach(ledger_db: Path, tmp_path: Path) -> None:
    with LedgerIndex.open(tmp_path / "index.db", ledger_db) as index:
        index.refresh()
        a = index.find_prefix(PREFIXES[0] + "/", "mlflow.artifact_stored")
        ab = index.find_prefix(PREFIXES[1] + "/", "mlflow.artifact_stored")
        assert len(a) == 4 and len(ab) == 3 and not set(a) & set(ab)
        assert index.find_prefix(PREFIXES[0] + "/", "mlflow.model_version") == []
        with pytest.raises(ValueError):
            index.find_prefix("", "mlflow.artifact_stored")


@pytest.mark.parametrize(
    "tamper",
    [
        "DELETE FROM keys WHERE type='mlflow.artifact_stored' AND key LIKE '%model.ubj'",
        "UPDATE keys SET idx = idx + 1 WHERE type='model.registered'",
        "INSERT INTO keys VALUES ('m-zz', 'mlflow.logged_model', 3)",
        "DELETE FROM types WHERE idx = 5",
        "UPDATE types SET time = '2000-01-01T00:00:00.000000Z' WHERE idx = 0",
    ],
)
def test_a_tampered_index_is_detected_and_rebuilt(
    ledger_db: Path, tmp_path: Path, tamper: str
) -> None:
    db = tmp_path / "index.db"
    with LedgerIndex.open(db, ledger_db) as index:
        index.refresh()
        assert index.verify() is None
        before = [index.find_prefix(PREFIXES[0] + "/", "mlflow.artifact_stored")]
        before.append(index.find(CID, "model.registered"))
    with sqlite3.connect(db) as conn:
        conn.execute(tamper)
    with LedgerIndex.open(db, ledger_db) as index:
        assert not index.refresh().rebuilt  # the ledger did not change: refresh cannot tell
        assert index.verify() is not None
        stats = index.rebuild()
        assert stats.rebuilt and stats.watermark == len(_items())
        assert index.verify() is None
        after = [index.find_prefix(PREFIXES[0] + "/", "mlflow.artifact_stored")]
        after.append(index.find(CID, "model.registered"))
    assert after == before


def test_an_index_built_with_other_keys_is_rebuilt(ledger_db: Path, tmp_path: Path) -> None:
    """An index.db from before the mlflow.* keys holds none of them: it is rebuilt, not
    topped up (a top-up would only index entries after its watermark)."""
    db = tmp_path / "index.db"
    with LedgerIndex.open(db, ledger_db) as index:
        index.refresh()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM keys WHERE type LIKE 'mlflow.%'")
        conn.execute("DELETE FROM meta WHERE key='keys'")
    with LedgerIndex.open(db, ledger_db) as index:
        stats = index.refresh()
        assert stats.rebuilt and stats.scanned == len(_items())
        assert index.find("m-a", "mlflow.logged_model") != []
        assert index.refresh().scanned == 0 and not index.refresh().rebuilt
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='keys'").fetchone() == (KEYS_DIGEST,)


def test_verify_ignores_a_concurrent_top_up_beyond_the_watermark(
    ledger_db: Path, tmp_path: Path
) -> None:
    """Rows above the watermark are another reader's refresh under way, not damage."""
    db = tmp_path / "index.db"
    with LedgerIndex.open(db, ledger_db) as index:
        index.refresh()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO keys VALUES ('later', 'x.note', 100000)")
    with LedgerIndex.open(db, ledger_db) as index:
        assert index.verify() is None


def test_top_up_answers_as_refresh_and_writes_in_batches(tmp_path: Path) -> None:
    """`top_up` (the MLflow plugin's per-call top-up) keeps new entries' keys in memory and
    writes index.db once `max_pending` are pending; its answers are a full refresh's."""
    paths = init_project(tmp_path / "p")
    with open_ledger(paths) as ledger:
        ledger.append_many(_items())
        with (
            LedgerIndex.open(tmp_path / "lazy.db", paths.ledger_db) as lazy,
            LedgerIndex.open(tmp_path / "full.db", paths.ledger_db) as full,
        ):
            lazy.refresh()
            start = lazy.watermark
            for i in range(10):
                body = {"path": f"{PREFIXES[0]}/extra-{i}", "cid": CID, "size": i}
                ledger.append("mlflow.artifact_stored", body)
                ledger.append(
                    "model.registered",
                    {"name": f"n{i}", "cid": _cid("abcdefghijk"[i]), "framework": "xgboost"},
                )
                lazy.top_up(max_pending=8)
                full.refresh()
                for event_type, key, prefix in [
                    *LOOKUPS,
                    ("model.registered", _cid("abcdefghijk"[i]), False),
                ]:
                    find = "find_prefix" if prefix else "find"
                    args = (key, event_type)
                    assert getattr(lazy, find)(*args) == getattr(full, find)(*args)
                # written only when 8 entries were pending (after the 4th and 8th call)
                assert lazy.watermark == start + 2 * (i + 1) - (2 * (i + 1)) % 8
            assert lazy.verify() is None


def test_top_up_drops_what_it_holds_when_the_ledger_changes(tmp_path: Path) -> None:
    paths = init_project(tmp_path / "p")
    other = init_project(tmp_path / "q")
    for p, cid in ((paths, _cid("first")), (other, _cid("other"))):
        with open_ledger(p) as ledger:
            ledger.append_many(_items())
            ledger.append("model.registered", {"name": "n", "cid": cid, "framework": "xgboost"})
    with LedgerIndex.open(tmp_path / "index.db", paths.ledger_db) as index:
        index.refresh()
        with open_ledger(paths) as ledger:
            ledger.append(
                "model.registered", {"name": "n", "cid": _cid("pending"), "framework": "xgboost"}
            )
        index.top_up()
        assert index.find(_cid("pending"), "model.registered") == [len(_items()) + 1]
        # the same path now holds another ledger one entry longer: same size as before + 1
        with open_ledger(other) as ledger:
            ledger.append("x.note", {"text": "pad"})
        # in place (the index's open connection sees it), as a restore over the file would
        with sqlite3.connect(other.ledger_db) as src, sqlite3.connect(paths.ledger_db) as dst:
            src.backup(dst)
        index.top_up()
        assert index.find(_cid("pending"), "model.registered") == []
        assert index.find(_cid("other"), "model.registered") == [len(_items())]
        assert index.verify() is None


def test_top_up_checks_the_entries_it_holds_in_memory(tmp_path: Path) -> None:
    """The stored watermark's leaf still matches, but the entry held in memory was replaced:
    the memory is dropped and the new entry read."""
    paths = init_project(tmp_path / "p")
    with open_ledger(paths) as ledger:
        ledger.append_many(_items())
    with LedgerIndex.open(tmp_path / "index.db", paths.ledger_db) as index:
        index.refresh()
        with open_ledger(paths) as ledger:
            ledger.append(
                "model.registered", {"name": "n", "cid": _cid("aa"), "framework": "xgboost"}
            )
        index.top_up()
        assert index.find(_cid("aa"), "model.registered") == [len(_items())]
        with sqlite3.connect(paths.ledger_db) as conn:  # entry 0's bytes in its place
            row = conn.execute("SELECT entry FROM entries WHERE idx = 0").fetchone()
            conn.execute("UPDATE entries SET entry = ? WHERE idx = ?", (row[0], len(_items())))
        index.top_up()
        assert index.find(_cid("aa"), "model.registered") == []
        assert index.find_prefix(PREFIXES[0] + "/", "mlflow.artifact_stored")[-1] == len(_items())


def test_entries_reads_many_at_once_from_the_ledger(ledger_db: Path, tmp_path: Path) -> None:
    with LedgerIndex.open(tmp_path / "index.db", ledger_db) as index:
        wanted = [*range(1000, 0, -1), 5, 10_000]  # two chunks; 10,000 is past the end
        got = index.entries(wanted)
        assert [i for i, _ in got] == [i for i in wanted if i < len(_items())]
        assert all(data == index.entry(i) for i, data in got)
        assert index.entries([]) == []


def test_a_concurrent_rebuild_never_leaves_a_watermark_over_missing_rows(
    ledger_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two readers rebuilding at once (workers starting on an index.db with other keys): one
    clears the index between the other's batches; the other stops instead of writing a
    watermark above rows the clear removed."""
    import ledgerml.ledger.index as index_mod

    monkeypatch.setattr(index_mod, "BATCH", 5)
    db = tmp_path / "index.db"
    with LedgerIndex.open(db, ledger_db) as a, LedgerIndex.open(db, ledger_db) as b:
        calls = 0

        def clear_between(done: int, total: int) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                b._clear()  # B starts its rebuild after A's first batch

        stats = a.refresh(clear_between)
        assert stats.watermark == 5 and a.watermark == 0  # A stopped; B's clear stands
        b.refresh()
        assert b.watermark == len(_items()) and b.verify() is None and a.verify() is None
