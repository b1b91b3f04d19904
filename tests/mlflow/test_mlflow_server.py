"""MLflow users get the provable record without changing their code (issue 16).

Real parts only: `mlflow server` on the ledgerml+sqlite / ledgerml+file plugins, the real
MLflow client over HTTP, real XGBoost (examples/mlflow_train.py, unchanged), the project's
SQLite ledger and its embedded EVM gate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.mlflow.conftest import Server, Trained, ok

#: what test_gate leaves for the lineage test (the same session's model)
PROMOTED: dict[str, Any] = {}


def _root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash, written out here so the check does not use ours."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _root(leaves[:k]) + _root(leaves[k:])).digest()


def _raw_cid(data: bytes) -> str:
    """CIDv1 raw sha2-256, base32 (what `ipfs add --cid-version 1` gives a file <= 256 KiB)."""
    digest = b"\x01\x55\x12\x20" + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(digest).decode().lower().rstrip("=")


def _bodies(server: Server, event_type: str, **match: str) -> list[dict[str, Any]]:
    return [
        e["body"]
        for _, e in server.entries(event_type)
        if all(str(e["body"].get(k)) == v for k, v in match.items())
    ]


def test_example_script_leaves_one_entry_per_change(server: Server, trained: Trained) -> None:
    run = trained.run_id
    assert len(_bodies(server, "mlflow.run_created", run_id=run)) == 1
    finished = _bodies(server, "mlflow.run_updated", run_id=run)
    assert [b["status"] for b in finished] == ["FINISHED"]
    batches = _bodies(server, "mlflow.batch_logged", run_id=run)
    params = {k for b in batches for k in b.get("params", {})}
    assert {"max_depth", "eta", "rounds"} <= params
    # one point per boosting round, counted once although the client re-logs for the model
    logloss = sum(
        b["metrics"]["test_logloss"][0] for b in batches if "test_logloss" in b.get("metrics", {})
    )
    assert logloss == 30
    assert all(len(b["metrics"][k][1]) == 512 for b in batches for k in b.get("metrics", {}))
    (inputs,) = _bodies(server, "mlflow.inputs_logged", run_id=run)
    assert inputs["datasets"][0]["name"] == "card-train" and inputs["datasets"][0]["digest"]
    (version,) = _bodies(server, "mlflow.model_version", name=trained.model_name)
    assert version["framework"] == "xgboost" and version["run_id"] == run
    assert version["files"]["model.ubj"] == trained.cid
    (registered,) = _bodies(server, "model.registered", cid=trained.cid)
    assert registered["run_id"] == run
    # no personal data: tag and param values are digests; the user is a vault commitment
    text = json.dumps([e for _, e in server.entries("mlflow.run_created")])
    assert "fraud-analytics" not in json.dumps(batches) and "xgb-baseline" not in text


def test_artifacts_are_content_addressed(server: Server, trained: Trained) -> None:
    (version,) = _bodies(server, "mlflow.model_version", name=trained.model_name)
    stored = {b["path"]: b for b in _bodies(server, "mlflow.artifact_stored")}
    for rel, cid in version["files"].items():
        on_disk = next(p for p in stored if p.endswith("/" + rel) and stored[p]["cid"] == cid)
        data = (server.artifacts / on_disk).read_bytes()
        assert _raw_cid(data) == cid, rel  # recomputed here, not by LedgerML
        if rel == "MLmodel":  # its flavours are recorded with it, as the file says
            flavors = yaml.safe_load(data)["flavors"]
            assert stored[on_disk]["flavours"] == [["xgboost", flavors["xgboost"]["data"]]]
            assert version["cid"] == version["files"][flavors["xgboost"]["data"]]
    ok(server.ledgerml("store", "verify"))


def test_ledger_verifies_and_matches_rfc9162(server: Server, trained: Trained) -> None:
    ok(server.ledgerml("verify"))
    note = ok(server.ledgerml("log", "checkpoint")).stdout.splitlines()
    size, root = int(note[1]), base64.b64decode(note[2])
    lines = ok(server.ledgerml("log", "export", "--jsonl")).stdout.splitlines()
    leaves = [base64.b64decode(json.loads(x)["entry"]) for x in lines][:size]
    assert len(leaves) == size and _root(leaves) == root
    assert any(json.loads(x)["type"] == "mlflow.model_version" for x in map(bytes.decode, leaves))


def test_mlflow_verify_detects_direct_database_edits(
    server: Server, trained: Trained, tmp_path: Path
) -> None:
    assert ok(server.ledgerml("mlflow", "verify", "--uri", server.uri)).returncode == 0
    for table, key, column, value in (
        ("metrics", "auprc", "value", 0.999),
        ("tags", "team", "value", "risk-ok"),
        ("params", "max_depth", "value", "12"),
    ):
        copy = tmp_path / f"edited-{table}.db"
        with sqlite3.connect(server.db) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)  # the live server keeps its database; the copy is edited
        with sqlite3.connect(copy) as db:
            changed = db.execute(
                f"UPDATE {table} SET {column} = ? WHERE run_uuid = ? AND key = ?",
                (value, trained.run_id, key),
            ).rowcount
        assert changed >= 1
        done = server.ledgerml("mlflow", "verify", "--uri", f"ledgerml+sqlite:///{copy}")
        assert done.returncode == 1, done.stdout + done.stderr
        field = {"metrics": "metrics", "tags": "tags", "params": "params"}[table] + f".{key}"
        assert f"{trained.run_id} {field}" in done.stderr, done.stderr
    bad = server.ledgerml("mlflow", "verify", "--uri", "mysql://db/mlflow")
    assert bad.returncode == 2 and "uri" in bad.stderr


def _registry_rows(server: Server, name: str) -> list[tuple]:
    """The aliases and gate tags MLflow's database holds for `name`."""
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        aliases = db.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (name,)
        ).fetchall()
        tags = db.execute(
            "SELECT key, value FROM model_version_tags WHERE name = ? AND key LIKE 'ledgerml.%'",
            (name,),
        ).fetchall()
    return aliases + tags


