"""The Python front door: a data scientist's five lines, over the same code the CLI runs.

Why: recording a run, registering a model from any framework, checking it against a
policy pack, promoting it through the on-chain gate and serving it should not need six
private modules and hand-written event bodies. Small public verbs over private
packages (sigstore's `model_signing`), a fluent run context (MLflow)::

    import ledgerml

    project = ledgerml.init("proj")                 # or ledgerml.open() / ledgerml.open(home)
    project.add_data("cards.csv", name="cards", label="Class")
    with project.start_run(data=["cards"], params={"n_estimators": 200}) as run:
        model = lgb.LGBMClassifier(n_estimators=200).fit(X, y)
        run.log_model(model, features=cols, target="Class")   # format detected, stored in the CAS
    project.evaluate(run.model, data="cards_test")   # metrics and baselines as `ledgerml evaluate`
    project.backtest(run.model, fit=my_fit)          # your fit(X, y) on every rolling-origin fold
    project.check(run.model, pack="fraud-model")     # CheckResult; numeric rules judged on chain
    project.approve(run.model, role="risk_approver"); project.promote(run.model, alias="champion")
    d = project.decide({"V1": -1.2, ...}, alias="champion")   # scored, recorded, reasons
    project.verify()

Errors are `ledgerml.errors.InputError` naming the Python parameter (`data`, `features`,
`model` …), raised before anything is written. Values returned are frozen dataclasses
with `to_json()`. Models are never pickled: see `ledgerml.mlops.models`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ledgerml.config import ProjectPaths, resolve_home
from ledgerml.errors import InputError

if TYPE_CHECKING:
    from ledgerml.compliance.checking import CheckResult
    from ledgerml.ledger.log import VerifyReport
    from ledgerml.mlops.backtest import BacktestResult
    from ledgerml.mlops.datasets import DatasetRecord
    from ledgerml.mlops.evaluation import EvaluationResult
    from ledgerml.mlops.governance import Mirrored
    from ledgerml.serving.decisions import Decision

#: CLI spellings of fields in errors from the layers below -> the Python parameter.
_PARAMS = {
    "--data": "data",
    "--target": "target",
    "--time-column": "time_column",
    "--drop": "features",
    "--protected": "protected",
    "--name": "name",
    "--label": "label",
    "--pii": "pii",
    "--subject-col": "subject_column",
    "MODEL_CID": "model",
    "model": "model",
    "alias": "alias",
}


@contextmanager
def _python_names(**extra: str) -> Iterator[None]:
    """Re-raise an `InputError` from the layers below under the Python parameter's name."""
    try:
        yield
    except InputError as exc:
        names = {**_PARAMS, **extra}
        if exc.field is None or exc.field not in names or names[exc.field] == exc.field:
            raise
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise InputError(message, field=names[exc.field]) from None


def _cid(model: Any, *, field: str = "model") -> str:
    cid = model.cid if isinstance(model, RegisteredModel) else model
    if not isinstance(cid, str) or not cid.startswith("b"):
        raise InputError("must be a RegisteredModel or a model CID (bafk…)", field=field)
    return cid


@dataclass(frozen=True)
class RegisteredModel:
    """A model in the CAS with its `model.registered` entry: what `run.log_model` returns."""

    cid: str
    name: str
    framework: str
    model_type: str
    features: tuple[str, ...]
    target: str
    dataset_cids: tuple[str, ...]
    run_id: str
    explanation: str
    ledger_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "name": self.name,
            "framework": self.framework,
            "model_type": self.model_type,
            "features": list(self.features),
            "target": self.target,
            "dataset_cids": list(self.dataset_cids),
            "run_id": self.run_id,
            "explanation": self.explanation,
            "ledger_index": self.ledger_index,
        }


