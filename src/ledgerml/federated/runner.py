"""One federated run end to end: validate, build each bank's private view, enroll keys,
train with Flower (simulation or deployment), compare, record on the ledger.

    from ledgerml.federated import FlOptions, run_federated
    result = run_federated(paths, FlOptions(banks=5, rounds=10, poison="B3"))
    result.comparison["federated"]["auprc"], result.comparison["local_mean"]["auprc"]

Everything that can be wrong with the input is checked before the first ledger append.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ledgerml.config import ProjectPaths
from ledgerml.datasets import aml
from ledgerml.errors import InputError
from ledgerml.federated import _env, evaluation, models
from ledgerml.federated._xgb import XgbParams
from ledgerml.federated.features import FEATURES, bank_view, featurize
from ledgerml.federated.signing import bank_signer, check_bank_name, public_hex, public_key_id
from ledgerml.federated.spec import PoisonMode, RunSpec, Strategy
from ledgerml.mlops import runs

Mode = Literal["simulation", "deployment"]
Progress = Callable[[dict[str, Any]], None]
#: share of the time span held out for testing (the last slice)
TEST_FRACTION = 0.25
#: share of each bank's training view (its last slice) kept for validation and trust
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class FlOptions:
    """What `ledgerml fl run` asks for."""

    banks: int | None = None
    rounds: int = 10
    poison: str | None = None
    poison_mode: PoisonMode = "flip"
    poison_scale: float = 10.0
    forge: str | None = None
    data: Path | None = None
    mode: Mode = "simulation"
    seed: int = 7
    strategy: Strategy = "xgboost"
    accounts: int = 10000
    days: int = 120
    local_rounds: int = 5
    eta: float = 0.3
    max_depth: int = 4
    timeout: float = 600.0
    #: anchor the ledger's checkpoint (covering every round) on the AuditAnchor contract
    anchor: bool = False
    #: the --data table's column names mapped onto the schema's: (table column, schema column)
    columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FlResult:
    """The run's outcome: rounds (trust, weights, seconds), comparison, ledger indexes."""

    run_id: str
    mode: Mode
    strategy: Strategy
    banks: tuple[str, ...]
    model_cid: str
    rounds: list[dict[str, Any]]
    comparison: dict[str, Any]
    data: dict[str, Any]
    seconds: dict[str, float]
    entries: list[tuple[int, str]] = field(default_factory=list)
    anchor: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "strategy": self.strategy,
            "banks": list(self.banks),
            "model_cid": self.model_cid,
            "rounds": self.rounds,
            "comparison": self.comparison,
            "data": self.data,
            "seconds": self.seconds,
            "entries": [{"index": i, "type": t} for i, t in self.entries],
            "anchor": self.anchor,
        }


@dataclass(frozen=True)
class _Prepared:
    table: pd.DataFrame
    source: dict[str, Any]
    banks: tuple[str, ...]
    train: pd.DataFrame
    test: pd.DataFrame