def _refused(server: Server, trained: Trained, *expected: tuple[str, list[str]]) -> None:
    """Each (reason, step) refused naming its reason; nothing changed in MLflow or the ledger.

    A step defaults to setting `champion` on the trained version; steps run in one client
    process, and the database and ledger are compared before and after all of them.
    """
    size = server.size()
    champion = ["alias", trained.model_name, "champion", trained.version]
    got = server.client_steps(*[step or champion for _, step in expected])
    for (reason, _), out in zip(expected, got, strict=True):
        assert not out["ok"], out
        assert reason in out["error"], out
    assert _registry_rows(server, trained.model_name) == []
    assert server.size() == size


def _enrol(server: Server, trained: Trained) -> str:
    policy = f"mlflow-{uuid.uuid4().hex[:8]}"
    ok(
        server.ledgerml(
            "chain", "policy", policy, "--rule", "auprc>=0.2", "--approvers", "risk_approver"
        )
    )
    ok(
        server.ledgerml(
            "chain", "register", trained.cid, "--policy", policy, "--dataset", trained.data_cid
        )
    )
    return policy


def test_champion_needs_the_gate(server: Server, trained: Trained) -> None:
    name, version = trained.model_name, trained.version
    _refused(server, trained, ("no model with this id is registered on chain", []))
    _enrol(server, trained)
    _refused(server, trained, ("no validation metrics have been submitted", []))
    ok(server.ledgerml("chain", "metrics", trained.cid, "--metric", "auprc=0.31"))
    _refused(
        server,
        trained,
        (f"({trained.cid}): ModelRegistry.promote: approval by role risk_approver is missing", []),
        # the stage Production goes through the same gate
        ("approval by role risk_approver", ["stage", name, version, "Production"]),
        # nothing appendable is authority: the gate's tag cannot be written through MLflow
        (
            "written by the LedgerML gate only",
            ["tag", name, version, "ledgerml.gate_tx", "0x" + "1" * 64],
        ),
    )

    ok(server.ledgerml("approve", trained.cid, "--as", "risk_approver"))
    done = server.client("alias", trained.model_name, "champion", trained.version)
    assert done["ok"] and done["aliases"] == ["champion"], done
    (promoted,) = _bodies(server, "model.promoted", model_cid=trained.cid, alias="champion")
    assert done["tags"]["ledgerml.gate_tx"] == promoted["tx_hash"]
    (alias,) = _bodies(server, "mlflow.alias", name=trained.model_name, alias="champion")
    assert alias["tx_hash"] == promoted["tx_hash"] and alias["gated"] is True
    models = ok(server.ledgerml("models", "--json")).stdout
    assert trained.cid in models and "champion" in models
    ok(server.ledgerml("mlflow", "verify", "--uri", server.uri))
    PROMOTED["tx"] = promoted["tx_hash"]


def _ensure_champion(server: Server, trained: Trained) -> None:
    """When a test runs without test_champion_needs_the_gate: promote the same way."""
    if "tx" not in PROMOTED:
        _enrol(server, trained)
        ok(server.ledgerml("chain", "metrics", trained.cid, "--metric", "auprc=0.31"))
        ok(server.ledgerml("approve", trained.cid, "--as", "risk_approver"))
        assert server.client("alias", trained.model_name, "champion", trained.version)["ok"]
        PROMOTED["tx"] = "set"


