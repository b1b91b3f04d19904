"""Training runs on the ledger: a registered data set in, a content-addressed model out.

Why: a model is provable only if anyone can tell which data, parameters, seed and
code made it. `train_model` validates everything first (nothing is recorded on bad
input), then records `run.started`, trains on the first `train_fraction` of the
rows in time order (never the future into training), stores the model in the CAS
and records `run.finished` and `model.registered` with the feature schema.

The parts live beside it, and this module re-exports their names (it is the front door
importers use): `training_data` (resolve, load, check and split a data set in time
order), `params` (what a user may set, the defaults and their checks), `fitting` (one fit
per model type, deterministic bytes, `recipe_hash`) and `runs` (run id, provenance and the
bodies of the entries a run writes).

Usage::

    res = train_model(paths, "card-transactions", "Class", seed=0)
    res.model_cid, res.run_id, res.features
    model = load_model(paths, res.model_cid)
    model.predict_proba(table)          # pyarrow Table, dict of columns or 2-D array
    model.explain(rows, top=3)          # TreeSHAP reason codes per row
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from ledgerml.ledger.events import validate_body
from ledgerml.mlops.fitting import (
    VALIDATION_FRACTION,
    Progress,
    _fit_logreg,
    _fit_xgboost,
    fit_model,
    fit_model_used,
    recipe_hash,
    reference_percentiles,
)
from ledgerml.mlops.leakage import LeakageWarning
from ledgerml.mlops.models._base import Model, column_array
from ledgerml.mlops.params import (
    LOGREG_DEFAULTS,
    MAX_SEED,
    MODEL_TYPES,
    XGB_DEFAULTS,
    XGB_FIXED,
    ModelType,
    _resolve_weight,
    check_params,
    check_seed,
)
from ledgerml.mlops.runs import (
    code_version,
    library_versions,
    model_registered,
    new_run_id,
    run_failed,
    run_succeeded,
)
from ledgerml.mlops.training_data import (
    Prepared,
    Split,
    load_table,
    prepare,
    resolve_dataset,
    time_order,
)
from ledgerml.storage import open_store

#: What other modules import from here (the names moved to the modules above stay here).
__all__ = [
    "LOGREG_DEFAULTS",
    "MAX_SEED",
    "MODEL_TYPES",
    "VALIDATION_FRACTION",
    "XGB_DEFAULTS",
    "XGB_FIXED",
    "LeakageWarning",
    "ModelInfo",
    "ModelType",
    "Prepared",
    "Progress",
    "Split",
    "TrainResult",
    "check_params",
    "check_seed",
    "code_version",
    "column_array",
    "fit_model",
    "fit_model_used",
    "library_versions",
    "load_model",
    "load_table",
    "model_from_bytes",
    "model_info",
    "prepare",
    "recipe_hash",
    "reference_percentiles",
    "resolve_dataset",
    "time_order",
    "train_model",
]


@dataclass(frozen=True)
class TrainResult:
    """What a training run recorded and where."""

    run_id: str
    model_cid: str
    framework: str
    features: tuple[tuple[str, str], ...]
    target: str
    dataset_cid: str
    train_rows: int
    params: dict[str, Any] = field(hash=False)
    duration_s: float
    run_started_index: int
    run_finished_index: int
    model_registered_index: int
    #: leakage / identifier findings on the training window (ledgerml.mlops.leakage)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "warnings": list(self.warnings),
            "run_id": self.run_id,
            "model_cid": self.model_cid,
            "framework": self.framework,
            "features": [{"name": n, "dtype": t} for n, t in self.features],
            "target": self.target,
            "dataset_cid": self.dataset_cid,
            "train_rows": self.train_rows,
            "params": self.params,
            "duration_s": self.duration_s,
            "ledger": {
                "run.started": self.run_started_index,
                "run.finished": self.run_finished_index,
                "model.registered": self.model_registered_index,
            },
        }


def train_model(
    paths: ProjectPaths,
    data: str,
    target: str,
    model: ModelType = "xgboost",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    time_column: str | None = "Time",
    train_fraction: float = 0.8,
    progress: Progress | None = None,
    *,
    drop: Sequence[str] = (),
    name: str | None = None,
) -> TrainResult:
    """Train on the first `train_fraction` of `data` by `time_column`; record the run and model.

    Everything is validated before the first entry is written; a failure during
    training records `run.finished` with status "failed" and re-raises.
    """
    if model not in MODEL_TYPES:
        raise InputError(f"must be one of {', '.join(MODEL_TYPES)}", field="--model")
    merged = check_params(model, params)
    seed = check_seed(seed)
    record = resolve_dataset(paths, data)
    table = load_table(paths, record.cid)
    prep = prepare(table, target, time_column, train_fraction, drop=list(drop))
    model_name = name or f"{record.name}-{model}"
    if not isinstance(model_name, str) or not 1 <= len(model_name) <= 200:
        raise InputError("must be 1 to 200 characters", field="--name")
    if model == "logreg":
        import numpy as np

        if np.isnan(prep.x[: prep.split.train_rows]).any():
            _fit_logreg(prep, merged, seed, None)  # raises InputError before anything is recorded

    merged = _resolve_weight(model, merged, prep)
    from ledgerml.mlops.leakage import screen_and_warn

    cut = prep.split.train_rows
    screen, found = screen_and_warn(prep.x[:cut], prep.y[:cut], [n for n, _ in prep.features])

    run_id = new_run_id()
    run_params = {
        **merged,
        **(XGB_FIXED if model == "xgboost" else {}),
        **({"drop": list(drop)} if drop else {}),
        "target": target,
        "split": prep.split.to_json(),
        # what the user asked for (defaults apart) and its hash: `ledgerml backtest --model`
        # repeats this recipe, and the packs match a backtest to the run by the hash
        "requested": dict(params or {}),
        "screen": screen.to_json(),
        "recipe": recipe_hash(
            dataset_cid=record.cid,
            target=target,
            time_column=time_column,
            drop=drop,
            model_type=model,
            params=dict(params or {}),
            seed=seed,
        ),
    }
    versions = library_versions()
    started_body = {
        "run_id": run_id,
        "dataset_cids": [record.cid],
        "model_type": model,
        "params": run_params,
        "seed": seed,
        "code_version": code_version(),
        "library_versions": versions,
    }
    validate_body("run.started", started_body)
    framework = (
        f"xgboost {versions['xgboost']}"
        if model == "xgboost"
        else f"scikit-learn {versions['scikit-learn']}"
    )

    store = open_store(paths)
    with open_ledger(paths) as ledger:
        started_index = ledger.append("run.started", started_body)
        t0 = time.perf_counter()
        try:
            fit = _fit_xgboost if model == "xgboost" else _fit_logreg
            raw, used = fit(prep, merged, seed, progress)
            added = store.add_bytes(raw)
        except BaseException as exc:
            failed = run_failed(run_id, exc, duration_s=time.perf_counter() - t0)
            ledger.append("run.finished", failed)
            raise
        duration = round(time.perf_counter() - t0, 3)
        finished_index, registered_index = ledger.append_many(
            [
                ("run.finished", run_succeeded(run_id, added.cid, duration_s=duration)),
                (
                    "model.registered",
                    model_registered(
                        model_name,
                        added.cid,
                        run_id,
                        framework,
                        prep.features,
                        target,
                        dataset_cids=[record.cid],
                    ),
                ),
            ]
        )
    return TrainResult(
        run_id=run_id,
        model_cid=added.cid,
        framework=framework,
        features=prep.features,
        target=target,
        dataset_cid=record.cid,
        train_rows=prep.split.train_rows,
        params={**run_params, "fitted": used},
        duration_s=duration,
        run_started_index=started_index,
        run_finished_index=finished_index,
        model_registered_index=registered_index,
        warnings=tuple(found),
    )


# -- loading ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What the ledger says about a model: its registration and the run that made it."""

    cid: str
    name: str
    framework: str
    features: tuple[tuple[str, str], ...]
    target: str | None
    dataset_cids: tuple[str, ...]
    run_id: str | None
    run_params: dict[str, Any] = field(hash=False)
    model_type: str
    seed: int | None