def _validate(paths: ProjectPaths, opts: FlOptions) -> _Prepared:
    """Every input check, before anything is written."""
    paths.require_initialised()
    if opts.rounds < 1:
        raise InputError("must be at least 1", field="--rounds")
    if opts.banks is not None and opts.banks < 1:
        raise InputError("must be at least 1", field="--banks")
    if opts.mode not in ("simulation", "deployment"):
        raise InputError("must be simulation or deployment", field="--mode")
    if opts.strategy not in ("xgboost", "linear"):
        raise InputError("must be xgboost or linear", field="--strategy")
    if opts.poison_mode not in ("flip", "scale"):
        raise InputError("must be flip or scale", field="--poison-mode")
    if opts.local_rounds < 1:
        raise InputError("must be at least 1", field="--local-rounds")
    if opts.anchor:
        from ledgerml.chain.deploy import DEPLOYMENT_FILE

        if not (paths.chain / DEPLOYMENT_FILE).is_file():
            raise InputError(
                "no contracts deployed in this project: run `ledgerml chain deploy` first",
                field="--anchor",
            )
    if opts.data is not None:
        table = aml.load_transactions(opts.data, columns=dict(opts.columns))
        banks = tuple(sorted(set(table["src_bank"]) | set(table["dst_bank"])))
        if opts.banks is not None and opts.banks != len(banks):
            raise InputError(
                f"--banks {opts.banks} but the table holds {len(banks)} banks ({', '.join(banks)})",
                field="--banks",
            )
        digest = hashlib.sha256(Path(opts.data).read_bytes()).hexdigest()
        source: dict[str, Any] = {
            "source": "file",
            "name": Path(opts.data).name,
            "sha256": digest,
        }
    else:
        if opts.columns:
            raise InputError("only applies to a --data table", field="--map")
        n = 5 if opts.banks is None else opts.banks
        table = aml.generate(banks=n, accounts=opts.accounts, days=opts.days, seed=opts.seed)
        banks = tuple(aml.bank_names(n))
        source = {
            "source": "generator",
            "generator": "ledgerml.datasets.aml",
            "banks": n,
            "accounts": opts.accounts,
            "days": opts.days,
            "seed": opts.seed,
        }
    for b in banks:
        check_bank_name(b)
    for flag, bank in (("--poison", opts.poison), ("--forge", opts.forge)):
        if bank is not None and bank not in banks:
            raise InputError(f"unknown bank {bank!r} (banks: {', '.join(banks)})", field=flag)
    cut = table["timestamp"].quantile(1 - TEST_FRACTION)
    train = table[table["timestamp"] < cut].reset_index(drop=True)
    test = table[table["timestamp"] >= cut].reset_index(drop=True)
    for name, part in (("training", train), ("held-out", test)):
        if part["label"].sum() == 0 or part["label"].sum() == len(part):
            raise InputError(
                f"the {name} slice needs both laundering and ordinary transactions",
                field="--data" if opts.data is not None else "--seed",
            )
    return _Prepared(table, source, banks, train, test)


def _bank_files(prep: _Prepared, workdir: Path) -> dict[str, dict[str, Any]]:
    """Write each bank's private view (features of its own transactions) for its node."""
    info: dict[str, dict[str, Any]] = {}
    for bank in prep.banks:
        view = bank_view(prep.train, bank)
        x, y = featurize(view, bank)
        n_val = round(len(y) * VAL_FRACTION)
        d = workdir / "banks" / bank
        d.mkdir(parents=True, exist_ok=True)
        np.savez(
            d / "data.npz",
            x_train=x[: len(y) - n_val],
            y_train=y[: len(y) - n_val],
            x_val=x[len(y) - n_val :],
            y_val=y[len(y) - n_val :],
        )
        info[bank] = {
            "rows": len(y),
            "laundering": int(y.sum()),
            "validation_rows": n_val,
        }
    return info


def _enroll(paths: ProjectPaths, banks: tuple[str, ...], ledger: Any) -> list[tuple[int, str]]:
    """Create missing bank keys and put every not-yet-enrolled key on the ledger."""
    from ledgerml.federated.apps import enrolled_keys

    known = enrolled_keys(ledger)
    entries: list[tuple[int, str]] = []
    for bank in banks:
        pub = public_hex(bank_signer(paths, bank))
        if known.get(bank) != pub:
            body = {
                "bank": bank,
                "algorithm": "ed25519",
                "public_key": pub,
                "key_id": public_key_id(pub),
            }
            entries.append((ledger.append("fl.bank_enrolled", body), "fl.bank_enrolled"))
    return entries


def run_simulation(spec: RunSpec, progress: Progress | None) -> None:
    """The apps in-process on Flower's simulation runtime (Ray, one CPU per bank)."""
    import logging

    from flwr.simulation import run_simulation as flwr_run_simulation

    from ledgerml.federated.apps import client_app, make_server_app

    logging.getLogger("flwr").setLevel(logging.WARNING)
    init_args: dict[str, Any] = {"logging_level": "error", "log_to_driver": False}
    temp_dir = _env.ray_temp_dir(Path(spec.home))
    if temp_dir is not None:
        init_args["_temp_dir"] = temp_dir
    flwr_run_simulation(
        server_app=make_server_app(spec, progress),
        client_app=client_app,
        num_supernodes=len(spec.banks),
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": init_args,
        },
    )


