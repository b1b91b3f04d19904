"""`audit trace --model NAME/VERSION` for models that came in through MLflow (issue 16).

The lineage run -> data sets -> model version -> (the model's LedgerML steps: registration,
checks, approvals, promotion) -> MLflow alias, every hop a proven ledger entry written by the
store plugins (`ledgerml.mlflow_plugin`). No mlflow import: the ledger is enough.

Entries are found through the audit index's `mlflow.*` keys (`ledger.index.KEY_FIELDS`: run,
registered-model name), so a trace reads only the entries of that run or model, and every one
is proven and filtered on its body, never trusted from the index.
"""

from __future__ import annotations

from ledgerml.audit.view import AuditView, ProvenEntry
from ledgerml.ledger.index import KEY_FIELDS


def _of_type(view: AuditView, event_type: str, **match: str) -> list[ProvenEntry]:
    """Proven `event_type` entries whose body holds every `match` value (an indexed field's
    key seek when one of them is indexed for the type, else every entry of the type)."""
    keyed = [f for f in KEY_FIELDS.get(event_type, ()) if f in match]
    found = (
        view.index.find(match[keyed[0]], event_type) if keyed else view.index.by_type(event_type)
    )
    out = []
    for idx in found:
        e = view.prove(idx)
        if e.type == event_type and all(str(e.body.get(k)) == v for k, v in match.items()):
            out.append(e)
    return out


def parse_name_version(model: str) -> tuple[str, str] | None:
    """("fraud-xgb", "3") from "fraud-xgb/3"; None when `model` is not NAME/VERSION."""
    name, sep, version = model.rpartition("/")
    return (name, version) if sep and name and version.isdigit() else None


def version_entry(view: AuditView, name: str, version: str) -> ProvenEntry | None:
    """The newest `mlflow.model_version` entry of NAME/VERSION."""
    found = _of_type(view, "mlflow.model_version", name=name, version=version)
    return found[-1] if found else None


def before_model(view: AuditView, version: ProvenEntry) -> list[tuple[str, str, ProvenEntry]]:
    """(step, summary, entry) for the run, its data sets and the version itself."""
    steps: list[tuple[str, str, ProvenEntry]] = []
    run_id = version.body.get("run_id")
    if run_id:
        for e in _of_type(view, "mlflow.run_created", run_id=str(run_id)):
            steps.append(("mlflow run", f"{run_id} in experiment {e.body.get('experiment_id')}", e))
        for e in _of_type(view, "mlflow.inputs_logged", run_id=str(run_id)):
            for d in e.body.get("datasets", []):
                summary = f"{d.get('name')} digest {d.get('digest')} ({d.get('source_type')})"
                steps.append(("mlflow data set", summary, e))
    b = version.body
    summary = f"{b.get('name')}/{b.get('version')} -> {b.get('cid')} ({b.get('framework')})"
    steps.append(("mlflow model version", summary, version))
    return steps


def after_model(view: AuditView, name: str, version: str) -> list[tuple[str, str, ProvenEntry]]:
    """MLflow alias and stage changes of NAME/VERSION (gated ones carry the gate's tx)."""
    steps = []
    for t, step in (("mlflow.alias", "mlflow alias"), ("mlflow.stage", "mlflow stage")):
        for e in _of_type(view, t, name=name, version=version):
            what = e.body.get("alias") or e.body.get("stage")
            tx = f"; gate tx {e.body['tx_hash']}" if e.body.get("tx_hash") else ""
            steps.append((step, f"{what} {e.body.get('action', 'set')}{tx}", e))
    return steps