def model_info(paths: ProjectPaths, cid: str, *, field_name: str = "MODEL_CID") -> ModelInfo:
    """The `model.registered` entry for `cid` and its `run.started` (InputError if unknown)."""

    registered: dict[str, Any] | None = None
    runs: dict[str, dict[str, Any]] = {}
    if not isinstance(cid, str):
        raise InputError("must be a CID string", field=field_name)
    with open_ledger(paths) as ledger:
        for _, entry in ledger.entries_of_type("run.started", "model.registered"):
            body = entry["body"]
            if entry["type"] == "run.started":
                # the first entry of a run is the evidence (as in compliance.checking): anyone
                # can append another `run.started` with the same run_id (`ledgerml log
                # append`), and it must not change the split, recipe or drop that evaluate,
                # backtest --model and monitor --retrain read from here
                runs.setdefault(body["run_id"], body)
            elif registered is None and body.get("cid") == cid:
                registered = body
    if registered is None:
        raise InputError(f"no model {cid!r} registered in this project", field=field_name)
    run = runs.get(registered.get("run_id") or "", {})
    return ModelInfo(
        cid=cid,
        name=registered["name"],
        framework=registered["framework"],
        features=tuple((f["name"], f["dtype"]) for f in registered.get("features", [])),
        target=registered.get("target"),
        dataset_cids=tuple(registered.get("dataset_cids", [])),
        run_id=registered.get("run_id"),
        run_params=run.get("params", {}),
        model_type=run.get("model_type")
        or ("xgboost" if registered["framework"].startswith("xgboost") else "logreg"),
        seed=run.get("seed"),
    )


def load_model(paths: ProjectPaths, cid: str) -> Model:
    """Read a model from the CAS (verified) and wrap it; the format is recognised from the bytes."""
    from ledgerml.errors import LedgerMLError

    store = open_store(paths)
    try:
        raw = store.read_bytes(cid)
    except LedgerMLError:
        raise
    except Exception as exc:  # unknown or malformed CID
        raise InputError(f"no model {cid!r} in the store ({exc})", field="MODEL_CID") from None
    return model_from_bytes(cid, raw)


def model_from_bytes(cid: str, raw: bytes, *, source: str | None = None) -> Model:
    """Any registered format (`ledgerml.mlops.models.load`); an unreadable file is an
    `InputError` naming `source` (default: the CID), never a library's traceback."""
    from ledgerml.mlops import models

    return models.load(cid, raw, source=source)