def _fit_pooled(solo: RunSpec, x: np.ndarray, y: np.ndarray) -> bytes:
    """One model on one data set, as many boosting steps as a federated run (`solo`)."""
    model = models.initial_model(solo)
    for r in range(1 if solo.strategy == "xgboost" else solo.rounds):
        inc = models.train_increment(solo, model, x, y, r + 1)
        model = models.aggregate(solo, model, [(inc, 1.0)])
    return model


def _fit_bagged(spec: RunSpec, x: np.ndarray, y: np.ndarray, shards: int) -> bytes:
    """The federated protocol without banks or their views (issue 15): each round,
    `shards` increments boosted from the current model on random disjoint shards of the
    pooled rows, added with weights = their share of rows. Same tree count and
    aggregation as the federated model, so only the features and views differ."""
    rng = np.random.default_rng(spec.xgb.seed)
    model = models.initial_model(spec)
    for r in range(spec.rounds):
        part = rng.integers(0, shards, len(y))
        updates = []
        for k in range(shards):
            rows = part == k
            if rows.any():
                inc = models.train_increment(spec, model, x[rows], y[rows], r + 1)
                updates.append((inc, float(rows.mean())))
        model = models.aggregate(spec, model, updates)
    return model


def _tree_count(spec: RunSpec, model: bytes) -> int | None:
    """Trees in an XGBoost model (None for the linear strategy)."""
    if spec.strategy != "xgboost":
        return None
    return int(
        json.loads(model)["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"]
    )