class Run:
    """A training run done by the caller's own code; recorded when a model is logged.

    Nothing is written on entry. `log_model` appends `run.started`, `run.finished` and
    `model.registered` in one batch (all or nothing); a run left by an exception before
    any model was logged is recorded as started and failed.
    """

    def __init__(
        self,
        project: Project,
        datasets: tuple[DatasetRecord, ...],
        params: dict[str, Any],
        *,
        seed: int | None,
        name: str | None,
        time_column: str | None,
        train_fraction: float,
    ) -> None:
        self.project = project
        self.datasets = datasets
        self.params = params
        self.seed = seed
        self.name = name
        self.time_column = time_column
        self.train_fraction = train_fraction
        self.run_id = f"run-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.t0 = time.perf_counter()
        self.model: RegisteredModel | None = None

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or self.model is not None or isinstance(exc, InputError):
            return  # bad input (a refused model file, a wrong feature) writes nothing
        from ledgerml.ledger import open_ledger

        started = self._started_body("none", {})
        finished = {
            "run_id": self.run_id,
            "status": "failed",
            "duration_s": round(time.perf_counter() - self.t0, 3),
            "error": f"{type(exc).__name__}"[:500],  # the message may quote data: type only
        }
        with open_ledger(self.project.paths) as ledger:
            ledger.append_many([("run.started", started), ("run.finished", finished)])

    def _started_body(self, model_type: str, split: dict[str, Any]) -> dict[str, Any]:
        from ledgerml.mlops.training import code_version, library_versions

        body: dict[str, Any] = {
            "run_id": self.run_id,
            "dataset_cids": [d.cid for d in self.datasets],
            "model_type": model_type,
            "params": {**self.params, **split, "started": self.started, "trained_by": "caller"},
            "code_version": code_version(),
            "library_versions": library_versions(),
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def log_model(
        self,
        model: Any,
        *,
        features: Sequence[str] | None,
        target: str,
        name: str | None = None,
        filename: str | None = None,
    ) -> RegisteredModel:
        """Store `model` (an object or a model file) with its schema; record the run.

        `model` is a fitted object, a path to a model file, or a file's bytes (`filename`
        names it in errors). `features` must be the training data set's columns in its order
        (the model's inputs; None: every column but the target and the time column);
        `target` its 0/1 label. The training window's percentiles go
        inside the stored file (the words of reason codes, pinned by the CID).
        """
        import numpy as np

        from ledgerml.ledger import open_ledger
        from ledgerml.mlops import models
        from ledgerml.mlops.leakage import screen_and_warn
        from ledgerml.mlops.training import load_table, prepare, reference_percentiles
        from ledgerml.storage import open_store

        if self.model is not None:
            raise InputError("this run already logged a model; start another run", field="model")
        record = self.datasets[0]
        table = load_table(self.project.paths, record.cid)
        if features is None:
            features = [c for c in table.column_names if c not in (target, self.time_column)]
        feats = [features] if isinstance(features, str) else list(features or [])
        if not feats or not all(isinstance(f, str) and f for f in feats):
            raise InputError("must be a non-empty list of column names", field="features")
        if len(set(feats)) != len(feats):
            raise InputError("names a column twice", field="features")
        unknown = [f for f in feats if f not in table.column_names]
        if unknown:
            raise InputError(
                f"not columns of data set {record.name!r}: {', '.join(unknown[:8])}",
                field="features",
            )
        keep = {*feats, target, *([self.time_column] if self.time_column else [])}
        drop = [c for c in table.column_names if c not in keep]
        with _python_names():
            prep = prepare(table, target, self.time_column, self.train_fraction, drop=drop)
        if [n for n, _ in prep.features] != feats:
            order = ", ".join(n for n, _ in prep.features)
            raise InputError(f"must follow the data set's column order ({order})", field="features")
        if prep.categories:
            # LedgerML's category codes live in the files `ledgerml train` writes; a model
            # trained elsewhere encoded its text its own way, which serving cannot repeat
            raise InputError(
                f"text column(s) {', '.join(prep.categories)}: a model trained outside "
                "LedgerML takes numeric features only; leave them out or encode them first",
                field="features",
            )
        cut = prep.split.train_rows
        reference = reference_percentiles(prep.x[:cut])
        # the leakage screen `ledgerml train` records (warned about, as there)
        screen, _ = screen_and_warn(prep.x[:cut], prep.y[:cut], feats)

        source = "model"
        if isinstance(model, str | Path | bytes):
            if isinstance(model, bytes):
                source, raw = filename or "the model file", model
            else:
                source, raw = str(model), models.read_file(model, field="model")
            try:
                loaded = models.load("file", raw, source=source)
            except InputError as exc:  # names the file; the parameter is `model`
                raise InputError(str(exc), field="model") from None
            if loaded.model_type == "onnx":
                import onnx

                model = onnx.load_from_string(raw)  # protobuf parse only: no code runs
            else:
                model = loaded._impl
        raw, kind = models.dump(model, features=feats, reference=reference)
        fmt = models.get(kind)
        try:
            check = fmt.load("check", raw, source=source)
            probe = np.asarray(check.predict_proba(prep.x[:2]), dtype=np.float64)
        except InputError:
            raise
        except Exception as exc:  # the model does not take these features
            raise InputError(
                f"the model cannot score {len(feats)} features ({type(exc).__name__})",
                field="features",
            ) from None
        if probe.shape != (2,) or not np.all((probe >= 0) & (probe <= 1)):
            raise InputError("the model does not give one probability per row", field="model")

        model_name = name or self.name or f"{record.name}-{kind}"
        if not 1 <= len(model_name) <= 200:
            raise InputError("must be 1 to 200 characters", field="name")
        split = {
            "target": target,
            "split": prep.split.to_json(),
            **({"drop": drop} if drop else {}),
            "screen": screen.to_json(),  # leakage / identifier screen of the training window
        }
        started = self._started_body(kind, split)
        store = open_store(self.project.paths)
        cid = store.add_bytes(raw).cid
        finished = {
            "run_id": self.run_id,
            "status": "succeeded",
            "model_cid": cid,
            "duration_s": round(time.perf_counter() - self.t0, 3),
        }
        registered = {
            "name": model_name,
            "cid": cid,
            "run_id": self.run_id,
            "framework": fmt.framework(),
            "dataset_cids": [d.cid for d in self.datasets],
            "features": [{"name": n, "dtype": t} for n, t in prep.features],
            "target": target,
        }
        events = [
            ("run.started", started),
            ("run.finished", finished),
            ("model.registered", registered),
        ]
        with open_ledger(self.project.paths) as ledger:  # validates all three, then appends
            *_, index = ledger.append_many(events)
        self.model = RegisteredModel(
            cid=cid,
            name=model_name,
            framework=fmt.framework(),
            model_type=kind,
            features=tuple(feats),
            target=target,
            dataset_cids=tuple(d.cid for d in self.datasets),
            run_id=self.run_id,
            explanation=fmt.explanation,
            ledger_index=index,
        )
        return self.model


class Project:
    """One LedgerML project folder (`.ledgerml/`): the verbs of the model lifecycle."""

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths

    @property
    def home(self) -> Path:
        return self.paths.home

    def __repr__(self) -> str:
        return f"Project({str(self.paths.home)!r})"

    def add_data(
        self,
        path: str | Path,
        *,
        name: str,
        label: str | None = None,
        pii: Sequence[str] = (),
        subject_column: str | None = None,
    ) -> DatasetRecord:
        """Register a CSV or Parquet file as a data set (`ledgerml data add`)."""
        from ledgerml.mlops.datasets import register_dataset

        with _python_names(**{"PATH": "path", "--path": "path"}):
            return register_dataset(
                self.paths, path, name, pii=list(pii), subject_col=subject_column, label=label
            )

    def start_run(
        self,
        *,
        data: Sequence[str] | str,
        params: Mapping[str, Any] | None = None,
        seed: int | None = None,
        name: str | None = None,
        time_column: str | None = "Time",
        train_fraction: float = 0.8,
    ) -> Run:
        """A run on registered data sets (names or CIDs); the first one is the training data.

        `time_column` and `train_fraction` state the caller's split (the first share of rows
        in time order trained the model): evaluation holds out the rest, as for `ledgerml
        train`.
        """
        from ledgerml.crypto.canonical import check_json_value
        from ledgerml.mlops.training import resolve_dataset

        names = [data] if isinstance(data, str) else list(data or [])
        if not names:
            raise InputError("name at least one registered data set", field="data")
        records = tuple(resolve_dataset(self.paths, d, field="data") for d in names)
        p = dict(params or {})
        try:
            check_json_value(p)
        except (InputError, TypeError, ValueError) as exc:
            raise InputError(f"must be JSON values ({exc})", field="params") from None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise InputError("must be an integer >= 0", field="seed")
        if not isinstance(train_fraction, int | float) or not 0.05 <= train_fraction <= 0.95:
            raise InputError("must be a number from 0.05 to 0.95", field="train_fraction")
        return Run(
            self,
            records,
            p,
            seed=seed,
            name=name,
            time_column=time_column,
            train_fraction=float(train_fraction),
        )

    def evaluate(
        self, model: RegisteredModel | str, *, data: str | None = None
    ) -> EvaluationResult:
        """Model and baselines on the held-out window (or `data`); records `evaluation.recorded`."""
        from ledgerml.mlops.evaluation import evaluate_model

        with _python_names():
            return evaluate_model(self.paths, _cid(model), data)

    def backtest(
        self,
        model: RegisteredModel | str,
        *,
        fit: Callable[[Any, Any], Any],
        folds: int = 5,
        fold_fraction: float = 0.1,
    ) -> BacktestResult:
        """Rolling-origin backtest of a model trained elsewhere: `fit(X, y)` is the caller's recipe.

        Each fold trains `fit` on every row before it (a DataFrame of the model's features in
        time order, and the 0/1 labels) and scores it and the logistic and rules baselines on
        the fold, as `ledgerml backtest` does for LedgerML's own training; one
        `backtest.recorded` entry for this model's CID (the packs' FM-BT-* rules read it).
        """
        import pandas as pd

        from ledgerml.mlops import models
        from ledgerml.mlops.backtest import backtest
        from ledgerml.mlops.training import model_info, reference_percentiles

        if not callable(fit):
            raise InputError("must be a function (X, y) -> fitted model", field="fit")
        with _python_names():
            info = model_info(self.paths, _cid(model), field_name="model")
        if not info.dataset_cids or info.target is None:
            raise InputError("the model has no recorded training data set", field="model")
        names = [n for n, _ in info.features]
        split = info.run_params.get("split") or {}

        def fitter(prep: Any, tick: Any) -> tuple[bytes, dict[str, Any]]:
            cut = prep.split.train_rows
            tick("training (the caller's fit)", 0, 1)
            fitted = fit(pd.DataFrame(prep.x[:cut], columns=names), prep.y[:cut])
            raw, _ = models.dump(
                fitted, features=names, reference=reference_percentiles(prep.x[:cut])
            )
            tick("training (the caller's fit)", 1, 1)
            return raw, {}

        with _python_names(**{"--folds": "folds", "--model": "model"}):
            return backtest(
                self.paths,
                data=info.dataset_cids[0],
                target=info.target,
                model=info.cid,
                model_type=info.model_type,
                params=dict(info.run_params.get("requested") or {}),
                seed=info.seed or 0,
                time_column=split.get("time_column"),
                drop=list(info.run_params.get("drop", [])),
                folds=folds,
                fold_fraction=fold_fraction,
                fit=fitter,
            )

    def check(
        self,
        model: RegisteredModel | str,
        *,
        pack: str,
        protected: Sequence[str] | str | None = None,
        data: str | None = None,
        submit: bool = True,
    ) -> CheckResult:
        """Judge the model against a policy pack; numeric rules go to the chain if deployed."""
        from ledgerml.compliance.checking import check_model

        with _python_names(**{"pack": "pack", "--pack": "pack"}):
            return check_model(
                self.paths, _cid(model), pack, protected=protected, data=data, submit=submit
            )

    def approve(self, model: RegisteredModel | str, *, role: str) -> Mirrored:
        """Approve on chain as `role` (that role's account signs); mirrored in the ledger."""
        from ledgerml.mlops.governance import GovernanceService

        with _python_names(role="role"), GovernanceService.open(self.paths) as gov:
            return gov.approve(_cid(model), role)

    def promote(self, model: RegisteredModel | str, *, alias: str = "champion") -> Mirrored:
        """Point `alias` at the model on chain; the contract names any unmet rule or approval."""
        from ledgerml.mlops.governance import GovernanceService

        with _python_names(), GovernanceService.open(self.paths) as gov:
            return gov.promote(_cid(model), alias)

    def decide(
        self,
        features: Mapping[str, float] | Sequence[Mapping[str, float]],
        *,
        alias: str = "champion",
    ) -> Decision | tuple[Decision, ...]:
        """Score one record (or several) with the model the gate holds under `alias`.

        Each decision is recorded (durably) before this returns, with reason codes for
        alerts; the caller keeps `salt` to prove the input later.
        """
        from ledgerml.serving.decisions import DecisionService
        from ledgerml.serving.scoring import parse_request

        one = isinstance(features, Mapping)
        body = {"features": features} if one else {"records": list(features)}
        with DecisionService.open(self.paths, mode="sync") as svc:
            with _python_names(**{"body": "features", "features": "features"}):
                entry = svc.model_for(alias)
                request = parse_request(
                    {**body, "alias": alias},
                    entry.model.features,
                    categories=entry.model.categories,
                )
            made = svc.score(request, entry)
        return made[0] if one else tuple(made)

    def verify(self, *, anchors: bool = True) -> VerifyReport:
        """Recompute the log and check every checkpoint (and on-chain anchors, if deployed)."""
        from ledgerml.ledger.project import log_verifiers, open_ledger
        from ledgerml.mlops import has_deployment, trusted_roots

        trusted = trusted_roots(self.paths) if anchors and has_deployment(self.paths) else []
        with open_ledger(self.paths, read_only=True) as ledger:
            return ledger.verify(log_verifiers(self.paths), trusted=trusted)


def open(home: str | Path | None = None) -> Project:
    """An existing project: `home`, else `LEDGERML_HOME`, else `./.ledgerml`."""
    paths = ProjectPaths(resolve_home(home))
    with _python_names(**{"--home": "home"}):
        paths.require_initialised()
    return Project(paths)


def init(path: str | Path | None = None, *, chain: bool = True) -> Project:
    """Create a project (keys, empty ledger) and, with `chain`, deploy the embedded EVM gate."""
    from ledgerml.ledger import init_project

    home = resolve_home(path)
    with _python_names(**{"--home": "path", "home": "path"}):
        paths = init_project(home)
    if chain:
        from ledgerml.chain import deploy
        from ledgerml.mlops import project_chain

        with project_chain(paths) as c:
            deploy(c, chain_dir=paths.chain)
    return Project(paths)


__all__ = ["Project", "RegisteredModel", "Run", "init", "open"]
