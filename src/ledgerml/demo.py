"""The `make demo` story, for now: a fraud model's life on the ledger.

Creates a fresh project, stores a small seeded transaction table and a model
file in the content-addressed store, records the lifecycle (data set, run,
model, evaluation, compliance, two approvals, promotion, decisions, drift),
then prints the signed checkpoint, proves one decision and verifies the log.
Later issues replace the synthetic parts with the real ULB data and XGBoost.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import merkle
from ledgerml.ledger.project import init_project, log_verifiers, open_ledger
from ledgerml.storage import open_store

MARKER = ".ledgerml-demo"


@dataclass(frozen=True)
class DemoResult:
    home: Path
    tree_size: int
    checkpoint: str
    proved_index: int
    proof: dict[str, Any]
    proof_ok: bool
    verify_ok: bool
    verify_seconds: float


def _fresh_folder(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).exists():
            raise InputError(
                f"{folder} exists and was not made by `ledgerml demo`; choose another --dir",
                field="--dir",
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by ledgerml demo; safe to delete\n")


def _transactions(seed: int, rows: int) -> bytes:
    rng = random.Random(seed)
    lines = ["time,amount,merchant_category,card_age_days,hour,label"]
    for i in range(rows):
        fraud = rng.random() < 0.02
        amount = rng.lognormvariate(5.5 if fraud else 3.2, 1.0)
        lines.append(
            f"{i * 37},{amount:.2f},{rng.choice(['grocery', 'travel', 'online', 'fuel'])},"
            f"{rng.randint(1, 3000)},{rng.randint(0, 23)},{int(fraud)}"
        )
    return ("\n".join(lines) + "\n").encode()


def run_demo(folder: Path, *, say: Callable[[str], None] = print) -> DemoResult:
    """Run the demo in `folder` (recreated if it is an earlier demo's)."""
    _fresh_folder(folder)
    home = folder / ".ledgerml"
    paths: ProjectPaths = init_project(home, origin="demo.ledgerml.local/fraud")
    store = open_store(paths)
    say(f"project: {home}")

    data = _transactions(seed=7, rows=20_000)
    data_path = folder / "transactions.csv"
    data_path.write_bytes(data)
    dataset = store.add_file(data_path)
    model_bytes = json.dumps({"kind": "demo-rules", "amount_threshold": 400.0}).encode()
    (folder / "model.json").write_bytes(model_bytes)
    model = store.add_file(folder / "model.json")
    say(f"data set CID {dataset.cid} ({dataset.size:,} bytes), model CID {model.cid}")

    columns = ["time", "amount", "merchant_category", "card_age_days", "hour", "label"]
    schema_hash = hashlib.sha256(",".join(columns).encode()).hexdigest()
    with open_ledger(paths) as ledger:
        lifecycle: list[tuple[str, dict[str, Any]]] = [
            (
                "dataset.registered",
                {
                    "name": "card-transactions-demo",
                    "cid": dataset.cid,
                    "rows": 20_000,
                    "columns": columns,
                    "schema_hash": schema_hash,
                    "source_sha256": hashlib.sha256(data).hexdigest(),
                    "label": "label",
                    "dtypes": {
                        "time": "int64",
                        "amount": "float64",
                        "merchant_category": "string",
                        "card_age_days": "int64",
                        "hour": "int64",
                        "label": "int64",
                    },
                },
            ),
            (
                "run.started",
                {
                    "run_id": "run-0001",
                    "dataset_cids": [dataset.cid],
                    "model_type": "rules",
                    "params": {"amount_threshold": 400.0},
                    "seed": 7,
                },
            ),
            (
                "run.finished",
                {
                    "run_id": "run-0001",
                    "status": "succeeded",
                    "model_cid": model.cid,
                    "duration_s": 0.4,
                },
            ),
            (
                "model.registered",
                {
                    "name": "fraud-demo",
                    "cid": model.cid,
                    "run_id": "run-0001",
                    "framework": "rules",
                    "dataset_cids": [dataset.cid],
                    "target": "label",
                    "features": [{"name": "amount", "dtype": "float64"}],
                },
            ),
            (
                "evaluation.recorded",
                {
                    "model_cid": model.cid,
                    "dataset_cid": dataset.cid,
                    "split": "time-ordered 80/20",
                    "metrics": {"auprc": 0.41, "roc_auc": 0.88, "fpr_at_80_recall": 0.031},
                },
            ),
            (
                "compliance.checked",
                {
                    "model_cid": model.cid,
                    "policy": "fraud-model",
                    "passed": True,
                    "results": [
                        {
                            "rule_id": "FM-1",
                            "regulation": "SR 26-2 (performance monitoring)",
                            "metric": "auprc",
                            "value": 0.41,
                            "threshold": 0.3,
                            "passed": True,
                        },
                        {
                            "rule_id": "FM-2",
                            "regulation": "GDPR Art. 5(1)(c) data minimisation",
                            "value": "no PII among features",
                            "passed": True,
                        },
                    ],
                },
            ),
            (
                "approval.granted",
                {
                    "model_cid": model.cid,
                    "role": "RISK_APPROVER",
                    "approver": "risk-officer@bank.example",
                },
            ),
            (
                "approval.granted",
                {
                    "model_cid": model.cid,
                    "role": "COMPLIANCE_APPROVER",
                    "approver": "compliance@bank.example",
                },
            ),
            ("model.promoted", {"model_cid": model.cid, "alias": "champion"}),
        ]
        ledger.append_many(lifecycle)
        rng = random.Random(11)
        decisions = []
        for i in range(500):
            amount = round(rng.lognormvariate(3.3, 1.2), 2)
            score = min(1.0, amount / 1000)
            decisions.append(
                (
                    "decision.recorded",
                    {
                        "decision_id": f"dec-{i:05d}",
                        "model_cid": model.cid,
                        "input_commitment": hashlib.sha256(
                            f"salt-{i}|{amount}".encode()
                        ).hexdigest(),
                        "score": round(score, 4),
                        "threshold": 0.4,
                        "outcome": "review" if score >= 0.4 else "approve",
                        "reasons": ["amount far above the usual"] if score >= 0.4 else [],
                    },
                )
            )
        first_decision = ledger.append_many(decisions)[0]
        ledger.append_many(
            [
                (
                    "drift.detected",
                    {
                        "model_cid": model.cid,
                        "psi": {"amount": 0.27},
                        "max_psi": 0.27,
                        "threshold": 0.2,
                    },
                ),
                (
                    "retrain.requested",
                    {"model_cid": model.cid, "reason": "PSI of amount 0.27 > 0.2"},
                ),
            ]
        )
        note = ledger.checkpoint()
        size = ledger.size()
        say(f"recorded {size} entries; checkpoint:")
        say(note.rstrip("\n"))
        index = first_decision + 42
        proof = ledger.inclusion_proof(index)
        entry = ledger.entry(index)
        proof_ok = merkle.verify_inclusion(
            merkle.leaf_hash(entry), proof.leaf_index, proof.tree_size, proof.hashes, proof.root
        )
        say(
            f"inclusion proof of decision at index {index}: "
            f"{len(proof.hashes)} hashes, {'verifies' if proof_ok else 'DOES NOT VERIFY'}"
        )
        report = ledger.verify(log_verifiers(paths))
    say(
        f"verify: {'OK' if report.ok else 'FAILED'} ({report.tree_size} entries, "
        f"{report.checkpoints_checked} checkpoints, {report.seconds:.3f}s)"
    )
    return DemoResult(home, size, note, index, proof.to_json(), proof_ok, report.ok, report.seconds)