def _local_and_central(
    spec: RunSpec, prep: _Prepared, workdir: Path, final_model: bytes
) -> tuple[dict[str, Any], float]:
    """Every contender scored on the held-out transactions."""
    t0 = time.perf_counter()
    test_views: dict[str, np.ndarray] = {}
    positions: dict[str, np.ndarray] = {}
    index = pd.Series(np.arange(len(prep.test)), index=prep.test["tx_id"].to_numpy())
    for bank in prep.banks:
        view = bank_view(prep.test, bank)
        x, _ = featurize(view, bank)
        test_views[bank] = x
        positions[bank] = index.loc[view["tx_id"].to_numpy()].to_numpy()
    y = prep.test["label"].to_numpy()

    def score(model: bytes, sender_only: bool = False) -> np.ndarray:
        per = {b: models.predict_margin(spec, model, test_views[b]) for b in prep.banks}
        if sender_only:
            j = FEATURES.index("own_src")
            sends = {b: test_views[b][:, j] == 1 for b in prep.banks}
            return evaluation.sender_scores(len(y), positions, per, sends)
        return evaluation.transaction_scores(len(y), positions, per)

    # local-only: the same family and the same number of boosting steps, one bank's data
    solo = (
        replace(spec, xgb=replace(spec.xgb, local_rounds=spec.xgb.local_rounds * spec.rounds))
        if spec.strategy == "xgboost"
        else spec
    )
    local: dict[str, dict[str, float]] = {}
    for bank in prep.banks:
        with np.load(workdir / "banks" / bank / "data.npz") as d:
            x, yy = d["x_train"], d["y_train"]
        local[bank] = evaluation.metrics(score(_fit_pooled(solo, x, yy)), y)
    fed = evaluation.metrics(score(final_model), y)
    # centralized: whole-table features of the same slices, one model
    xg, yg = featurize(prep.train, None)
    xt, yt = featurize(prep.test, None)
    cmodel = _fit_pooled(solo, xg, yg)
    central = evaluation.metrics(models.predict_margin(solo, cmodel, xt), yt)
    # the same features with the federated model's tree budget and aggregation (issue 15)
    bmodel = _fit_bagged(spec, xg, yg, len(prep.banks))
    central_budget = evaluation.metrics(models.predict_margin(spec, bmodel, xt), yt)
    # the banks' own views pooled into one model, scored like the federated model
    views = [featurize(bank_view(prep.train, b), b) for b in prep.banks]
    vmodel = _fit_pooled(
        solo, np.concatenate([v[0] for v in views]), np.concatenate([v[1] for v in views])
    )
    pooled_views = evaluation.metrics(score(vmodel), y)
    sender_views = evaluation.metrics(score(vmodel, sender_only=True), y)
    mean_local = {k: float(np.mean([m[k] for m in local.values()])) for k in fed}
    amount = prep.test["amount"].to_numpy()
    single = {
        name: max(
            evaluation.average_precision(np.nan_to_num(xt[:, j], nan=-1e12), yt),
            evaluation.average_precision(-np.nan_to_num(xt[:, j], nan=1e12), yt),
        )
        for j, name in enumerate(FEATURES)
    }
    best = max(single, key=lambda k: single[k])
    comparison = {
        "test_set": {
            "description": f"last {TEST_FRACTION:.0%} of the time span, every transaction in it",
            "from": str(prep.test["timestamp"].min()),
            "to": str(prep.test["timestamp"].max()),
            "transactions": len(y),
            "laundering": int(y.sum()),
        },
        "federated": fed,
        "local": local,
        "local_mean": mean_local,
        "centralized": central,
        "centralized_same_budget": central_budget,
        "pooled_bank_views": pooled_views,
        "pooled_bank_views_sender_only": sender_views,
        "trees": {
            "federated": _tree_count(spec, final_model),
            "centralized": _tree_count(solo, cmodel),
            "centralized_same_budget": _tree_count(spec, bmodel),
            "pooled_bank_views": _tree_count(solo, vmodel),
        },
        "improvement_vs_local_mean": {
            k: evaluation.improvement(fed[k], mean_local[k]) for k in fed
        },
        "simple_features": {
            "base_rate": float(y.mean()),
            "amount_auprc": max(
                evaluation.average_precision(amount, y), evaluation.average_precision(-amount, y)
            ),
            "best_single_feature": best,
            "best_single_feature_auprc": single[best],
        },
    }
    return comparison, time.perf_counter() - t0