def test_audit_trace_by_name_and_version(server: Server, trained: Trained, tmp_path: Path) -> None:
    _ensure_champion(server, trained)
    done = ok(
        server.ledgerml(
            "audit", "trace", "--model", f"{trained.model_name}/{trained.version}", "--json"
        )
    )
    trace = json.loads(done.stdout)
    assert trace["ok"] and trace["model_cid"] == trained.cid
    steps = [s["step"] for s in trace["steps"]]
    order = [
        "mlflow run",
        "mlflow data set",
        "mlflow model version",
        "approval",
        "promotion",
        "mlflow alias",
    ]
    positions = [steps.index(s) for s in order]
    assert positions == sorted(positions), steps
    # an audit bundle of the same lineage, checked by the standalone auditor's script
    bundle = tmp_path / "bundle.zip"
    asked = f"{trained.model_name}/{trained.version}"
    ok(server.ledgerml("audit", "export", "--model", asked, "--artifacts", "-o", str(bundle)))
    tool = Path(__file__).resolve().parents[2] / "tools" / "verify_bundle.py"
    checked = subprocess.run(
        [sys.executable, str(tool), str(bundle)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0 and checked.stdout.startswith("OK"), checked.stderr
    missing = server.ledgerml("audit", "trace", "--model", f"{trained.model_name}/999")
    assert missing.returncode == 2 and "999" in missing.stderr


def test_serving_the_mlflow_champion(server: Server, trained: Trained, tmp_path: Path) -> None:
    """`ledgerml score --alias champion` scores with the MLflow version the gate promoted."""
    import numpy as np
    import xgboost as xgb

    _ensure_champion(server, trained)
    rows = [(120.5, 3, 1.2, 0.8), (15.0, 14, -0.3, 0.1), (900.0, 2, 2.5, 0.95)]
    data = tmp_path / "tx.csv"
    data.write_text(
        "amount,hour,velocity,merchant_risk\n"
        + "".join(f"{a},{h},{v},{m}\n" for a, h, v, m in rows)
    )
    out = tmp_path / "decisions.jsonl"
    done = ok(server.ledgerml("score", str(data), "--alias", "champion", "-o", str(out)))
    decisions = [json.loads(x) for x in out.read_text().splitlines()]
    assert [d["model_cid"] for d in decisions] == [trained.cid] * 3, done.stdout
    # the same file MLflow stored, scored by XGBoost itself
    path = next(
        b["path"]
        for b in _bodies(server, "mlflow.artifact_stored")
        if b["cid"] == trained.cid and b["path"].endswith("model.ubj")
    )
    booster = xgb.Booster(model_file=str(server.artifacts / path))
    matrix = xgb.DMatrix(
        np.array(rows, dtype=np.float32), feature_names=list(booster.feature_names or [])
    )
    expected = booster.predict(matrix)
    assert np.allclose([d["score"] for d in decisions], expected, atol=1e-5)


def test_mlflow_is_imported_only_by_the_plugin() -> None:
    """`make demo` never needs mlflow; verify and the trace read the ledger without it."""
    import ast

    src = Path(__file__).resolve().parents[2] / "src" / "ledgerml"
    light = {"__init__.py", "records.py", "verify.py", "entry.py", "_context.py", "uri.py"}
    for path in src.rglob("*.py"):
        in_plugin = path.parent.name == "mlflow_plugin"
        tree = ast.parse(path.read_text())
        top_level = set(tree.body)
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if not any(n == "mlflow" or n.startswith("mlflow.") for n in names):
                continue
            assert in_plugin, f"{path.relative_to(src)} imports mlflow"
            assert path.name not in light or node not in top_level, (
                f"{path.name} must not import mlflow at module level"
            )
            assert path.name not in {"records.py", "verify.py", "_context.py", "uri.py"}, path.name


def test_mlflow_types_are_reserved(tmp_path: Path) -> None:
    """No server needed: only the plugins write mlflow.* entries; the shell cannot forge them."""
    from tests.conftest import run_cli

    home = tmp_path / "p"
    assert run_cli(home, "init").returncode == 0
    done = run_cli(
        home, "log", "append", "--type", "mlflow.alias", "--body", '{"alias": "champion"}'
    )
    assert done.returncode == 2 and "mlflow_plugin" in done.stderr, done.stderr
    assert run_cli(home, "log", "append", "--type", "x.note", "--body", "{}").returncode == 0