def run_federated(
    paths: ProjectPaths, opts: FlOptions, progress: Progress | None = None
) -> FlResult:
    """Validate, train federated, compare, record; see the module docstring."""
    from ledgerml.ledger import open_ledger
    from ledgerml.storage import open_store

    t_all = time.perf_counter()
    prep = _validate(paths, opts)
    _env.configure(paths.home)
    run_id = runs.new_run_id("fl", 3)
    workdir = paths.home / "fl" / run_id
    workdir.mkdir(parents=True)
    t0 = time.perf_counter()
    bank_info = _bank_files(prep, workdir)
    prepare_s = time.perf_counter() - t0
    spec = RunSpec(
        run_id=run_id,
        home=str(paths.home),
        workdir=str(workdir),
        banks=prep.banks,
        rounds=opts.rounds,
        strategy=opts.strategy,
        num_feature=len(FEATURES),
        xgb=XgbParams(local_rounds=opts.local_rounds, eta=opts.eta, max_depth=opts.max_depth),
        poison_bank=opts.poison,
        poison_mode=opts.poison_mode,
        poison_scale=opts.poison_scale,
        forge_bank=opts.forge,
        timeout=opts.timeout,
    )
    spec.save()
    entries: list[tuple[int, str]] = []
    with open_ledger(paths) as ledger:
        entries += _enroll(paths, prep.banks, ledger)
        params = {
            "mode": opts.mode,
            "banks": list(prep.banks),
            "rounds": opts.rounds,
            "strategy": opts.strategy,
            "xgb": spec.to_json()["xgb"],
            "data": prep.source,
            "test_fraction": TEST_FRACTION,
            "validation_fraction": VAL_FRACTION,
            "poison": {"bank": opts.poison, "mode": opts.poison_mode} if opts.poison else None,
            "forge": opts.forge,
        }
        started = {
            "run_id": run_id,
            "dataset_cids": [],
            "model_type": f"federated-{opts.strategy}",
            "params": params,
            "seed": opts.seed,
            "code_version": runs.code_version(),
            "library_versions": runs.library_versions(),
        }
        entries.append((ledger.append("run.started", started), "run.started"))
    t0 = time.perf_counter()
    try:
        if opts.mode == "simulation":
            run_simulation(spec, progress)
        else:
            from ledgerml.federated.deploy import run_deployment

            run_deployment(spec, progress)
    except Exception as exc:
        with open_ledger(paths) as ledger:
            ledger.append("run.finished", runs.run_failed(run_id, exc))
        raise
    train_s = time.perf_counter() - t0
    result_path = workdir / "result.json"
    if not result_path.exists():
        unfinished = RuntimeError(f"federated run {run_id} did not finish (see {workdir})")
        with open_ledger(paths) as ledger:
            ledger.append("run.finished", runs.run_failed(run_id, unfinished))
        raise unfinished
    summary = json.loads(result_path.read_text())
    store = open_store(paths)
    final_model = store.read_bytes(summary["final_cid"])
    comparison, eval_s = _local_and_central(spec, prep, workdir, final_model)
    for bank in prep.banks:  # the banks' private views do not outlive the run
        shutil.rmtree(workdir / "banks" / bank, ignore_errors=True)
    round_s = [float(r["seconds"]) for r in summary["rounds"]]
    with open_ledger(paths) as ledger:
        model_cid = summary["final_cid"]
        entries.append(
            (
                ledger.append(
                    "run.finished", runs.run_succeeded(run_id, model_cid, duration_s=train_s)
                ),
                "run.finished",
            )
        )
        entries.append(
            (
                ledger.append(
                    "model.registered",
                    runs.model_registered(
                        "fl-aml",
                        model_cid,
                        run_id,
                        "xgboost" if opts.strategy == "xgboost" else "linear",
                        [(f, "float32") for f in FEATURES],
                        "label",
                    ),
                ),
                "model.registered",
            )
        )
        baselines = {
            "local_mean": comparison["local_mean"],
            "centralized": comparison["centralized"],
            "centralized_same_budget": comparison["centralized_same_budget"],
            **{f"local_{b}": m for b, m in comparison["local"].items()},
        }
        entries.append(
            (
                ledger.append(
                    "evaluation.recorded",
                    {
                        "model_cid": model_cid,
                        "split": "held-out last time slice",
                        "metrics": comparison["federated"],
                        "baselines": baselines,
                    },
                ),
                "evaluation.recorded",
            )
        )
    anchored = None
    if opts.anchor:  # one checkpoint on chain covers every fl.round of the run
        from ledgerml.mlops.anchoring import anchor

        res = anchor(paths)
        anchored = res.to_json()
        if res.ledger_index is not None:
            entries.append((res.ledger_index, "checkpoint.anchored"))
    seconds = {
        "prepare": round(prepare_s, 3),
        "federated": round(train_s, 3),
        "rounds_total": round(sum(round_s), 3),
        "per_round_mean": round(float(np.mean(round_s)), 3),
        "evaluate_baselines": round(eval_s, 3),
        "total": round(time.perf_counter() - t_all, 3),
    }
    data = dict(prep.source) | {
        "summary": aml.summary(prep.table),
        "banks": bank_info,
        "train_rows": len(prep.train),
    }
    return FlResult(
        run_id=run_id,
        mode=opts.mode,
        strategy=opts.strategy,
        banks=prep.banks,
        model_cid=summary["final_cid"],
        rounds=summary["rounds"],
        comparison=comparison,
        data=data,
        seconds=seconds,
        entries=entries,
        anchor=anchored,
    )
